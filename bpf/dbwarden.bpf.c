// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dbwarden capture programs: copy the bytes database server processes read
 * from and write to their client sockets into a ring buffer.
 *
 * Cost model. The hooks (io_hooks.bpf.h) fire only for socket sends and
 * receives and for the few system calls that matter (accept, connect,
 * listen, close, the mmsg calls), never for other syscalls, and the common
 * path must still reject in a few instructions:
 *   1. the calling process is not a tracked server     -> return (a bit test)
 *   2. the socket's inode (the socket hooks' own socket; fd -> file at a
 *      syscall exit) is looked up in `conns` (tracked sockets) and `ignored`
 *      (sockets of the server we decided not to audit).
 * Only the first I/O on a socket pays for classifying it (ports, unix path).
 *
 * Connections are keyed by the socket's inode number, not (pid, fd): the
 * postmaster accepts, forks, and the backend does the I/O on the inherited fd.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dbwarden.h"
#include "step_profile.bpf.h"
#include "user_regs.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115

/* Iovecs per readv/writev/sendmsg/recvmsg, and messages per sendmmsg/recvmmsg,
 * that are copied; bytes beyond are reported as a gap of known length. */
#define DBW_MAX_IOV 8
#define DBW_MAX_MMSG 8
/* UIO_MAXIOV: the kernel's bound on iovecs and on mmsg vectors. */
#define DBW_UIO_MAXIOV 1024

/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_connect 42
#define NR_accept 43
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_listen 50
#define NR_accept4 288
#define NR_recvmmsg 299
#define NR_sendmmsg 307
#else
#error "dbwarden's syscall capture supports x86_64 only for now"
#endif

/* Set by userspace between open and load. */
const volatile __u32 wakeup_bytes = 256 * 1024; /* wake the reader past this backlog */
/* The bulk-data bound: a server-to-client write of a connection flagged
 * DBW_CONN_BULK_BOUND (PostgreSQL) longer than head + tail is captured as its
 * first bulk_head_bytes, one DBW_DATA_BULK_SKIPPED record standing for the
 * middle (exact length, exact offset), and its last bulk_tail_bytes. The
 * PostgreSQL decoder needs no DataRow/CopyData byte to count rows (they come
 * from the CommandComplete tag), and PostgreSQL flushes at ReadyForQuery, so a
 * response's last write ends with CommandComplete/ErrorResponse and
 * ReadyForQuery: the tail. Only a response's first write keeps its head
 * (DBW_CONN_RESPONSE_START). Client-to-server bytes (queries) are never bound.
 * 0 (tail) turns the bound off. Each at most DBW_BULK_MAX_BYTES. */
const volatile __u32 bulk_head_bytes = 0;
const volatile __u32 bulk_tail_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024); /* resized by userspace before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DBW_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Bytes and records left out by the bulk-data bound (enum dbw_bulk_stat). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DBW_BULK_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bulk SEC(".maps");

/* tgids of database server processes (postmaster and its children). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

/* The same set as one bit per pid (PID_MAX_LIMIT is 2^22 on 64-bit: 512 KiB),
 * for the check every data syscall of every process makes: a load from a
 * global array instead of a hash lookup. `pids` stays the set userspace reads.
 * Writers on both sides use atomic OR/AND (userspace through the mmapped
 * .bss), so concurrent updates of neighbouring pids are never lost. */
#define DBW_PID_WORDS (1u << 16)
__u64 pid_bits[DBW_PID_WORDS];

/* Local TCP ports the database listens on: index = port, value != 0 (enum
 * dbw_port_flags). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} ports SEC(".maps");

/* Listening unix socket paths of the database -> server port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct dbw_unix_path);
	__type(value, __u16);
} unix_paths SEC(".maps");

/* Tracked client connections, by socket inode number. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct dbw_conn_state);
} conns SEC(".maps");

/* Client ends of local connections to the database (TCP to a watched port
 * with a peer on this host, unix sockets to a watched path) -> the process
 * that connected them. Not captured (the server side is), but the agent names
 * the client process from here: exactly, where a /proc scan can only guess
 * which process took a new socket, and even when a short-lived client has
 * exited before the agent looks. LRU: entries of closed sockets age out; a
 * lost entry only sends the agent back to /proc. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192); /* ~1.8 MB preallocated */
	__type(key, struct dbw_client_key);
	__type(value, struct dbw_client_info);
} local_clients SEC(".maps");

