/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TLS plaintext capture: uprobes on OpenSSL's libssl, #included by
 * dbwarden.bpf.c after emit_data() and before the syscall program.
 *
 * How a TLS connection keeps its identity. PostgreSQL (server and libpq) gives
 * OpenSSL a custom BIO, not a file descriptor, so the SSL* cannot be tied to a
 * socket by reading the SSL object. Instead:
 *   1. entry probes on SSL_read/SSL_write/_ex and on the handshake calls
 *      (SSL_do_handshake/SSL_accept/SSL_connect) remember, per thread, the SSL*
 *      the thread is inside of (tls_calls);
 *   2. the syscall program, for a socket already tracked in `conns`, asks
 *      dbw_tls_syscall(): a syscall made from inside an SSL call moves the
 *      ciphertext of that SSL*, so SSL* -> socket inode goes into tls_ssl_sock
 *      and the connection is marked (dbw_conn_state.tls). Every syscall byte
 *      of a marked connection is ciphertext and is not emitted;
 *   3. the exit probes of SSL_read/SSL_write emit the plaintext through
 *      emit_data() on the connection found via SSL* -> inode (the thread's
 *      own tie in tls_calls first, tls_ssl_sock for another thread's), with the
 *      connection's own stream offsets: the plaintext continues exactly where
 *      the plaintext SSLRequest / 'S' exchange stopped, same conn_id, same
 *      record layout. An SSL_read served from OpenSSL's buffer (no syscall
 *      underneath) still finds its connection through the SSL*.
 *
 * The probes are attached per libssl file with pid -1 (userspace, see
 * userspace/capture/tls_attach.cc), so they fire in every process that maps
 * that file; the first check rejects processes that are not tracked servers.
 * The "entry" probes may sit a few instructions into the function and the
 * "exit" probes on the function's return sites instead of a uretprobe
 * (tls_probe_sites.h says why: no single-step); the argument registers are
 * unchanged at an entry site and rax holds the return value at a return site.
 *
 * OpenSSL signatures (https://www.openssl.org/docs/man3.0/man3/SSL_read.html):
 *   int SSL_read(SSL *ssl, void *buf, int num);          returns bytes or <= 0
 *   int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes);  1/0
 *   int SSL_write(SSL *ssl, const void *buf, int num);
 *   int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written);
 *   int SSL_do_handshake(SSL *ssl); SSL_accept(SSL *ssl); SSL_connect(SSL *ssl);
 */
#ifndef DBWARDEN_BPF_TLS_BPF_H
#define DBWARDEN_BPF_TLS_BPF_H

enum dbw_tls_op {
	DBW_TLS_OP_HANDSHAKE = 0,
	DBW_TLS_OP_READ = 1,
	DBW_TLS_OP_WRITE = 2,
};

/* What a thread is doing inside libssl, from the entry probe to the exit,
 * and the connection of the SSL* it last worked on (the "tie"). */
struct dbw_tls_call {
	__u64 ssl;     /* SSL* in the caller's address space */
	__u64 buf;     /* plaintext buffer (read/write) */
	__u64 len_ptr; /* size_t* readbytes/written of the _ex variants, else 0 */
	/* The tie: SSL* tie_ssl moved the ciphertext of socket tie_ino, whose
	 * `conns` entry had conn_id tie_conn. A thread serves one connection
	 * at a time (a PostgreSQL backend, a MariaDB connection thread), so the
	 * exit probe finds the connection here instead of in the tls_ssl_sock
	 * hash (bench/README.md, "the libssl probes' share"). tie_conn tells a socket
	 * inode that was closed and reused by another connection. */
	__u64 tie_ssl;
	__u64 tie_ino;
	__u64 tie_conn;
	__u8 op;     /* enum dbw_tls_op */
	__u8 active; /* 1 from the entry probe to the exit probe */
	__u8 _pad[6];
};

/* SSL* values are addresses: unique only within one process. */
struct dbw_tls_ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 _pad;
};

/* The libssl call a thread is in, stored with the thread itself (task local
 * storage): reaching it is a pointer walk from the task, not a hash lookup,
 * and it goes away with the thread. Every syscall on a tracked connection
 * and every libssl probe asks for it. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dbw_tls_call);
} tls_calls SEC(".maps");

/* The call `task` (the current thread) is in, or NULL when it is in none. */
static __always_inline struct dbw_tls_call *tls_task_call(struct task_struct *task)
{
	struct dbw_tls_call *call;

	/* A thread no program gave local storage (none of its threads ever
	 * entered libssl: every thread of a plaintext server, and the libssl
	 * users that are not tracked) has none at all: one load answers,
	 * where the lookup helper was ~8 % of a captured call (bench/README.md). */
	if (bpf_core_field_exists(task->bpf_storage) && !task->bpf_storage)
		return NULL;
	call = bpf_task_storage_get(&tls_calls, task, 0, 0);
	return call && call->active ? call : NULL;
}

