/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Where a program's time goes, step by step: a measuring tool, compiled in only with
 * -DDBW_STEP_PROFILE (CMake: -DDBWARDEN_BPF_PROFILE=ON; bench_bpf_io_cost prints it).
 * Otherwise every macro is empty and the object has no `step_prof` map.
 *
 * DBW_PROF_BEGIN() reads the clock; each DBW_PROF_STEP(i) adds the time since the last
 * mark to step i and reads the clock again, so the accounting itself falls between two
 * marks and is not charged; each step still carries one clock read
 * (DBW_PROF_STEP_CLOCK, two marks back to back, measures it). The last mark is kept
 * per CPU, so a program preempted by another run on its CPU would mix the two: rare, and
 * a profile, not a counter anything depends on. Index: enum dbw_prof_step (dbwarden.h).
 */
#ifndef DBWARDEN_BPF_STEP_PROFILE_BPF_H
#define DBWARDEN_BPF_STEP_PROFILE_BPF_H

#ifdef DBW_STEP_PROFILE
struct dbw_step_prof {
	__u64 last;
	__u64 ns[DBW_PROF_STEPS];
	__u64 count[DBW_PROF_STEPS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dbw_step_prof);
} step_prof SEC(".maps");

static __always_inline void dbw_prof_begin(void)
{
	__u32 zero = 0;
	struct dbw_step_prof *p = bpf_map_lookup_elem(&step_prof, &zero);

	if (p)
		p->last = bpf_ktime_get_ns();
}

static __always_inline void dbw_prof_step(__u32 step)
{
	__u32 zero = 0;
	struct dbw_step_prof *p = bpf_map_lookup_elem(&step_prof, &zero);
	__u64 now = bpf_ktime_get_ns();

	if (!p || step >= DBW_PROF_STEPS)
		return;
	p->ns[step] += now - p->last;
	p->count[step] += 1;
	p->last = bpf_ktime_get_ns();
}
#define DBW_PROF_BEGIN() dbw_prof_begin()
#define DBW_PROF_STEP(i) dbw_prof_step(i)
#else
#define DBW_PROF_BEGIN() do { } while (0)
#define DBW_PROF_STEP(i) do { } while (0)
#endif

#endif /* DBWARDEN_BPF_STEP_PROFILE_BPF_H */