/* Scratch space for a local_clients value. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dbw_client_info);
} client_scratch SEC(".maps");

/* Sockets of tracked processes that are not database client connections
 * (replication to elsewhere, stats, ...). LRU: a stale entry only costs a
 * re-classification. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} ignored SEC(".maps");

/* Processes that listen on a watched TCP port -> that port. A unix socket
 * such a process listens on later is the same server's (MySQL's socket path
 * is a setting; both servers listen on TCP first, then on unix sockets):
 * its path is watched from its listen(2) on. Not tracked yet: a process that
 * listens for another (systemd socket activation) never accepts; tracking
 * starts at accept. LRU: an entry only matters until the server listens. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u16);
} listeners SEC(".maps");

/* The agent's own tgid and network namespace (struct dbw_agent). Its own
 * sockets are never a database server's, even when they carry a watched port
 * (a proxy the database port is steered to). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dbw_agent);
} agent SEC(".maps");

/* Scratch space for building records larger than the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dbw_data_event);
} scratch SEC(".maps");

/* The connection id counter and the identifier of the object that created the
 * pins. A map rather than a global: a pinned map survives an agent restart, so
 * connection ids stay unique across it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dbw_meta);
} meta SEC(".maps");

/* Kernels before 6.13 count file references in f_count; 6.13 replaced it with
 * file_ref_t f_ref (commit 90ee6ed776c0, "fs: port files to file_ref"). */
struct file___pre_6_13 {
	atomic_long_t f_count;
} __attribute__((preserve_access_index));

static __always_inline void count_drop(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &reason);

	if (v)
		*v += 1; /* per-CPU: no atomic needed */
}

static __always_inline int is_tracked_process(__u32 tgid)
{
	return (pid_bits[(tgid >> 6) & (DBW_PID_WORDS - 1)] >> (tgid & 63)) & 1;
}

static __always_inline void track(__u32 tgid, __u8 kind, __u64 flags)
{
	bpf_map_update_elem(&pids, &tgid, &kind, flags);
	__sync_fetch_and_or(&pid_bits[(tgid >> 6) & (DBW_PID_WORDS - 1)], 1ULL << (tgid & 63));
}

static __always_inline void untrack(__u32 tgid)
{
	bpf_map_delete_elem(&pids, &tgid);
	__sync_fetch_and_and(&pid_bits[(tgid >> 6) & (DBW_PID_WORDS - 1)], ~(1ULL << (tgid & 63)));
}

static __always_inline struct file *fd_to_file(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	struct file *file = NULL;

	if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	/* A variable index into fdt->fd cannot be a typed load: one probe read. */
	bpf_probe_read_kernel(&file, sizeof(file), &fdt->fd[fd]);
	return file ? as_btf(struct file, file) : NULL;
}

/* Returns the socket inode number of `file`, or 0 if it is not a socket. */
static __always_inline __u64 socket_ino(struct file *file)
{
	struct inode *inode = file->f_inode;

	if (!inode || (inode->i_mode & S_IFMT) != S_IFSOCK)
		return 0;
	return inode->i_ino;
}

/* The header of a record made by the current task (its fields after the
 * header were zeroed by the caller). */
static __always_inline void set_header(struct dbw_event_header *h, __u32 kind, __u64 conn_id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	h->kind = kind;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->ts_ns = bpf_ktime_get_ns();
	h->conn_id = conn_id;
}

static __always_inline void emit_conn_event(__u32 kind, __u64 ino, struct sock *sk,
					    const struct dbw_conn_state *st)
{
	struct dbw_conn_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_drop(DBW_DROP_RINGBUF_FULL);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	set_header(&e->hdr, kind, st->conn_id);
	e->sock_ino = ino;
	e->family = st->family;
	e->side = st->side;
	e->server_port = st->server_port;
	e->ingress_bytes = st->offset[DBW_DIR_INGRESS];
	e->egress_bytes = st->offset[DBW_DIR_EGRESS];
	/* The socket's own end is the server on the server side, the client on
	 * the client side. */
	__u8 *local = st->side == DBW_SIDE_CLIENT ? e->client_addr : e->server_addr;
	__u8 *peer = st->side == DBW_SIDE_CLIENT ? e->server_addr : e->client_addr;

	if (sk && st->family == DBW_FAMILY_INET) {
		bpf_core_read(local, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(peer, 4, &sk->__sk_common.skc_daddr);
	} else if (sk && st->family == DBW_FAMILY_INET6) {
		bpf_core_read(local, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(peer, 16, &sk->__sk_common.skc_v6_daddr);
	}
	if (sk && st->family != DBW_FAMILY_UNIX)
		e->client_port = st->side == DBW_SIDE_CLIENT
					 ? BPF_CORE_READ(sk, __sk_common.skc_num)
					 : bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (sk && st->family == DBW_FAMILY_UNIX) {
		struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);

		if (peer)
			e->peer_ino = BPF_CORE_READ(peer, sk_socket, file, f_inode, i_ino);
	}
	/* An open wakes the reader at once: the agent names a local client
	 * from /proc while it still runs, and a psql -c is gone within
	 * milliseconds. One wake-up per connection, not per record. */
	bpf_ringbuf_submit(e, kind == DBW_EV_CONN_OPEN ? BPF_RB_FORCE_WAKEUP : 0);
}

/* 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, or the socket's own address: the
 * peer is on this host. */
static __always_inline int peer_is_local(struct sock *sk, __u16 family)
{
	if (family == AF_INET) {
		__u32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__u32 saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

		return daddr == 0 || (daddr & 0xff) == 127 || daddr == saddr;
	}
	struct in6_addr d = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr);
	struct in6_addr s = BPF_CORE_READ(sk, __sk_common.skc_v6_rcv_saddr);
	__u32 *dw = d.in6_u.u6_addr32, *sw = s.in6_u.u6_addr32;

	if (dw[0] == sw[0] && dw[1] == sw[1] && dw[2] == sw[2] && dw[3] == sw[3])
		return 1;
	if (dw[0] == 0 && dw[1] == 0 && dw[2] == 0 && (dw[3] == 0 || dw[3] == bpf_htonl(1)))
		return 1; /* :: and ::1 */
	return dw[0] == 0 && dw[1] == 0 && dw[2] == bpf_htonl(0xffff) && (dw[3] & 0xff) == 127;
}

