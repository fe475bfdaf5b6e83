/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one header shared by the BPF programs and userspace: every event that
 * crosses the ring buffer and every map key/value userspace touches.
 *
 * Rules: fixed-width types only, explicit enum values, append only.
 */
#ifndef DBWARDEN_BPF_DBWARDEN_H
#define DBWARDEN_BPF_DBWARDEN_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Payload bytes copied per ring-buffer record. A syscall moving more bytes is
 * split into several records (up to DBW_MAX_CHUNKS); the rest is reported as a
 * gap of known length through the next record's offset. */
#define DBW_CHUNK_BYTES 8192
#define DBW_MAX_CHUNKS 4
#define DBW_UNIX_PATH_MAX 108
#define DBW_MAX_PORTS 16

enum dbw_event_kind {
	DBW_EV_DATA = 1,      /* struct dbw_data_event */
	DBW_EV_CONN_OPEN = 2, /* struct dbw_conn_event: first sighting of a socket */
	DBW_EV_CONN_CLOSE = 3, /* struct dbw_conn_event: last reference closed */
	DBW_EV_PROC_EXIT = 4, /* struct dbw_proc_event: a tracked process exited */
	DBW_EV_SERVER = 5,    /* struct dbw_server_event: the kernel found a database server */
};

/* Which end of the connection the capturing process is. Server side: the
 * database's own processes. Client side: a local client connected to a
 * database that is not captured on this host (a remote server). */
enum dbw_side {
	DBW_SIDE_SERVER = 0,
	DBW_SIDE_CLIENT = 1,
};

/* Direction seen from the database server, whichever side captured it. */
enum dbw_direction {
	DBW_DIR_INGRESS = 0, /* client -> server (the server read it) */
	DBW_DIR_EGRESS = 1,  /* server -> client (the server wrote it) */
};

enum dbw_sock_family {
	DBW_FAMILY_UNIX = 1,
	DBW_FAMILY_INET = 2,
	DBW_FAMILY_INET6 = 10,
};

/* Value of the `pids` map: why a process is tracked. Fork children inherit it. */
enum dbw_pid_kind {
	DBW_PID_SERVER = 1, /* a database server process */
	DBW_PID_CLIENT = 2, /* a local client of a database captured client side */
};

/* Index of each drop counter in the per-CPU `drops` array map. */
enum dbw_drop_reason {
	DBW_DROP_RINGBUF_FULL = 0,   /* a record could not be reserved */
	DBW_DROP_TRUNCATED = 1,      /* bytes beyond DBW_MAX_CHUNKS * DBW_CHUNK_BYTES */
	DBW_DROP_CONN_TABLE_FULL = 2, /* the conns map had no room for a new socket */
	DBW_DROP_READ_FAILED = 3,    /* bpf_probe_read_user of the payload failed */
	DBW_DROP_COMPAT_SYSCALL = 4, /* a tracked process made a 32-bit (compat) syscall: not decoded */
	DBW_DROP_MAX = 5,
};

struct dbw_event_header {
	__u32 kind;  /* enum dbw_event_kind */
	__u32 pid;   /* tgid of the process that made the syscall */
	__u32 tid;
	__u32 _pad;
	__u64 ts_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 conn_id; /* unique per socket for the life of the pinned maps */
};

struct dbw_data_event {
	struct dbw_event_header hdr;
	__u64 offset;   /* position of data[0] in this direction's byte stream */
	__u32 length;   /* bytes this record stands for (data holds `captured` of them) */
	__u32 captured; /* bytes present in data[]; length - captured were not copied */
	__u8 direction; /* enum dbw_direction */
	__u8 flags;     /* enum dbw_data_flags (was padding: old recordings read as 0) */
	__u8 _pad[6];
	__u8 data[DBW_CHUNK_BYTES];
};

/* Bits of dbw_data_event.flags. */
enum dbw_data_flags {
	/* A record with no payload standing for the middle of a large
	 * server-to-client write that was left out on purpose (the bulk-data
	 * bound, see `bulk_head_bytes` in dbwarden.bpf.c): not a loss. It is
	 * counted in the `bulk` map, never as DBW_DROP_TRUNCATED. */
	DBW_DATA_BULK_SKIPPED = 1,
};