static __always_inline struct dbw_tls_call *tls_current_call(void)
{
	return tls_task_call(bpf_get_current_task_btf());
}

/* (tgid, SSL*) -> socket inode, learned from the syscalls under SSL calls.
 * LRU: an SSL* that is gone costs nothing but a slot. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct dbw_tls_ssl_key);
	__type(value, __u64);
} tls_ssl_sock SEC(".maps");

/* Per-CPU counters, index enum dbw_tls_stat (dbwarden.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DBW_TLS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tls_stats SEC(".maps");

static __always_inline void tls_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&tls_stats, &stat);

	if (v)
		*v += 1;
}

/* Remembers in the thread's call that `call->ssl` is the connection of socket
 * `ino` (`st`). */
static __always_inline void tls_tie(struct dbw_tls_call *call, __u64 ino,
				    const struct dbw_conn_state *st)
{
	call->tie_ssl = call->ssl;
	call->tie_ino = ino;
	call->tie_conn = st->conn_id;
}

/*
 * Called by the syscall program for every syscall moving bytes on a tracked
 * connection. Returns 1 when the bytes are ciphertext and must not be emitted.
 */
static __always_inline int dbw_tls_syscall(struct task_struct *task, __u64 ino,
					   struct dbw_conn_state *st)
{
	struct dbw_tls_call *call;

	if (st->tls) {
		tls_count(DBW_TLS_STAT_CIPHERTEXT_SUPPRESSED);
		return 1;
	}
	call = tls_task_call(task);
	if (!call)
		return 0;
	struct dbw_tls_ssl_key key = { .ssl = call->ssl, .tgid = task->tgid };

	/* A plain byte store: the connection's other flags are not touched. */
	st->tls = 1;
	tls_count(DBW_TLS_STAT_CONNECTIONS);
	/* The hash serves the other threads of the process (a thread pool
	 * moving the connection between threads); this thread has the tie. */
	bpf_map_update_elem(&tls_ssl_sock, &key, &ino, BPF_ANY);
	tls_tie(call, ino, st);
	tls_count(DBW_TLS_STAT_CIPHERTEXT_SUPPRESSED);
	return 1;
}

/* Starts the libssl call of `task` (the current thread, of a tracked
 * process). A call whose exit was missed is simply replaced; the tie stays. */
static __always_inline int tls_begin(struct task_struct *task, __u8 op, __u64 ssl, __u64 buf,
				     __u64 len_ptr)
{
	struct dbw_tls_call *call =
		bpf_task_storage_get(&tls_calls, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!call) {
		/* No memory for the thread's slot: its syscalls would not be
		 * known as ciphertext until the connection is marked. */
		tls_count(DBW_TLS_STAT_CALL_NOT_RECORDED);
		return 0;
	}
	call->ssl = ssl;
	call->buf = buf;
	call->len_ptr = len_ptr;
	call->op = op;
	call->active = 1;
	return 0;
}

/* Every libssl user on the host comes here: the current task is fetched once
 * (one helper call, where the pid/tgid helper and then the task were two) and
 * a process that is not tracked leaves at the pid bitmap. */
static __always_inline int tls_enter(__u8 op, __u64 ssl, __u64 buf, __u64 len_ptr)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!is_tracked_process(task->tgid))
		return 0;
	return tls_begin(task, op, ssl, buf, len_ptr);
}

/* The connection whose plaintext the call moved: the thread's tie when it
 * names the call's SSL* and its connection is still open, else the SSL* as
 * another thread tied it (tls_ssl_sock), which then becomes this thread's
 * tie. NULL: an SSL* never seen moving a tracked connection's bytes. */
static __always_inline struct dbw_conn_state *tls_call_conn(struct task_struct *task,
							    struct dbw_tls_call *call)
{
	struct dbw_tls_ssl_key key = { .ssl = call->ssl, .tgid = task->tgid };
	struct dbw_conn_state *st;
	__u64 ino, *found;

