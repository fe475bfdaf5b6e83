// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dbwarden capture programs: copy the bytes database server processes read
 * from and write to their client sockets into a ring buffer.
 *
 * Cost model. Every syscall of every process on the host passes through the
 * sys_exit hook, so the common path must reject in a few instructions:
 *   1. syscall number not one that moves socket data  -> return
 *   2. the calling process is not a tracked server     -> return (one hash lookup)
 *   3. fd -> file -> inode; the inode is looked up in `conns` (tracked sockets)
 *      and `ignored` (sockets of the server we decided not to audit).
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_sendto 44
#define NR_recvfrom 45
#else
#error "dbwarden's syscall capture supports x86_64 only for now"
#endif

/* Set by userspace between open and load. */
const volatile __u32 wakeup_bytes = 256 * 1024; /* wake the reader past this backlog */

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

/* tgids of database server processes (postmaster and its children). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

/* Local TCP ports the database listens on: index = port, value != 0. */
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

/* Sockets of tracked processes that are not database client connections
 * (replication to elsewhere, stats, ...). LRU: a stale entry only costs a
 * re-classification. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} ignored SEC(".maps");

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

/* Turns a kernel pointer obtained by a probe read into a BTF-typed pointer, so
 * that its fields are read with plain (fault-safe) loads instead of one helper
 * call each. Kernel 6.2+ (commit a35b9af4ec2c, "bpf: Add a kfunc for generic
 * type cast"). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define as_btf(type, ptr) ((type *)bpf_rdonly_cast((ptr), bpf_core_type_id_kernel(type)))

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
	return bpf_map_lookup_elem(&pids, &tgid) != NULL;
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

static __always_inline void emit_conn_event(__u32 kind, __u64 ino, struct sock *sk,
					    const struct dbw_conn_state *st)
{
	struct dbw_conn_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (!e) {
		count_drop(DBW_DROP_RINGBUF_FULL);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.kind = kind;
	e->hdr.pid = pid_tgid >> 32;
	e->hdr.tid = (__u32)pid_tgid;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.conn_id = st->conn_id;
	e->sock_ino = ino;
	e->family = st->family;
	e->server_port = st->server_port;
	e->ingress_bytes = st->offset[DBW_DIR_INGRESS];
	e->egress_bytes = st->offset[DBW_DIR_EGRESS];
	if (sk && st->family == DBW_FAMILY_INET) {
		bpf_core_read(e->server_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->client_addr, 4, &sk->__sk_common.skc_daddr);
		e->client_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	} else if (sk && st->family == DBW_FAMILY_INET6) {
		bpf_core_read(e->server_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->client_addr, 16, &sk->__sk_common.skc_v6_daddr);
		e->client_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
	bpf_ringbuf_submit(e, 0);
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

		if (!watched || !*watched)
			goto ignore;
		st.family = family == AF_INET ? DBW_FAMILY_INET : DBW_FAMILY_INET6;
		st.server_port = port;
	} else if (family == AF_UNIX) {
		struct unix_sock *us = (struct unix_sock *)sk;
		struct unix_address *addr = BPF_CORE_READ(us, addr);
		struct dbw_unix_path key = {};
		__u16 *port;

		if (!addr)
			goto ignore;
		bpf_probe_read_kernel_str(key.path, sizeof(key.path), &addr->name[0].sun_path);
		port = bpf_map_lookup_elem(&unix_paths, &key);
		if (!port)
			goto ignore;
		st.family = DBW_FAMILY_UNIX;
		st.server_port = *port;
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

/* Most database messages are small: reserve a fixed-size record and copy the
 * user buffer straight into the ring (one copy). Larger ones go through the
 * per-CPU scratch record and bpf_ringbuf_output (two copies, exact size). */
#define DBW_SMALL_BYTES 256

static __always_inline void fill_header(struct dbw_data_event *e, struct dbw_conn_state *st,
					__u8 dir)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->hdr.kind = DBW_EV_DATA;
	e->hdr.pid = pid_tgid >> 32;
	e->hdr.tid = (__u32)pid_tgid;
	e->hdr._pad = 0;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.conn_id = st->conn_id;
	e->direction = dir;
}

