/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Where the capture enters the kernel: the hooks that start the programs of
 * dbwarden.bpf.c, included by it (they share its maps and helpers).
 *
 * Cost model. A hook that fires for every system call of every process (the
 * raw `sys_exit` tracepoint this replaced) starts the program 26-106 times per
 * `pgbench -S` statement on a busy host instead of ~11, and each start is
 * counted as BPF time even when it leaves at once. So each hook here fires
 * only for the operations it handles:
 *   - data: the socket layer's own tracepoints, `sock_send_length` and
 *     `sock_recv_length` (kernel >= 6.3), fire once per send or receive on a
 *     socket, whichever system call made it; a read of a file or a pipe never
 *     starts a program. The system call's arguments (buffer, iovecs) are read
 *     from the task's saved user registers; the socket is the tracepoint's
 *     (dbw_on_data says why the fd table is read only at a first sighting);
 *   - recvmmsg/sendmmsg (one socket event per message: the whole vector is
 *     read once at the call's exit), accept, accept4, connect, listen: their
 *     own `syscalls:sys_exit_*` tracepoints, which the kernel skips for every
 *     other system call with one bit test before any program runs;
 *   - close: `syscalls:sys_enter_close` (dbwarden.bpf.c).
 * Kernels without the socket tracepoints get per-system-call exit programs
 * for read, write, readv, writev, recvfrom, sendto, recvmsg and sendmsg
 * instead (userspace chooses before load: capture.cc's choose_programs).
 *
 * 32-bit (compat) system calls: x86 syscall tracepoints never report them
 * (the kernel's ARCH_TRACE_IGNORE_COMPAT_SYSCALLS), but the socket
 * tracepoints do, from inside the call: one of a tracked process is counted
 * (DBW_DROP_COMPAT_SYSCALL), never decoded with the 64-bit table.
 */
#ifndef DBWARDEN_BPF_IO_HOOKS_BPF_H
#define DBWARDEN_BPF_IO_HOOKS_BPF_H

#define DBW_MSG_PEEK 0x2
#define DBW_MSG_ERRQUEUE 0x2000
/* include/linux/sched.h: no system call of its own behind the socket call. */
#define DBW_PF_IO_WORKER 0x00000010
#define DBW_PF_KTHREAD 0x00200000

/* TS_COMPAT (arch/x86/include/asm/thread_info.h): the current syscall is a
 * 32-bit one, whatever the process's bitness (the kernel's in_ia32_syscall). */
#define DBW_TS_COMPAT 0x0002

static __always_inline int in_compat_syscall(struct task_struct *task)
{
#if defined(__TARGET_ARCH_x86)
	if (bpf_core_field_exists(task->thread_info.status))
		return (task->thread_info.status & DBW_TS_COMPAT) != 0;
#endif
	return 0;
}

/* The user registers saved at system call entry: orig_ax is the call's
 * number, di/si/dx its first arguments (unchanged until the return to user
 * space, which comes after every hook here). */
static __always_inline struct pt_regs *syscall_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/*
 * A socket of a tracked process seen for the first time (no `conns` entry):
 * whether it is a database connection, decided once (classify) and
 * remembered in `conns` or `ignored`. Returns 1 when `conns` now has it.
 *
 * The caller found `ino`: a syscall exit program from the call's fd, a socket
 * tracepoint from the socket it reports. The latter is not checked against
 * the fd table on every call (that walk was ~15 % of a captured call's BPF
 * time, bench/README.md): the socket a send or receive of these calls reports
 * is the one its fd names, unless the kernel itself moves bytes on a
 * user-space socket inside another file's read or write (an NBD or 9p
 * transport socket), and such a socket is never a tracked database
 * connection. This first sighting, which decides whether it is one, is
 * checked against the fd. A global function: verified once, on its own, and
 * kept out of the hot path's program text.
 */
__noinline int dbw_first_sighting(__u64 ino)
{
	struct file *file;

	if (bpf_map_lookup_elem(&ignored, &ino))
		return 0;
	file = fd_to_file((int)syscall_regs()->di);
	if (!file || socket_ino(file) != ino)
		return 0; /* a socket call made on the way by something else */
	return classify(file, ino) != NULL;
}

/* The connection whose bytes the current task (`task`) moved on socket `ino`,
 * or NULL when none are to be emitted: no database connection, muted, or TLS
 * (ciphertext: the plaintext comes from the libssl probes). Every data path
 * asks this first, in the program itself: the functions it then calls
 * (dbw_on_data, dbw_on_iov) call no dbw_first_sighting of their own, so that
 * no chain of calls stacks more than the verifier's 512 bytes. */
static __always_inline struct dbw_conn_state *data_conn(struct task_struct *task, __u64 ino)
{
	struct dbw_conn_state *st = bpf_map_lookup_elem(&conns, &ino);

	if (!st) {
		if (!dbw_first_sighting(ino))
			return NULL;
		st = bpf_map_lookup_elem(&conns, &ino);
		if (!st)
			return NULL;
	}
	if (st->muted)
		return NULL; /* the enforcement proxy records this connection itself */
	DBW_PROF_STEP(DBW_PROF_STEP_CONN);
	if (dbw_tls_syscall(task, ino, st))
		return NULL;
	DBW_PROF_STEP(DBW_PROF_STEP_TLS);
	return st;
}

/* How the data path takes system call `nr`: the direction of a read, write,
 * recvfrom or sendto, or one of these. */
#define DBW_CALL_IOV 2  /* readv, writev, recvmsg, sendmsg: dbw_on_iov */
#define DBW_CALL_MMSG 3 /* recvmmsg, sendmmsg: at their exits only */
#define DBW_CALL_NONE 4 /* no data call (io_uring, sendfile, ...) */

static __always_inline __u8 data_call(__u64 nr)
{
	switch (nr) {
	case NR_read:
	case NR_recvfrom:
		return DBW_DIR_INGRESS;
	case NR_write:
	case NR_sendto:
		return DBW_DIR_EGRESS;
	case NR_readv:
	case NR_writev:
	case NR_recvmsg:
	case NR_sendmsg:
		return DBW_CALL_IOV;
	case NR_recvmmsg:
	case NR_sendmmsg:
		return DBW_CALL_MMSG;
	default:
		return DBW_CALL_NONE;
	}
}

/*
 * The data paths after data_conn() said the bytes of socket `ino` are to be
 * emitted. The current task, a tracked process, is in system call `nr`, which
 * moved `ret` > 0 bytes (messages, for the mmsg calls); `buf` and `arg3` are
 * the call's second and third arguments (the buffer, iovec array, msghdr or
 * mmsghdr vector; the iovec count of readv/writev). Global functions (scalar
 * arguments only): verified once, whichever hooks call them.
 *
 * dbw_on_iov: readv, writev, recvmsg, sendmsg. A small frame of its own: the
 * socket hooks, whose frame holds the inlined fast path, call it.
 */
__noinline int dbw_on_iov(__u64 nr, __u64 ret, __u64 ino, __u64 buf, __u64 arg3)
{
	struct dbw_conn_state *st = bpf_map_lookup_elem(&conns, &ino);
	struct user_msghdr h;
	__u64 off;
	__u8 d;

	if (!st)
		return 0; /* closed meanwhile */
	switch (nr) {
	case NR_readv:
	case NR_writev:
		d = ((nr == NR_readv ? DBW_DIR_INGRESS : DBW_DIR_EGRESS) ^ st->side) & 1;
		off = __sync_fetch_and_add(&st->offset[d], ret);
		dbw_emit_iov(st->conn_id, buf, IOV_CNT_DIR(arg3, d), ret, off);
		return 0;
	case NR_recvmsg:
	case NR_sendmsg:
		d = ((nr == NR_recvmsg ? DBW_DIR_INGRESS : DBW_DIR_EGRESS) ^ st->side) & 1;
		off = __sync_fetch_and_add(&st->offset[d], ret);
		if (bpf_probe_read_user(&h, sizeof(h), (void *)buf))
			__builtin_memset(&h, 0, sizeof(h)); /* all of it becomes a gap */
		dbw_emit_iov(st->conn_id, (__u64)h.msg_iov, IOV_CNT_DIR(h.msg_iovlen, d), ret, off);
		return 0;
	default:
		return 0;
	}
}

/* dbw_on_data: read, write, recvfrom, sendto (at their exits: the socket hooks
 * handle these inline) and the mmsg calls; they need no third argument (a
 * global function's unused argument would reach it unset, which the verifier
 * refuses). */
__noinline int dbw_on_data(__u64 nr, __u64 ret, __u64 ino, __u64 buf)
{
	struct dbw_conn_state *st = bpf_map_lookup_elem(&conns, &ino);
	__u64 who = bpf_get_current_pid_tgid();
	__u8 dir;

	if (!st)
		return 0; /* closed meanwhile */
	dir = data_call(nr);
	if (dir == DBW_CALL_MMSG) { /* ret is a message count */
		dir = nr == NR_recvmmsg ? DBW_DIR_INGRESS : DBW_DIR_EGRESS;
		emit_mmsg(st, who, (dir ^ st->side) & 1, buf, ret);
		return 0;
	}
	if (dir > DBW_DIR_EGRESS)
		return 0;
	emit_data(st, who, dir, (const char *)buf, ret);
	return 0;
}

/* A send or receive of `ret` bytes on `sk`, from inside whatever system call
 * made it. Rejection order: the result, the tracked-process bit, then the
 * call: only the calls decoded here go on (the mmsg calls at their exit).
 *
 * Cost model (bench/README.md, "BPF time per audited statement"): this kernel
 * returns through a mitigation thunk (AMD's Safe RET), so every helper or
 * function call costs far more than the loads around it. The current task is
 * fetched once and passed down, and read/write/recvfrom/sendto, nearly all
 * database traffic, are handled here inline: no call into dbw_on_data, no
 * second look at the task or the registers. */
static __always_inline int on_socket_io(struct sock *sk, int ret)
{
	struct task_struct *task;
	struct dbw_conn_state *st;
	struct pt_regs *regs;
	__u64 nr, ino;
	__u8 dir;

	DBW_PROF_BEGIN();
	if (ret <= 0)
		return 0;
	task = bpf_get_current_task_btf();
	if (!is_tracked_process(task->tgid))
		return 0;
	if (task->flags & (DBW_PF_KTHREAD | DBW_PF_IO_WORKER))
		return 0; /* an io_uring worker: its registers are no system call's */
	/* Before the number means anything: a 32-bit syscall has other numbers
	 * and argument registers (its 4 is write, 64-bit 4 is stat). */
	if (in_compat_syscall(task)) {
		count_drop(DBW_DROP_COMPAT_SYSCALL);
		return 0;
	}
	regs = user_regs(task);
	nr = regs->orig_ax;
	/* Typed loads (a faulting one reads 0): no helper call. 0: a kernel
	 * socket (no file), never a tracked process's connection. */
	ino = sk->sk_socket->file->f_inode->i_ino;
	DBW_PROF_STEP(DBW_PROF_STEP_FILTER);
	DBW_PROF_STEP(DBW_PROF_STEP_CLOCK);
	dir = data_call(nr);
	if (dir > DBW_CALL_IOV)
		return 0; /* mmsg (at exit), or no data call (io_uring, sendfile) */
	if (!ino)
		return 0;
	DBW_PROF_STEP(DBW_PROF_STEP_FD);
	st = data_conn(task, ino);
	if (!st)
		return 0;
	if (dir == DBW_CALL_IOV)
		return dbw_on_iov(nr, (__u64)ret, ino, regs->si, regs->dx);
	/* pid and tid from the task at hand: no helper call */
	emit_data(st, (__u64)task->tgid << 32 | (__u32)task->pid, dir, (const char *)regs->si,
		  (__u64)ret);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(dbw_sock_send, struct sock *sk, int ret, int flags)
{
	return on_socket_io(sk, ret);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(dbw_sock_recv, struct sock *sk, int ret, int flags)
{
	if (flags & (DBW_MSG_PEEK | DBW_MSG_ERRQUEUE))
		return 0; /* not stream bytes: a peek is read again, errors are no data */
	return on_socket_io(sk, ret);
}

/* A data system call's exit, for calls whose own tracepoint starts the
 * program: the mmsg calls always, the others only without socket
 * tracepoints. x86 never reports a 32-bit call here; tested anyway, since a
 * misread would decode other registers. */
static __always_inline int on_data_exit(__u64 nr, long ret)
{
	struct pt_regs *regs;
	struct file *file;
	__u64 ino;

	if (ret <= 0 || !is_tracked_process(bpf_get_current_pid_tgid() >> 32))
		return 0;
	if (in_compat_syscall(bpf_get_current_task_btf())) {
		count_drop(DBW_DROP_COMPAT_SYSCALL);
		return 0;
	}
	regs = syscall_regs();
	/* A peek is read again (the socket tracepoint has the flags itself). */
	if (((nr == NR_recvfrom || nr == NR_recvmmsg) && (regs->r10 & DBW_MSG_PEEK)) ||
	    (nr == NR_recvmsg && (regs->dx & DBW_MSG_PEEK)))
		return 0; /* flags: 4th argument, recvmsg's 3rd */
	file = fd_to_file((int)regs->di);
	ino = file ? socket_ino(file) : 0;
	if (!ino || !data_conn(bpf_get_current_task_btf(), ino))
		return 0;
	return data_call(nr) == DBW_CALL_IOV ? dbw_on_iov(nr, (__u64)ret, ino, regs->si, regs->dx)
			       : dbw_on_data(nr, (__u64)ret, ino, regs->si);
}

#define DBW_DATA_EXIT(name)                                            \
	SEC("tracepoint/syscalls/sys_exit_" #name)                     \
	int dbw_sys_##name(struct trace_event_raw_sys_exit *ctx)       \
	{                                                              \
		return on_data_exit(NR_##name, ctx->ret);              \
	}

DBW_DATA_EXIT(recvmmsg)
DBW_DATA_EXIT(sendmmsg)
/* Without socket tracepoints only (userspace turns them off otherwise). */
DBW_DATA_EXIT(read)
DBW_DATA_EXIT(write)
DBW_DATA_EXIT(readv)
DBW_DATA_EXIT(writev)
DBW_DATA_EXIT(recvfrom)
DBW_DATA_EXIT(sendto)
DBW_DATA_EXIT(recvmsg)
DBW_DATA_EXIT(sendmsg)

/* accept(2)/accept4(2) returned the fd of a new connection: the earliest
 * sighting of a server-side connection (by an untracked process: perhaps a
 * server that started after the agent's last look). */
static __always_inline int on_accept_exit(long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct file *file;
	__u64 ino;

	if (ret < 0)
		return 0;
	if (!is_tracked_process(tgid))
		return dbw_on_untracked_accept(tgid, ret);
	file = fd_to_file((int)ret);
	if (!file)
		return 0;
	ino = socket_ino(file);
	if (ino && !bpf_map_lookup_elem(&conns, &ino) && !bpf_map_lookup_elem(&ignored, &ino))
		classify(file, ino);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int dbw_sys_accept(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int dbw_sys_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int dbw_sys_connect(struct trace_event_raw_sys_exit *ctx)
{
	return on_connect(syscall_regs(), ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_listen")
int dbw_sys_listen(struct trace_event_raw_sys_exit *ctx)
{
	return dbw_on_listen(syscall_regs()->di, ctx->ret);
}

#endif /* DBWARDEN_BPF_IO_HOOKS_BPF_H */