/* The server port of the watched path a unix socket is bound to (accepted
 * sockets share their listener's address), or NULL. */
static __always_inline __u16 *watched_unix_path(struct unix_sock *us)
{
	struct unix_address *addr = BPF_CORE_READ(us, addr);
	struct dbw_unix_path key = {};

	if (!addr)
		return NULL;
	bpf_probe_read_kernel_str(key.path, sizeof(key.path), &addr->name[0].sun_path);
	return bpf_map_lookup_elem(&unix_paths, &key);
}

/*
 * First I/O on a socket of a tracked process: decide whether it is a client
 * connection to the database (server side of a TCP connection on a watched
 * port, or a unix socket accepted on a watched path) and remember the answer.
 */
static __always_inline struct dbw_conn_state *classify(struct file *file, __u64 ino)
{
	struct socket *sock = BPF_CORE_READ(file, private_data);
	struct dbw_conn_state st = {};
	struct dbw_meta *m;
	struct sock *sk;
	__u32 zero = 0;
	__u8 one = 1;
	__u16 family;

	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		goto ignore;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		goto ignore;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET || family == AF_INET6) {
		__u32 port = BPF_CORE_READ(sk, __sk_common.skc_num);
		__u8 *watched = bpf_map_lookup_elem(&ports, &port);

		st.family = family == AF_INET ? DBW_FAMILY_INET : DBW_FAMILY_INET6;
		if (!watched || !*watched) {
			/* Not the server end: maybe the client end of a connection to a
			 * remote database that was open before the agent started (its
			 * process was tracked by userspace; later ones come through
			 * on_connect). Same rule as on_connect. */
			port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
			watched = bpf_map_lookup_elem(&ports, &port);
			if (!watched || !*watched || peer_is_local(sk, family))
				goto ignore;
			st.side = DBW_SIDE_CLIENT;
		}
		st.server_port = port;
		st.flags = *watched & DBW_PORT_BULK_BOUND ? DBW_CONN_BULK_BOUND : 0;
	} else if (family == AF_UNIX) {
		__u16 *port = watched_unix_path((struct unix_sock *)sk);

		if (!port)
			goto ignore;
		st.family = DBW_FAMILY_UNIX;
		st.server_port = *port;
		/* The protocol (and so the bound) is the server port's. */
		__u32 port_key = *port;
		__u8 *port_flags = bpf_map_lookup_elem(&ports, &port_key);

		if (port_flags && (*port_flags & DBW_PORT_BULK_BOUND))
			st.flags = DBW_CONN_BULK_BOUND;
	} else {
		goto ignore;
	}

	m = bpf_map_lookup_elem(&meta, &zero);
	if (!m)
		goto ignore; /* cannot happen: an array map always has its entry */
	st.conn_id = __sync_fetch_and_add(&m->next_conn_id, 1);
	if (bpf_map_update_elem(&conns, &ino, &st, BPF_NOEXIST)) {
		struct dbw_conn_state *raced = bpf_map_lookup_elem(&conns, &ino);

		if (!raced)
			count_drop(DBW_DROP_CONN_TABLE_FULL);
		return raced;
	}
	emit_conn_event(DBW_EV_CONN_OPEN, ino, sk, &st);
	return bpf_map_lookup_elem(&conns, &ino);

ignore:
	bpf_map_update_elem(&ignored, &ino, &one, BPF_ANY);
	return NULL;
}

/* Tells userspace that the kernel found a server (enum dbw_server_how). It
 * wakes the reader: the agent refreshes its view of the servers at once. */
