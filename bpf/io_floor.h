/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The record of the floor programs (io_floor.bpf.c), shared with
 * bench_bpf_io_cost: a fixed-size reservation, length and time stamp, then
 * the payload. */
#ifndef DBWARDEN_BPF_IO_FLOOR_H
#define DBWARDEN_BPF_IO_FLOOR_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Payload bytes per record: holds the bench's default 61-byte request and
 * 81-byte reply (the capture reserves 64 and 128 for them). Longer messages
 * are copied up to this. */
#define DBW_FLOOR_BYTES 128

struct dbw_floor_event {
	__u64 ts_ns;    /* bpf_ktime_get_ns, or 0 (the no-time-stamp condition) */
	__u32 length;   /* bytes the call moved */
	__u32 captured; /* bytes in data[] */
	__u8 data[DBW_FLOOR_BYTES];
};

#endif /* DBWARDEN_BPF_IO_FLOOR_H */
