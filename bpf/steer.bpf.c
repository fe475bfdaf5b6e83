// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dbwarden steering programs (enforce mode): every new connection to a
 * protected database endpoint goes to the local policy proxy instead.
 *
 *   TCP   sk_lookup on the network namespace: a SYN for a protected
 *         (address, port) is handed to the proxy's listening socket (SOCKMAP);
 *         the accepted socket's getsockname still shows the address and port
 *         the client dialled, which is how the proxy learns the destination.
 *   unix  cgroup/connect_unix on the cgroup v2 root rewrites a connect() to a
 *         protected socket path into the proxy's socket path for that server;
 *         cgroup/getpeername_unix shows the client the protected path.
 *
 * Only endpoints userspace registered are touched: an address the server does
 * not listen on is not in `steer_tcp`, so it stays closed.
 *
 * The proxy's own upstream connects are exempt by something no other process
 * can hold at the same time: for TCP the source (address, port) the proxy's
 * socket is bound to without SO_REUSEADDR/SO_REUSEPORT; for unix the socket's
 * cookie. Neither depends on the uid, since the proxy connects upstream with
 * its client's credentials.
 *
 * The proxy is up when the `steer_state` flag says so AND its socket is in the
 * SOCKMAP (the kernel drops it there when the proxy dies). Otherwise the fail
 * mode decides: closed refuses at once (TCP: SK_DROP, the SYN gets a RST;
 * unix: connect() fails with ECONNREFUSED), open lets the connection through.
 *
 * The unix program sees only the path string, so a client that reaches the
 * server's socket inode by another path (relative, symlink, hard link, bind
 * mount, /proc/self/root/...) is not rewritten. User space closes that hole:
 * it narrows the socket's permissions to its owner (`steer_locks` remembers
 * what they were), so such a connect() fails with EACCES, and the proxy
 * connects past the lock after checking its client against the old bits.
 *
 * cgroup/connect_unix and cgroup/getpeername_unix (kernel 6.7) are newer than
 * Debian's libbpf 1.1: the programs are declared as sock_addr programs of a
 * known section and the loader sets their real attach type before load.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "steer.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1
#define ECONNREFUSED 111

/* Kernel 6.7 kfuncs (commit 53e380d21441, "bpf: Add bpf_sock_addr_set_sun_path()
 * to allow writing unix sockaddr from bpf"). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern int bpf_sock_addr_set_sun_path(struct bpf_sock_addr_kern *sa_kern, const __u8 *sun_path,
				      __u32 sun_path__sz) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DBW_STEER_MAX_TCP);
	__type(key, struct dbw_steer_endpoint);
	__type(value, struct dbw_steer_tcp_target);
} steer_tcp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, DBW_STEER_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} steer_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DBW_STEER_MAX_EXEMPT);
	__type(key, struct dbw_steer_endpoint);
	__type(value, __u8);
} steer_exempt_tcp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DBW_STEER_MAX_UNIX);
	__type(key, struct dbw_steer_path);
	__type(value, struct dbw_steer_unix_target);
} steer_unix SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DBW_STEER_MAX_EXEMPT);
	__type(key, __u64); /* socket cookie */
	__type(value, __u8);
} steer_exempt_unix SEC(".maps");

/* Locked server sockets (struct dbw_steer_lock): read by user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DBW_STEER_MAX_LOCKS);
	__type(key, struct dbw_steer_path);
	__type(value, struct dbw_steer_lock);
} steer_locks SEC(".maps");

/* Proxy path -> the protected path it stands for, for getpeername. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DBW_STEER_MAX_UNIX);
	__type(key, struct dbw_steer_path);
	__type(value, struct dbw_steer_path);
} steer_origin SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dbw_steer_state);
} steer_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DBW_STEER_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} steer_stats SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&steer_stats, &stat);

	if (v)
		*v += 1;
}

static __always_inline struct dbw_steer_state *state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&steer_state, &zero);
}

static __always_inline bool fail_open(const struct dbw_steer_state *st)
{
	/* No state entry cannot happen for an array; treat it as closed. */
	return st && st->fail_mode == DBW_FAIL_OPEN;
}

/* The endpoint of one side of the connection being looked up. */
static __always_inline void endpoint(struct dbw_steer_endpoint *ep, __u32 family, __u32 ip4,
				     const __u32 *ip6, __u16 port)
{
	ep->family = family;
	ep->port = port;
	if (family == AF_INET) {
		__builtin_memcpy(ep->addr, &ip4, 4);
	} else {
		__builtin_memcpy(ep->addr, ip6, 16);
	}
}

