/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Map keys and values shared by the steering programs (bpf/steer.bpf.c) and
 * their loader (userspace/steering). Fixed-width types only; enum values are
 * explicit and only ever appended (pinned maps outlive a build).
 */
#ifndef DBWARDEN_BPF_STEER_H
#define DBWARDEN_BPF_STEER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define DBW_STEER_PATH_MAX 108   /* sizeof(sockaddr_un.sun_path) */
#define DBW_STEER_MAX_TCP 256    /* protected (address, port) pairs */
#define DBW_STEER_MAX_UNIX 64    /* protected socket paths */
#define DBW_STEER_MAX_SLOTS 64   /* proxy sockets in the SOCKMAP */
#define DBW_STEER_MAX_EXEMPT 16384 /* proxy upstream connects in flight */
#define DBW_STEER_MAX_LOCKS DBW_STEER_MAX_UNIX /* locked server sockets */

/* SOCKMAP slot 0 holds the proxy's life socket: any listening TCP socket the
 * proxy keeps open for as long as it runs. The kernel removes it from the map
 * when the proxy dies, however it dies, so unix steering (which has no socket
 * of its own in the map) learns of the death as fast as TCP steering does. */
#define DBW_STEER_SLOT_LIFE 0

/* A TCP endpoint: a protected server address (key of `steer_tcp`, the
 * destination of a connection), or the proxy's upstream source (key of
 * `steer_exempt_tcp`). addr: 4 bytes (network order, rest zero) for AF_INET,
 * 16 for AF_INET6; all zero means "any address of the family" in `steer_tcp`.
 * port in host order. */
struct dbw_steer_endpoint {
	__u8 family; /* AF_INET or AF_INET6 */
	__u8 pad;
	__u16 port;
	__u8 addr[16];
};

struct dbw_steer_tcp_target {
	__u32 slot; /* SOCKMAP index of the proxy's listening socket */
};

/* `steer_unix` key and `steer_origin` key and value: a socket path as the client passes it to connect(),
 * zero-padded, without the terminating NUL. */
struct dbw_steer_path {
	char path[DBW_STEER_PATH_MAX];
};

struct dbw_steer_unix_target {
	__u32 proxy_len; /* bytes of proxy_path, no NUL */
	char proxy_path[DBW_STEER_PATH_MAX];
};

/* `steer_locks` value, keyed by the server's socket path (struct dbw_steer_path):
 * a server socket whose permissions enforcement narrowed to its owner, so that
 * a client reaching it by a path steering does not know (relative, symlink,
 * hard link, bind mount) is refused instead of bypassing the proxy. No program
 * reads it: it is pinned so that whoever comes next (a restarted agent,
 * `steering mark-down`, `detach`) can put the permissions back. */
struct dbw_steer_lock {
	__u64 dev;         /* the socket inode (st_dev, st_ino) that was locked */
	__u64 ino;
	__u32 mode;        /* its permission bits before the lock */
	__u32 locked_mode; /* the bits the lock set */
	__u32 uid;         /* its owner and group when locked */
	__u32 gid;
};

enum dbw_fail_mode {
	DBW_FAIL_CLOSED = 0, /* proxy down: refuse (ECONNREFUSED) */
	DBW_FAIL_OPEN = 1,   /* proxy down: straight to the server */
};

/* `steer_state`, one entry. */
struct dbw_steer_state {
	__u32 proxy_alive; /* set by the proxy once it listens, cleared by mark-down */
	__u32 fail_mode;   /* enum dbw_fail_mode */
	__u64 object_id;   /* which build and layout made the pins */
};

/* `steer_stats`, per-CPU counters. Each connect that reaches a protected
 * endpoint lands in exactly one of them. */
enum dbw_steer_stat {
	DBW_STEER_TCP_STEERED = 0,
	DBW_STEER_TCP_EXEMPT = 1,
	DBW_STEER_TCP_FAIL_OPEN = 2,
	DBW_STEER_TCP_FAIL_CLOSED = 3,
	DBW_STEER_TCP_ASSIGN_ERROR = 4, /* bpf_sk_assign refused the socket: then fail mode */
	DBW_STEER_UNIX_STEERED = 5,
	DBW_STEER_UNIX_EXEMPT = 6,
	DBW_STEER_UNIX_FAIL_OPEN = 7,
	DBW_STEER_UNIX_FAIL_CLOSED = 8,
	DBW_STEER_UNIX_REWRITE_ERROR = 9, /* path rewrite failed: then fail mode */
	DBW_STEER_STAT_COUNT = 10,
};

#endif /* DBWARDEN_BPF_STEER_H */