	if (call->tie_ssl == call->ssl) {
		ino = call->tie_ino;
		st = bpf_map_lookup_elem(&conns, &ino);
		if (st && st->conn_id == call->tie_conn)
			return st;
	}
	found = bpf_map_lookup_elem(&tls_ssl_sock, &key);
	if (!found)
		return NULL;
	ino = *found;
	st = bpf_map_lookup_elem(&conns, &ino);
	if (st)
		tls_tie(call, ino, st);
	return st;
}

/* ret: the function's return value. For SSL_read/SSL_write it is the byte
 * count; for the _ex variants (len_ptr set) success is 1 and the count is in
 * *len_ptr. */
static __always_inline int tls_exit(long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct dbw_tls_call *call;
	struct dbw_conn_state *st;
	__u64 n = 0;

	/* Every libssl user on the host comes here (clients too); only a
	 * thread of a tracked process has a call recorded, and a thread that
	 * never entered a call of a tracked process has no local storage at
	 * all: one load sends it away. */
	call = tls_task_call(task);
	if (!call)
		return 0;
	if (call->len_ptr) {
		if (ret == 1)
			bpf_probe_read_user(&n, sizeof(n), (void *)call->len_ptr);
	} else if (ret > 0) {
		n = (__u64)ret;
	}
	call->active = 0;
	if (call->op == DBW_TLS_OP_HANDSHAKE || n == 0)
		return 0;
	st = tls_call_conn(task, call);
	if (!st) {
		/* Not a tracked connection (another TLS peer of a server process,
		 * or a connection whose handshake predates the probes). */
		tls_count(DBW_TLS_STAT_UNKNOWN_SSL);
		return 0;
	}
	tls_count(DBW_TLS_STAT_PLAINTEXT_CALLS);
	DBW_PROF_BEGIN(); /* the emit steps of a TLS record count from here */
	/* Seen from the server: what it reads came from the client. pid and
	 * tid from the task at hand: no helper call. */
	emit_data(st, (__u64)task->tgid << 32 | (__u32)task->pid,
		  call->op == DBW_TLS_OP_READ ? DBW_DIR_INGRESS : DBW_DIR_EGRESS,
		  (const char *)call->buf, n);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(dbw_ssl_read_enter, void *ssl, void *buf)
{
	return tls_enter(DBW_TLS_OP_READ, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe")
int BPF_KPROBE(dbw_ssl_write_enter, void *ssl, const void *buf)
{
	return tls_enter(DBW_TLS_OP_WRITE, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe")
int BPF_KPROBE(dbw_ssl_read_ex_enter, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return tls_enter(DBW_TLS_OP_READ, (__u64)ssl, (__u64)buf, (__u64)readbytes);
}

SEC("uprobe")
int BPF_KPROBE(dbw_ssl_write_ex_enter, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return tls_enter(DBW_TLS_OP_WRITE, (__u64)ssl, (__u64)buf, (__u64)written);
}

/* SSL_do_handshake, SSL_accept and SSL_connect share it. A handshake call
 * nested in a read or write (renegotiation, or SSL_accept -> SSL_do_handshake)
 * must not replace the outer call's saved buffer: only a thread that is in no
 * libssl call records one. */
SEC("uprobe")
int BPF_KPROBE(dbw_ssl_handshake_enter, void *ssl)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!is_tracked_process(task->tgid))
		return 0;
	if (tls_task_call(task))
		return 0;
	return tls_begin(task, DBW_TLS_OP_HANDSHAKE, (__u64)ssl, 0, 0);
}

/* Ends only a handshake call: the nested case above leaves the outer read or
 * write in place for its own return probe. */
SEC("uretprobe")
int BPF_KRETPROBE(dbw_ssl_handshake_exit)
{
	struct dbw_tls_call *call = tls_current_call();

	if (call && call->op == DBW_TLS_OP_HANDSHAKE)
		call->active = 0;
	return 0;
}

/* One return probe serves the four data calls: the entry saved what it means.
 * Attached either as a uretprobe or, to spare the kernel a single-step, as a
 * plain uprobe on each return site (userspace/capture/tls_probe_sites.h): an
 * emulated instruction from which the function falls through to its ret with
 * rax final, so PT_REGS_RC reads the return value in both cases.
 * The functions return C int: only the low 32 bits of the return register
 * are defined, so -1 (SSL_ERROR_WANT_READ) must not read as 4294967295. */
SEC("uretprobe")
int BPF_KRETPROBE(dbw_ssl_exit, int ret)
{
	return tls_exit(ret);
}

#endif /* DBWARDEN_BPF_TLS_BPF_H */