static __always_inline void emit_small(struct dbw_conn_state *st, __u8 dir, const char *buf,
				       __u32 len, __u64 offset)
{
	struct dbw_data_event *e;

	e = bpf_ringbuf_reserve(&events, offsetof(struct dbw_data_event, data) + DBW_SMALL_BYTES,
				0);
	if (!e) {
		count_drop(DBW_DROP_RINGBUF_FULL);
		return;
	}
	fill_header(e, st, dir);
	e->offset = offset;
	e->length = len;
	e->captured = len;
	barrier_var(len); /* keep the bound check below visible to the verifier */
	if (len > DBW_SMALL_BYTES || bpf_probe_read_user(e->data, len, buf)) {
		count_drop(DBW_DROP_READ_FAILED);
		e->captured = 0;
	}
	bpf_ringbuf_submit(e, ringbuf_flags(offsetof(struct dbw_data_event, data) + DBW_SMALL_BYTES));
}

static __always_inline void emit_data(struct dbw_conn_state *st, __u8 dir, const char *buf,
				      __u64 len)
{
	__u32 zero = 0;
	struct dbw_data_event *e;
	__u64 offset = __sync_fetch_and_add(&st->offset[dir & 1], len);
	__u64 done = 0;

	if (len <= DBW_SMALL_BYTES) {
		emit_small(st, dir, buf, (__u32)len, offset);
		return;
	}
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return;
	fill_header(e, st, dir);

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
	if (done < len) {
		/* Too large for DBW_MAX_CHUNKS: tell userspace exactly what it misses. */
		count_drop(DBW_DROP_TRUNCATED);
		e->offset = offset + done;
		e->length = len - done;
		e->captured = 0;
		if (bpf_ringbuf_output(&events, e, offsetof(struct dbw_data_event, data), 0))
			count_drop(DBW_DROP_RINGBUF_FULL);
	}
}

/* One program for the exit of every syscall: cheaper than entry+exit pairs
 * on the four data syscalls (no map to carry arguments from entry to exit),
 * since the saved user registers still hold the arguments at exit. */
SEC("tp_btf/sys_exit")
int BPF_PROG(dbw_sys_exit, struct pt_regs *regs, long ret)
{
	struct dbw_conn_state *st;
	struct file *file;
	long nr;
	__u8 dir;
	__u64 ino;

	if (ret <= 0)
		return 0;
	nr = regs->orig_ax;
	if (nr == NR_read || nr == NR_recvfrom)
		dir = DBW_DIR_INGRESS;
	else if (nr == NR_write || nr == NR_sendto)
		dir = DBW_DIR_EGRESS;
	else
		return 0;
	if (!is_tracked_process(bpf_get_current_pid_tgid() >> 32))
		return 0;

	file = fd_to_file((int)regs->di);
	if (!file)
		return 0;
	ino = socket_ino(file);
	if (!ino)
		return 0;
	st = bpf_map_lookup_elem(&conns, &ino);
	if (!st) {
		if (bpf_map_lookup_elem(&ignored, &ino))
			return 0;
		st = classify(file, ino);
		if (!st)
			return 0;
	}
	emit_data(st, dir, (const char *)regs->si, (__u64)ret);
	return 0;
}

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
	emit_conn_event(DBW_EV_CONN_CLOSE, ino, NULL, st);
	bpf_map_delete_elem(&conns, &ino);
	return 0;
}

/* Children of a tracked server (backends, workers) are tracked from birth. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(dbw_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid;
	__u32 ctgid = child->tgid;
	__u8 one = 1;

	if (ptgid == ctgid || !is_tracked_process(ptgid))
		return 0; /* a new thread, or not ours */
	bpf_map_update_elem(&pids, &ctgid, &one, BPF_ANY);
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
	bpf_map_delete_elem(&pids, &tgid);
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