static __always_inline void emit_server_event(__u8 how, __u8 family, __u16 port,
					      const struct dbw_unix_path *path)
{
	struct dbw_server_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_drop(DBW_DROP_RINGBUF_FULL);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	set_header(&e->hdr, DBW_EV_SERVER, 0);
	e->how = how;
	e->family = family;
	e->port = port;
	if (path)
		__builtin_memcpy(e->path, path->path, sizeof(e->path));
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

/* ".../.s.PGSQL.5432" -> 5432 when that port is watched; 0 otherwise. The
 * name PostgreSQL gives its socket in every unix_socket_directories entry. */
static __always_inline __u16 pgsql_path_port(const struct dbw_unix_path *k)
{
	const char prefix[] = ".s.PGSQL.";
	const __u32 plen = sizeof(prefix) - 1;
	__u32 len, digits, port = 0, start, i;
	__u8 *watched;

	for (len = 0; len < DBW_UNIX_PATH_MAX; len++) {
		if (!k->path[len])
			break;
	}
	/* The name ends the path: count its digits from the end (1 to 5). */
	for (digits = 0; digits < 6; digits++) {
		__u32 at = len - 1 - digits;

		if (digits >= len || at >= DBW_UNIX_PATH_MAX)
			break;
		if (k->path[at] < '0' || k->path[at] > '9')
			break;
	}
	if (digits == 0 || digits > 5 || len < plen + digits)
		return 0;
	start = len - digits - plen;
	if (start > 0 && (start - 1 >= DBW_UNIX_PATH_MAX || k->path[start - 1] != '/'))
		return 0;
	for (i = 0; i < plen; i++) {
		if (start + i >= DBW_UNIX_PATH_MAX || k->path[start + i] != prefix[i])
			return 0;
	}
	for (i = 0; i < digits; i++) {
		__u32 at = start + plen + i;

		if (at >= DBW_UNIX_PATH_MAX)
			return 0;
		port = port * 10 + (k->path[at] - '0');
	}
	if (port == 0 || port > 65535)
		return 0;
	watched = bpf_map_lookup_elem(&ports, &port);
	return watched && *watched ? port : 0;
}

static __always_inline int may_discover(__u32 tgid, struct sock *sk)
{
	__u32 zero = 0;
	struct dbw_agent *self = bpf_map_lookup_elem(&agent, &zero);

	if (!self || self->tgid == tgid)
		return 0;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) == self->netns_ino;
}

/*
 * listen(2) by any process (rare: no cost that matters). A watched TCP port:
 * remember the process (see `listeners`). A unix socket of such a process, or
 * one named .s.PGSQL.<watched port>: watch its path, so that connections
 * accepted on it are captured from their first byte even before userspace
 * has scanned /proc. A global function: verified once, on its own (its path
 * loop would otherwise be verified inside every path of the exit program).
 */
__noinline int dbw_on_listen(__u64 fd, __u64 ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct dbw_unix_path key = {};
	struct unix_address *addr;
	struct socket *sock;
	struct file *file;
	struct sock *sk;
	__u16 family, port;
	__u16 *known;

	if (ret != 0)
		return 0;
	file = fd_to_file((int)fd);
	if (!file || !socket_ino(file))
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || !may_discover(tgid, sk))
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET || family == AF_INET6) {
		__u32 p = BPF_CORE_READ(sk, __sk_common.skc_num);
		__u8 *watched = bpf_map_lookup_elem(&ports, &p);

		if (watched && *watched) {
			port = p;
			bpf_map_update_elem(&listeners, &tgid, &port, BPF_ANY);
		}
		return 0;
	}
	if (family != AF_UNIX)
		return 0;
	addr = BPF_CORE_READ((struct unix_sock *)sk, addr);
	if (!addr)
		return 0;
	bpf_probe_read_kernel_str(key.path, sizeof(key.path), &addr->name[0].sun_path);
	if (!key.path[0])
		return 0; /* abstract or unnamed */
	if (bpf_map_lookup_elem(&unix_paths, &key))
		return 0; /* watched already (a restart on the same path) */
	known = bpf_map_lookup_elem(&listeners, &tgid);
	port = known ? *known : pgsql_path_port(&key);
	if (!port)
		return 0;
	if (bpf_map_update_elem(&unix_paths, &key, &port, BPF_NOEXIST))
		return 0; /* full (userspace logs what it watches), or raced */
	emit_server_event(DBW_SERVER_UNIX_PATH, DBW_FAMILY_UNIX, port, &key);
	return 0;
}

/* The watched port of a server-side socket accepted on a watched TCP port or
 * unix path, or 0. Nothing is remembered for other sockets: this runs for
 * every accept of every untracked process. */
static __always_inline __u16 watched_server_socket(__u32 tgid, struct file *file,
						   __u8 *family_out)
{
	struct socket *sock = BPF_CORE_READ(file, private_data);
	struct sock *sk;
	__u16 family, port = 0;

	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET || family == AF_INET6) {
		__u32 p = BPF_CORE_READ(sk, __sk_common.skc_num);
		__u8 *watched = bpf_map_lookup_elem(&ports, &p);

		*family_out = family == AF_INET ? DBW_FAMILY_INET : DBW_FAMILY_INET6;
		if (watched && *watched)
			port = p;
	} else if (family == AF_UNIX) {
		__u16 *p = watched_unix_path((struct unix_sock *)sk);

		*family_out = DBW_FAMILY_UNIX;
		if (p)
			port = *p;
	}
	return port && may_discover(tgid, sk) ? port : 0;
}

/*
 * accept(2) by a process that is not tracked: a database server that started
 * after the agent's last look at /proc (a restart, a failover). If the new
 * socket is on a watched port or path, the process is a server from now on
 * (its later children through the fork hook), and this connection is
 * classified now, before its first byte (the startup message) is read.
 * Userspace learns of it from the ring and catches up (children forked
 * before, MySQL's unix socket) without the one-second poll. A global
 * function, verified once on its own.
 */
