// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor under the capture's data path (issue 16), for bench_bpf_io_cost
 * only: never loaded by the agent.
 *
 * The same two tracepoints as the capture (`tp_btf/sock_send_length`,
 * `sock_recv_length`), with the least any program that copies every byte at
 * the socket call must do, so that the bench can say how much of a captured
 * call's time is the design's and how much is the capture's own:
 *   floor_min_*    ("minimal") the result, the tracked-pid bit, the call's
 *                  buffer from the saved user registers (user_regs.bpf.h, as
 *                  the capture reads them), a ring reservation of fixed size,
 *                  a header of length and time stamp, bpf_probe_read_user of
 *                  the payload, submit (no wake-up);
 *   floor_nots_*   ("min-nots") the same without the time stamp;
 *   floor_empty_*  ("empty") return 0: the tracepoint's and the statistics'
 *                  own cost.
 * No connection table, no stream offsets, no TLS check, no compat or kernel
 * thread test. Userspace loads one pair (autoload) per condition.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "io_floor.h"
#include "user_regs.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024); /* resized by userspace before load */
} floor_events SEC(".maps");

/* The capture's tracked-pid set has this shape (dbwarden.bpf.c `pid_bits`):
 * one bit per pid, 512 KiB, so the floor's bit test touches the same kind of
 * line. Userspace sets bits through the mmapped .bss. */
#define DBW_FLOOR_PID_WORDS (1u << 16)
__u64 floor_pid_bits[DBW_FLOOR_PID_WORDS];

static __always_inline int floor_copy(int ret, const int stamp)
{
	struct task_struct *task;
	struct dbw_floor_event *e;
	struct pt_regs *regs;
	__u32 tgid;
	__u64 len;

	if (ret <= 0)
		return 0;
	task = bpf_get_current_task_btf();
	tgid = task->tgid;
	if (!((floor_pid_bits[(tgid >> 6) & (DBW_FLOOR_PID_WORDS - 1)] >> (tgid & 63)) & 1))
		return 0;
	regs = user_regs(task); /* as the capture finds them */
	e = bpf_ringbuf_reserve(&floor_events, sizeof(*e), 0);
	if (!e)
		return 0; /* the bench checks the bytes the ring carried */
	len = (__u64)ret;
	e->length = (__u32)len;
	e->ts_ns = stamp ? bpf_ktime_get_ns() : 0;
	if (len > DBW_FLOOR_BYTES)
		len = DBW_FLOOR_BYTES;
	barrier_var(len);
	e->captured = bpf_probe_read_user(e->data, len, (const void *)regs->si) ? 0 : (__u32)len;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

/* One condition's pair: `call` is what both programs run. */
#define DBW_FLOOR_PAIR(name, call)                                           \
	SEC("tp_btf/sock_send_length")                                       \
	int BPF_PROG(floor_##name##_send, struct sock *sk, int ret, int flags) \
	{                                                                    \
		return call;                                                 \
	}                                                                    \
	SEC("tp_btf/sock_recv_length")                                       \
	int BPF_PROG(floor_##name##_recv, struct sock *sk, int ret, int flags) \
	{                                                                    \
		return call;                                                 \
	}

DBW_FLOOR_PAIR(min, floor_copy(ret, 1))
DBW_FLOOR_PAIR(nots, floor_copy(ret, 0))
DBW_FLOOR_PAIR(empty, 0)