struct dbw_conn_event {
	struct dbw_event_header hdr;
	__u8 family;     /* enum dbw_sock_family */
	__u8 side;       /* enum dbw_side (was padding: old recordings read as server side) */
	__u8 _pad[2];
	__u16 server_port; /* host order; for unix sockets the port in .s.PGSQL.<port> */
	__u16 client_port; /* host order; 0 for unix sockets */
	__u8 server_addr[16]; /* IPv4 in the first 4 bytes */
	__u8 client_addr[16];
	__u64 sock_ino;      /* key of the `conns` map entry */
	__u64 ingress_bytes; /* totals at close (CONN_CLOSE only) */
	__u64 egress_bytes;
	/* Unix sockets, server side: the inode of the client's socket (its key
	 * in `local_clients`); 0 otherwise. Absent from older recordings, which
	 * read as 0. */
	__u64 peer_ino;
};

/* Key of the `local_clients` map: the client end of a connection from a
 * process on this host to the database. TCP: both ends, addresses in IPv6
 * form (IPv4 as ::ffff:a.b.c.d), so an IPv4 client of a dual-stack listener
 * meets its server side's key. Unix: only the client socket's inode. */
struct dbw_client_key {
	__u64 unix_ino;
	__u8 client_addr[16];
	__u8 server_addr[16];
	__u16 client_port; /* host order */
	__u16 server_port;
	__u32 _pad;
};

#define DBW_CGROUP_LEVELS 3
#define DBW_CGROUP_NAME_BYTES 64

/* Value of `local_clients`: who connect(2)ed, as the kernel saw it then, for
 * when the process is gone before the agent reads /proc. */
struct dbw_client_info {
	__u32 tgid;
	__u32 uid;      /* effective uid at connect */
	__u32 loginuid; /* (__u32)-1 when unset */
	__u32 _pad;
	char comm[16];
	/* The names of its cgroup (v2) and of the parents above it, innermost
	 * first, NUL-terminated, "" past the root: where the systemd unit or the
	 * container id is, even after a transient unit's cgroup is gone. */
	char cgroup[DBW_CGROUP_LEVELS][DBW_CGROUP_NAME_BYTES];
};

struct dbw_proc_event {
	struct dbw_event_header hdr;
};

/* How the kernel side found a server without waiting for userspace. */
enum dbw_server_how {
	/* An untracked process accepted a connection on a watched TCP port or
	 * unix path: it is tracked from then on, that connection from its first
	 * byte. */
	DBW_SERVER_ACCEPT = 1,
	/* A process that listens on a watched TCP port (or a unix socket named
	 * .s.PGSQL.<watched port>) listened on a unix socket: its path is
	 * watched from then on, standing for `port`. */
	DBW_SERVER_UNIX_PATH = 2,
};

struct dbw_server_event {
	struct dbw_event_header hdr; /* pid: the server process; conn_id 0 */
	__u8 how;    /* enum dbw_server_how */
	__u8 family; /* enum dbw_sock_family of the socket */
	__u16 port;  /* the watched port (a unix path: the port it stands for) */
	__u32 _pad;
	char path[DBW_UNIX_PATH_MAX]; /* unix sockets: the path, NUL-padded */
	__u8 _pad2[4];
};

/* Value of the one-entry `agent` array map, written by userspace at each
 * start. The kernel's own server discovery (accept, listen) skips the agent's
 * own sockets and sockets of other network namespaces (a container's server
 * is not the one the agent's ports name; /proc/net shows the agent only its
 * own namespace too). */
struct dbw_agent {
	__u32 tgid;
	__u32 netns_ino; /* inode of the agent's network namespace (/proc/self/ns/net) */
};

/* Value of the `conns` map, keyed by the socket inode number (__u64). */
struct dbw_conn_state {
	__u64 conn_id;
	__u64 offset[2]; /* next stream offset per enum dbw_direction */
	__u16 server_port;
	__u8 family;
	__u8 side; /* enum dbw_side */
	__u8 flags; /* enum dbw_conn_flags (was padding: pinned entries of older agents read 0) */
	/* 1: the connection carries TLS, its syscall bytes are ciphertext (set by
	 * the syscall program, bpf/tls.bpf.h). A byte of its own, so that setting
	 * it never races with the read-modify-write of `flags`. */
	__u8 tls;
	/* 1: the enforcement proxy's own upstream connection (set by userspace once
	 * it knows the peer is the proxy): the proxy records its statements with the
	 * real client, so the programs copy none of its bytes. Was padding. */
	__u8 muted;
	__u8 _pad;
};