__noinline int dbw_on_untracked_accept(__u64 tgid, __u64 fd)
{
	struct file *file = fd_to_file((int)fd);
	__u8 family = 0;
	__u16 port;
	__u64 ino;

	if (!file)
		return 0;
	ino = socket_ino(file);
	if (!ino)
		return 0;
	port = watched_server_socket((__u32)tgid, file, &family);
	if (!port)
		return 0;
	track((__u32)tgid, DBW_PID_SERVER, BPF_ANY);
	emit_server_event(DBW_SERVER_ACCEPT, family, port, NULL);
	if (!bpf_map_lookup_elem(&conns, &ino))
		classify(file, ino);
	return 0;
}

/* Records are submitted without waking the reader, which polls on a timer:
 * a wake-up per record would cost more than the capture itself. The one
 * exception is the record that takes the backlog across wakeup_bytes, so that
 * a burst is drained before the ring fills. Only the crossing wakes: once the
 * backlog is above the mark, later records do not wake again. */
static __always_inline __u64 ringbuf_flags(__u64 record_bytes)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	return avail >= wakeup_bytes && avail < wakeup_bytes + record_bytes ? BPF_RB_FORCE_WAKEUP
									     : BPF_RB_NO_WAKEUP;
}

/* Most database messages are small: reserve a record of fixed size and copy
 * the user buffer straight into the ring (one copy). The reservation size
 * must be a constant, so there are three: a record takes the smallest that
 * holds it. Every byte reserved is a byte the CPU writes into and the reader
 * pulls through its cache, so a 60-byte query does not take 256 (measured:
 * the reservation, copy and submit were half the program's time per
 * statement). Larger messages go through the per-CPU scratch record and
 * bpf_ringbuf_output (two copies, exact size). */
#define DBW_SMALL_BYTES 256

/* `who`: the current task's pid_tgid (tgid << 32 | tid), which a caller that
 * holds the task reads from it without a helper call. */
static __always_inline void fill_header(struct dbw_data_event *e, __u64 conn_id, __u64 who,
					__u8 dir)
{
	e->hdr.kind = DBW_EV_DATA;
	e->hdr.pid = who >> 32;
	e->hdr.tid = (__u32)who;
	e->hdr._pad = 0;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.conn_id = conn_id;
	e->direction = dir;
	e->flags = 0;
}

/* `size`, the reservation and the copy's bound, is a constant after inlining.
 * `len` is 64-bit so that the bound check and the copy use one register: a
 * 32-bit length is compared on a zero-extended copy whose bound the verifier
 * does not carry over to the register passed to the copy. */
static __always_inline void emit_sized(__u64 conn_id, __u64 who, __u8 dir, const char *buf,
				       __u64 len, __u64 offset, const __u32 size)
{
	const __u64 record_bytes = offsetof(struct dbw_data_event, data) + size;
	struct dbw_data_event *e;

	e = bpf_ringbuf_reserve(&events, record_bytes, 0);
	if (!e) {
		count_drop(DBW_DROP_RINGBUF_FULL);
		return;
	}
	DBW_PROF_STEP(DBW_PROF_STEP_RESERVE);
	fill_header(e, conn_id, who, dir);
	e->offset = offset;
	e->length = len;
	e->captured = len;
	DBW_PROF_STEP(DBW_PROF_STEP_HEADER);
	barrier_var(len); /* keep the bound check below visible to the verifier */
	if (len > size || bpf_probe_read_user(e->data, len, buf)) {
		count_drop(DBW_DROP_READ_FAILED);
		e->captured = 0;
	}
	DBW_PROF_STEP(DBW_PROF_STEP_COPY);
	bpf_ringbuf_submit(e, ringbuf_flags(record_bytes));
	DBW_PROF_STEP(DBW_PROF_STEP_SUBMIT);
}

static __always_inline void emit_small(__u64 conn_id, __u64 who, __u8 dir, const char *buf,
				       __u32 len, __u64 offset)
{
	if (len <= 64)
		emit_sized(conn_id, who, dir, buf, len, offset, 64);
	else if (len <= 128)
		emit_sized(conn_id, who, dir, buf, len, offset, 128);
	else
		emit_sized(conn_id, who, dir, buf, len, offset, DBW_SMALL_BYTES);
}

/* `len` bytes at `offset` that are not copied: a record with no payload, so
 * that userspace knows exactly what it misses; `flags` says why (0: a loss). */
static __always_inline void emit_no_payload(__u64 conn_id, __u64 who, __u8 dir, __u64 len,
					    __u64 offset, __u8 flags)
{
	struct dbw_data_event *e;

	e = bpf_ringbuf_reserve(&events, offsetof(struct dbw_data_event, data), 0);
	if (!e) {
		count_drop(DBW_DROP_RINGBUF_FULL);
		return;
	}
	fill_header(e, conn_id, who, dir);
	e->flags = flags;
	e->offset = offset;
	e->length = len > 0xffffffffULL ? 0xffffffffU : (__u32)len;
	e->captured = 0;
	bpf_ringbuf_submit(e, 0);
}

