/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The current system call's saved user registers without a helper call on the
 * hot path, for the capture's socket hooks (io_hooks.bpf.h) and the bench's
 * floor programs (io_floor.bpf.c), which must pay exactly what the capture
 * pays for them.
 *
 * Why: on this project's kernel every helper call returns through a
 * mitigation thunk (AMD's Safe RET), so bpf_task_pt_regs, a subtraction, cost
 * ~5 % of a captured call (bench/README.md). The registers sit at the same
 * offset above every task's kernel stack base (task_pt_regs(): the stack's top
 * less its padding and the registers), so the helper is asked once and the
 * offset kept in `regs_offset` (.bss; 0: not learned yet). A pointer
 * difference is a number the verifier lets a privileged program keep (the
 * agent runs as root). The registers are then read through a read-only typed
 * pointer (bpf_rdonly_cast, inlined by the verifier; a faulting load reads 0).
 *
 * Included once per BPF object (it defines the global).
 */
#ifndef DBWARDEN_BPF_USER_REGS_BPF_H
#define DBWARDEN_BPF_USER_REGS_BPF_H

/* Turns a kernel pointer obtained by a probe read into a BTF-typed pointer, so
 * that its fields are read with plain (fault-safe) loads instead of one helper
 * call each. Kernel 6.2+ (commit a35b9af4ec2c, "bpf: Add a kfunc for generic
 * type cast"). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define as_btf(type, ptr) ((type *)bpf_rdonly_cast((ptr), bpf_core_type_id_kernel(type)))

__u64 regs_offset;

/* The user registers saved at `task`'s system call entry (`task` is the
 * current task, from bpf_get_current_task_btf). */
static __always_inline struct pt_regs *user_regs(struct task_struct *task)
{
	char *stack = task->stack;
	__u64 off = regs_offset;

	if (!off) {
		off = (char *)bpf_task_pt_regs(task) - stack;
		regs_offset = off; /* every CPU learns the same value */
	}
	return as_btf(struct pt_regs, stack + off);
}

#endif /* DBWARDEN_BPF_USER_REGS_BPF_H */