SEC("sk_lookup")
int dbw_steer_tcp(struct bpf_sk_lookup *ctx)
{
	struct dbw_steer_endpoint dst = {}, src = {};
	struct dbw_steer_tcp_target *target;
	struct dbw_steer_state *st;
	struct bpf_sock *sk;
	__u32 ip6[4];
	__u32 slot;
	long err;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	if (ctx->family != AF_INET && ctx->family != AF_INET6)
		return SK_PASS;

	ip6[0] = ctx->local_ip6[0];
	ip6[1] = ctx->local_ip6[1];
	ip6[2] = ctx->local_ip6[2];
	ip6[3] = ctx->local_ip6[3];
	endpoint(&dst, ctx->family, ctx->local_ip4, ip6, ctx->local_port);
	target = bpf_map_lookup_elem(&steer_tcp, &dst);
	if (!target) {
		/* The server listens on the family's wildcard address. */
		__builtin_memset(dst.addr, 0, sizeof(dst.addr));
		target = bpf_map_lookup_elem(&steer_tcp, &dst);
	}
	if (!target)
		return SK_PASS;
	slot = target->slot;

	st = state();
	sk = bpf_map_lookup_elem(&steer_socks, &slot);
	if (sk) {
		/* An exemption counts only while the proxy holds its socket: a tuple
		 * a dead proxy left behind is free for anyone to bind. */
		ip6[0] = ctx->remote_ip6[0];
		ip6[1] = ctx->remote_ip6[1];
		ip6[2] = ctx->remote_ip6[2];
		ip6[3] = ctx->remote_ip6[3];
		endpoint(&src, ctx->family, ctx->remote_ip4, ip6, bpf_ntohs(ctx->remote_port));
		if (bpf_map_lookup_elem(&steer_exempt_tcp, &src)) {
			bpf_sk_release(sk);
			count(DBW_STEER_TCP_EXEMPT);
			return SK_PASS;
		}
		if (st && st->proxy_alive) {
			err = bpf_sk_assign(ctx, sk, 0);
			bpf_sk_release(sk);
			if (!err) {
				count(DBW_STEER_TCP_STEERED);
				return SK_PASS;
			}
			count(DBW_STEER_TCP_ASSIGN_ERROR);
		} else {
			bpf_sk_release(sk);
		}
	}
	if (fail_open(st)) {
		count(DBW_STEER_TCP_FAIL_OPEN);
		return SK_PASS;
	}
	/* No socket for the lookup: the SYN is answered with a RST. */
	count(DBW_STEER_TCP_FAIL_CLOSED);
	return SK_DROP;
}

/* A stored path length, 0 when out of range. The barrier keeps clang from
 * folding the two tests into one on len - 1, which leaves len itself unbounded
 * for the verifier. */
static __always_inline __u32 path_len(__u32 len)
{
	if (len > DBW_STEER_PATH_MAX)
		return 0;
	asm volatile("" : "+r"(len));
	return len;
}

/* True when the proxy's life socket is in the SOCKMAP, i.e. the proxy runs. */
static __always_inline bool proxy_socket_held(void)
{
	__u32 slot = DBW_STEER_SLOT_LIFE;
	struct bpf_sock *sk = bpf_map_lookup_elem(&steer_socks, &slot);

	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

/* The unix socket path in a sock_addr context as a map key: the bytes up to
 * the first NUL (callers may pass the whole sockaddr_un), zero-padded. An
 * abstract name (leading NUL) becomes the empty key, never registered.
 * Returns non-zero when there is no path. */
static __always_inline int read_sun_path(struct bpf_sock_addr_kern *sa, struct dbw_steer_path *key)
{
	__u64 len = sa->uaddrlen; /* 64-bit: a 32-bit bound would test a zero-extended copy */
	bool nul = false;
	int i;

	if (len <= 2)
		return 1; /* unnamed */
	len -= 2;         /* offsetof(struct sockaddr_un, sun_path) */
	asm volatile("" : "+r"(len));
	if (len > DBW_STEER_PATH_MAX)
		return 1; /* the kernel allows no more */
	if (bpf_probe_read_kernel(key->path, len, ((struct sockaddr_un *)sa->uaddr)->sun_path))
		return 1;
	for (i = 0; i < DBW_STEER_PATH_MAX; i++) {
		if (nul)
			key->path[i] = 0;
		else if (key->path[i] == 0)
			nul = true;
	}
	return 0;
}

/* Declared as connect4 for libbpf 1.1; loaded as BPF_CGROUP_UNIX_CONNECT. */
SEC("cgroup/connect4")
int dbw_steer_unix_connect(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	struct dbw_steer_path key = {};
	struct dbw_steer_unix_target *target;
	struct dbw_steer_state *st;
	__u64 cookie;
	__u32 plen;

	/* Database sockets are stream sockets; a datagram connect is not ours. */
	if (ctx->user_family != AF_UNIX || ctx->type != SOCK_STREAM || read_sun_path(sa, &key))
		return 1;
	target = bpf_map_lookup_elem(&steer_unix, &key);
	if (!target)
		return 1;

	cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_lookup_elem(&steer_exempt_unix, &cookie)) {
		count(DBW_STEER_UNIX_EXEMPT);
		return 1;
	}

	st = state();
	if (st && st->proxy_alive && proxy_socket_held()) {
		plen = path_len(target->proxy_len);
		if (plen > 0 &&
		    bpf_sock_addr_set_sun_path(sa, (const __u8 *)target->proxy_path, plen) == 0) {
			count(DBW_STEER_UNIX_STEERED);
			return 1;
		}
		count(DBW_STEER_UNIX_REWRITE_ERROR);
	}
	if (fail_open(st)) {
		count(DBW_STEER_UNIX_FAIL_OPEN);
		return 1;
	}
	count(DBW_STEER_UNIX_FAIL_CLOSED);
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/* Declared as getpeername4 for libbpf 1.1; loaded as BPF_CGROUP_UNIX_GETPEERNAME.
 * The hook runs on the peer (the proxy's accepted socket, whose name is the
 * proxy's path), not on the client's socket, so the original path comes from
 * the proxy path, not from per-client storage. */
SEC("cgroup/getpeername4")
int dbw_steer_unix_getpeername(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	struct dbw_steer_path key = {};
	struct dbw_steer_path *origin;
	__u32 olen = 0;
	int i;

	if (ctx->user_family != AF_UNIX || read_sun_path(sa, &key))
		return 1;
	origin = bpf_map_lookup_elem(&steer_origin, &key);
	if (!origin)
		return 1;
	for (i = 0; i < DBW_STEER_PATH_MAX; i++) {
		if (origin->path[i] == 0)
			break;
		olen++;
	}
	olen = path_len(olen);
	if (olen > 0)
		bpf_sock_addr_set_sun_path(sa, (const __u8 *)origin->path, olen);
	return 1;
}