/* `len` bytes beyond the per-syscall bound: lost, and counted as such. */
static __always_inline void emit_gap(__u64 conn_id, __u64 who, __u8 dir, __u64 len, __u64 offset)
{
	count_drop(DBW_DROP_TRUNCATED);
	emit_no_payload(conn_id, who, dir, len, offset, 0);
}

/* `len` bytes of the user buffer `buf`, which sit at `offset` of the stream. */
static __always_inline void emit_range(__u64 conn_id, __u64 who, __u8 dir, const char *buf,
				       __u64 len, __u64 offset)
{
	__u32 zero = 0;
	struct dbw_data_event *e;
	__u64 done = 0;

	if (len <= DBW_SMALL_BYTES) {
		emit_small(conn_id, who, dir, buf, (__u32)len, offset);
		return;
	}
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return;
	fill_header(e, conn_id, who, dir);

	for (int i = 0; i < DBW_MAX_CHUNKS; i++) {
		__u64 left = len - done;
		__u32 n = left > DBW_CHUNK_BYTES ? DBW_CHUNK_BYTES : (__u32)left;

		if (n == 0 || n > DBW_CHUNK_BYTES)
			return;
		e->offset = offset + done;
		e->length = n;
		e->captured = n;
		if (bpf_probe_read_user(e->data, n, buf + done)) {
			count_drop(DBW_DROP_READ_FAILED);
			e->captured = 0;
			n = 0;
		}
		if (bpf_ringbuf_output(&events, e, offsetof(struct dbw_data_event, data) + n,
				       ringbuf_flags(offsetof(struct dbw_data_event, data) + n)))
			count_drop(DBW_DROP_RINGBUF_FULL);
		done += e->length;
	}
	if (done < len) /* too large for DBW_MAX_CHUNKS */
		emit_gap(conn_id, who, dir, len - done, offset + done);
}

/* `len` bytes at `offset` left out by the bulk-data bound on purpose: a record
 * with no payload and DBW_DATA_BULK_SKIPPED, counted in `bulk`, not `drops`. */
static __always_inline void emit_skip(__u64 conn_id, __u64 who, __u8 dir, __u64 len, __u64 offset)
{
	__u32 key = DBW_BULK_SKIPPED_BYTES;
	__u64 *v = bpf_map_lookup_elem(&bulk, &key);

	if (v)
		*v += len; /* per-CPU: no atomic needed */
	key = DBW_BULK_SKIPPED_RECORDS;
	v = bpf_map_lookup_elem(&bulk, &key);
	if (v)
		*v += 1;
	emit_no_payload(conn_id, who, dir, len, offset, DBW_DATA_BULK_SKIPPED);
}

/* `dir` is seen from the process that moved the bytes; a client-side
 * connection flips it, so records are always seen from the server. */
static __always_inline void emit_data(struct dbw_conn_state *st, __u64 who, __u8 dir,
				      const char *buf, __u64 len)
{
	__u64 head = bulk_head_bytes, tail = bulk_tail_bytes, offset;

	dir = (dir ^ st->side) & 1;
	offset = __sync_fetch_and_add(&st->offset[dir], len);
	if ((st->flags & DBW_CONN_BULK_BOUND) && tail) {
		/* Only the first write of a response keeps a head (RowDescription,
		 * ParseComplete, ...); a connection's I/O is its backend's, in order. */
		if (dir == DBW_DIR_INGRESS) {
			if (!(st->flags & DBW_CONN_RESPONSE_START))
				st->flags |= DBW_CONN_RESPONSE_START;
		} else if (st->flags & DBW_CONN_RESPONSE_START) {
			st->flags &= ~DBW_CONN_RESPONSE_START;
		} else {
			head = 0;
		}
	}
	DBW_PROF_STEP(DBW_PROF_STEP_OFFSET);
	if (dir != DBW_DIR_EGRESS || !(st->flags & DBW_CONN_BULK_BOUND) || tail == 0 ||
	    head > DBW_BULK_MAX_BYTES || tail > DBW_BULK_MAX_BYTES || len <= head + tail) {
		emit_range(st->conn_id, who, dir, buf, len, offset);
		return;
	}
	/* A length above 4 GiB cannot be written in one call; the skip record's
	 * 32-bit length would saturate (emit_gap does the same). */
	if (head)
		emit_range(st->conn_id, who, dir, buf, head, offset);
	emit_skip(st->conn_id, who, dir, len - head - tail, offset + head);
	emit_range(st->conn_id, who, dir, buf + len - tail, tail, offset + len - tail);
}

/* An iovec array (readv/writev, the iov of a msghdr) that moved `total` bytes
 * at `offset`: the kernel fills/drains the iovecs in order. A separate
 * (global) function, verified once, with scalar arguments only; BPF calls take
 * at most five, so `cnt_dir` is (iovec count << 1) | direction. */