/* Bits of dbw_conn_state.flags, copied from the `ports` value at first sighting. */
enum dbw_conn_flags {
	DBW_CONN_BULK_BOUND = 1, /* server-to-client writes are cut to head + tail */
	/* Client bytes arrived since the last server write: the next server write
	 * starts a response and keeps its head. Later writes of the same response
	 * (the server flushes every 8 KiB) keep only their tail. */
	DBW_CONN_RESPONSE_START = 2,
};

/* Bits of a `ports` map value (index = port). Any non-zero value watches the
 * port; older agents wrote 1. */
enum dbw_port_flags {
	DBW_PORT_WATCHED = 1,
	/* PostgreSQL: bound server-to-client bulk data (DataRow, CopyData) to a
	 * head and a tail per write. Never set for MySQL: its decoder counts a
	 * SELECT's rows from every row packet header (the final OK/EOF carries no
	 * row count), so it needs every server byte. */
	DBW_PORT_BULK_BOUND = 2,
};

/* The bulk-data bound's head and tail are each at most one chunk. */
#define DBW_BULK_MAX_BYTES DBW_CHUNK_BYTES

/* Index of each counter in the per-CPU `bulk` array map. */
enum dbw_bulk_stat {
	DBW_BULK_SKIPPED_BYTES = 0,   /* bytes left out by the bulk-data bound */
	DBW_BULK_SKIPPED_RECORDS = 1, /* DBW_DATA_BULK_SKIPPED records (skips) */
	DBW_BULK_STAT_MAX = 2,
};

/* Key of the `unix_paths` map: a server's listening unix socket path,
 * NUL-padded. The value is the server port it stands for (__u16). */
struct dbw_unix_path {
	char path[DBW_UNIX_PATH_MAX];
};

/* Index of each TLS counter in the per-CPU `tls_stats` array map (bpf/tls.bpf.h). */
enum dbw_tls_stat {
	DBW_TLS_STAT_CONNECTIONS = 0,          /* tracked connections found to carry TLS */
	DBW_TLS_STAT_PLAINTEXT_CALLS = 1,      /* SSL_read/SSL_write results emitted */
	DBW_TLS_STAT_CIPHERTEXT_SUPPRESSED = 2, /* syscalls of TLS connections not emitted */
	DBW_TLS_STAT_UNKNOWN_SSL = 3,          /* TLS calls of a server on an SSL* of no tracked socket */
	DBW_TLS_STAT_CALL_NOT_RECORDED = 4,    /* no memory to note a server thread's libssl call */
	DBW_TLS_STAT_MAX = 5,
};

/* Value of the one-entry `meta` array map. It is pinned with the other state
 * maps, so it outlives the agent: a restarted agent compares object_id with
 * the identifier of the object it embeds to decide whether the pinned programs
 * and maps are its own (resume) or stale (remove and start fresh). */
struct dbw_meta {
	__u64 object_id;    /* written by userspace once, before the programs attach */
	__u64 next_conn_id; /* next connection id (atomic add in the programs) */
};

/* Steps of the data path timed by the opt-in step profile (bpf/step_profile.bpf.h, built
 * with -DDBW_STEP_PROFILE only): index into its per-CPU `step_prof` map. */
enum dbw_prof_step {
	DBW_PROF_STEP_CLOCK = 0,   /* two marks back to back: one clock read's share of a step */
	DBW_PROF_STEP_FILTER = 1,  /* hook entry to a data call of a tracked process */
	DBW_PROF_STEP_FD = 2,      /* the syscall's fd -> file -> socket inode */
	DBW_PROF_STEP_CONN = 3,    /* the `conns` lookup (and classify on a miss) */
	DBW_PROF_STEP_TLS = 4,     /* the TLS check */
	DBW_PROF_STEP_OFFSET = 5,  /* stream offset and the bulk-data bound's bookkeeping */
	DBW_PROF_STEP_RESERVE = 6, /* bpf_ringbuf_reserve */
	DBW_PROF_STEP_HEADER = 7,  /* the record header: pid, time, conn id */
	DBW_PROF_STEP_COPY = 8,    /* bpf_probe_read_user of the payload */
	DBW_PROF_STEP_SUBMIT = 9,  /* wake-up decision and bpf_ringbuf_submit */
	DBW_PROF_STEPS = 10,
};

#endif /* DBWARDEN_BPF_DBWARDEN_H */