#define IOV_CNT_DIR(cnt, dir) (((__u64)(cnt) << 1) | ((dir) & 1))
__noinline int dbw_emit_iov(__u64 conn_id, __u64 iov_ptr, __u64 cnt_dir, __u64 total,
			    __u64 offset)
{
	const struct iovec *iov = (const struct iovec *)iov_ptr;
	__u64 who = bpf_get_current_pid_tgid();
	__u64 iovcnt = cnt_dir >> 1;
	__u8 dir = cnt_dir & 1;
	__u64 done = 0;

	for (int i = 0; i < DBW_MAX_IOV; i++) {
		struct iovec v;
		__u64 n;

		if (i >= iovcnt || done >= total)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i]))
			break;
		n = v.iov_len < total - done ? v.iov_len : total - done;
		if (n)
			emit_range(conn_id, who, dir, (const char *)v.iov_base, n, offset + done);
		done += n;
	}
	if (done < total)
		emit_gap(conn_id, who, dir, total - done, offset + done);
	return 0;
}

/* TLS plaintext from libssl uprobes; needs emit_data() above. */
#include "tls.bpf.h"

/* A connection ends at close(2) of its last reference (or with its process).
 * Not at shutdown(2): a server shuts its client sockets down to wake the
 * threads serving them (MariaDB at its own shutdown) and those threads still
 * read the statement in flight, which belongs to the same connection. */
static __always_inline void end_connection(__u64 ino, struct dbw_conn_state *st)
{
	emit_conn_event(DBW_EV_CONN_CLOSE, ino, NULL, st);
	bpf_map_delete_elem(&conns, &ino);
}

/* An address of `sk` in the IPv6 form of struct dbw_client_key. */
static __always_inline void key_addr(__u8 out[16], struct sock *sk, __u16 family, int remote)
{
	if (family == AF_INET) {
		__u32 a = remote ? BPF_CORE_READ(sk, __sk_common.skc_daddr)
				 : BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

		out[10] = 0xff;
		out[11] = 0xff;
		__builtin_memcpy(out + 12, &a, 4);
	} else if (remote) {
		bpf_core_read(out, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		bpf_core_read(out, 16, &sk->__sk_common.skc_v6_rcv_saddr);
	}
}

/* kernfs_node.parent became __parent in 6.15 (commit 633488947ef6, "kernfs:
 * Use RCU to access kernfs_node::parent"). */
struct kernfs_node___pre_6_15 {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kernfs_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent))
		return BPF_CORE_READ(kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___pre_6_15 *)kn, parent);
}

/* Records who connected a local client socket (see `local_clients`). The
 * value is built in per-CPU scratch space: it is too large for the stack. */
static __always_inline void note_local_client(struct dbw_client_key *key, __u32 tgid)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct dbw_client_info *info;
	struct kernfs_node *kn;
	__u32 zero = 0;
	int i;

	info = bpf_map_lookup_elem(&client_scratch, &zero);
	if (!info)
		return; /* cannot happen: an array map always has its entry */
	__builtin_memset(info, 0, sizeof(*info));
	info->tgid = tgid;
	info->uid = (__u32)bpf_get_current_uid_gid();
	info->loginuid = (__u32)-1;
	if (bpf_core_field_exists(task->loginuid))
		info->loginuid = task->loginuid.val;
	bpf_get_current_comm(info->comm, sizeof(info->comm));
	kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	for (i = 0; i < DBW_CGROUP_LEVELS && kn; i++) {
		bpf_probe_read_kernel_str(info->cgroup[i], DBW_CGROUP_NAME_BYTES,
					  BPF_CORE_READ(kn, name));
		kn = kernfs_parent(kn);
	}
	bpf_map_update_elem(&local_clients, key, info, BPF_ANY);
}

/*
 * Client side. connect(2) by any process to a watched database port. A peer
 * on this host is the local server, which is captured on its own side: the
 * client end is not tracked at all (capturing both ends of a local connection
 * would double the cost and the records); its socket goes into
 * `local_clients`, so the agent knows the process behind the server side's
 * connection. A peer elsewhere is a remote
 * database: the socket is tracked as a client-side connection and the process
 * joins `pids`, so that its reads and writes pass the tracked-process check.
 * Unix sockets are always local: only noted in `local_clients`.
 */
static __always_inline int on_connect(struct pt_regs *regs, long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct dbw_conn_state st = {};
	__u8 client = DBW_PID_CLIENT;
	struct dbw_meta *m;
	__u32 zero = 0;
	struct socket *sock;
	struct file *file;
	struct sock *sk;
	__u8 *watched;
	__u16 family;
	__u32 port;
	__u64 ino;

	if (ret != 0 && ret != -EINPROGRESS)
		return 0;
	file = fd_to_file((int)regs->di);
	if (!file)
		return 0;
	ino = socket_ino(file);
	if (!ino)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_UNIX) {
		/* Connected: the peer is the server's new socket, bound to the
		 * listener's path. */
		struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);
		struct dbw_client_key key = {.unix_ino = ino};

		if (peer && watched_unix_path((struct unix_sock *)peer))
			note_local_client(&key, tgid);
		return 0;
	}
	if (family != AF_INET && family != AF_INET6)
		return 0;
	port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	watched = bpf_map_lookup_elem(&ports, &port);
	if (!watched || !*watched)
		return 0;
	if (peer_is_local(sk, family)) {
		struct dbw_client_key key = {};

		key_addr(key.client_addr, sk, family, 0);
		key_addr(key.server_addr, sk, family, 1);
		key.client_port = BPF_CORE_READ(sk, __sk_common.skc_num);
		key.server_port = port;
		note_local_client(&key, tgid);
		return 0;
	}

	m = bpf_map_lookup_elem(&meta, &zero);
	if (!m)
		return 0; /* cannot happen: an array map always has its entry */
	st.conn_id = __sync_fetch_and_add(&m->next_conn_id, 1);
	st.family = family == AF_INET ? DBW_FAMILY_INET : DBW_FAMILY_INET6;
	st.server_port = port;
	st.side = DBW_SIDE_CLIENT;
	st.flags = *watched & DBW_PORT_BULK_BOUND ? DBW_CONN_BULK_BOUND : 0;
	bpf_map_delete_elem(&ignored, &ino);
	if (bpf_map_update_elem(&conns, &ino, &st, BPF_NOEXIST)) {
		if (!bpf_map_lookup_elem(&conns, &ino))
			count_drop(DBW_DROP_CONN_TABLE_FULL);
		return 0;
	}
	emit_conn_event(DBW_EV_CONN_OPEN, ino, sk, &st);
	if (!is_tracked_process(tgid))
		track(tgid, client, BPF_NOEXIST);
	return 0;
}

/* sendmmsg/recvmmsg: `count` messages, each an iovec array and msg_len bytes. */
static __always_inline void emit_mmsg(struct dbw_conn_state *st, __u64 who, __u8 dir,
				      __u64 vec, __u64 count)
{
	const struct mmsghdr *m = (const struct mmsghdr *)vec;
	__u64 rest = 0;
	int i;

	for (i = 0; i < DBW_MAX_MMSG; i++) {
		struct mmsghdr h;
		__u64 off;

		if (i >= count)
			return;
		if (bpf_probe_read_user(&h, sizeof(h), &m[i]))
			return; /* the caller's own vector: cannot fault after the call */
		off = __sync_fetch_and_add(&st->offset[dir], h.msg_len);
		dbw_emit_iov(st->conn_id, (__u64)h.msg_hdr.msg_iov,
			     IOV_CNT_DIR(h.msg_hdr.msg_iovlen, dir), h.msg_len, off);
	}
	/* More messages than copied: only their lengths, as one gap. */
	for (i = DBW_MAX_MMSG; i < DBW_UIO_MAXIOV; i++) {
		__u32 len = 0;

		if (i >= count)
			break;
		bpf_probe_read_user(&len, sizeof(len), &m[i].msg_len);
		rest += len;
	}
	if (rest)
		emit_gap(st->conn_id, who, dir, rest, __sync_fetch_and_add(&st->offset[dir], rest));
}

/* The hooks that start the programs above (socket tracepoints, per-syscall
 * exits); they need everything before this point. */
#include "io_hooks.bpf.h"

static __always_inline int is_last_reference(struct file *file)
{
	if (bpf_core_field_exists(file->f_ref)) {
		/* file_ref_t stores count - 1: 0 means one reference. */
		return file->f_ref.refcnt.counter == 0;
	}
	struct file___pre_6_13 *old = (void *)file;

	return BPF_CORE_READ(old, f_count.counter) == 1;
}

/* close(2) of the last reference to a tracked socket ends the connection.
 * The postmaster closing its copy after fork is not the last reference. */
SEC("tracepoint/syscalls/sys_enter_close")
int dbw_close(struct trace_event_raw_sys_enter *ctx)
{
	struct dbw_conn_state *st;
	struct file *file;
	__u64 ino;

	if (!is_tracked_process(bpf_get_current_pid_tgid() >> 32))
		return 0;
	file = fd_to_file((int)ctx->args[0]);
	if (!file)
		return 0;
	ino = socket_ino(file);
	if (!ino)
		return 0;
	st = bpf_map_lookup_elem(&conns, &ino);
	if (!st) {
		bpf_map_delete_elem(&ignored, &ino);
		return 0;
	}
	if (!is_last_reference(file))
		return 0;
	end_connection(ino, st);
	return 0;
}

/* Children of a tracked server (backends, workers) are tracked from birth. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(dbw_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid;
	__u32 ctgid = child->tgid;
	__u8 *kind;

	if (ptgid == ctgid || !is_tracked_process(ptgid))
		return 0; /* a new thread, or not ours */
	kind = bpf_map_lookup_elem(&pids, &ptgid); /* server or client, like the parent */
	track(ctgid, kind ? *kind : DBW_PID_SERVER, BPF_ANY);
	return 0;
}

/* A tracked process exits: its sockets close without close(2), so userspace
 * retires the connections it owned. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(dbw_exit, struct task_struct *task)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct dbw_proc_event *e;

	if ((__u32)pid_tgid != tgid || !is_tracked_process(tgid))
		return 0;
	untrack(tgid);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DBW_DROP_RINGBUF_FULL);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.kind = DBW_EV_PROC_EXIT;
	e->hdr.pid = tgid;
	e->hdr.tid = tgid;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
	return 0;
}
