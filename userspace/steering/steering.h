// SPDX-License-Identifier: Apache-2.0
//
// Steering for enforce mode: the kernel programs of bpf/steer.bpf.c hand every
// new connection to a protected database endpoint to the local proxy.
//
//   TCP   a protected (address, port) is one the server listens on
//         (tcp_listen_endpoints); a SYN for it is handed to the proxy socket in
//         the endpoint's slot. The accepted socket's getsockname is the address
//         the client dialled.
//   unix  a connect() to a protected socket path reaches the proxy's socket
//         path for it instead; getpeername on the client shows the protected
//         path (the first one registered for that proxy path).
//
// State lives in bpffs under a pin directory, so it outlives the process that
// attached it: a restarted proxy calls attach() again, which reuses the pins,
// and registers its new sockets. detach() removes everything.
//
// The proxy counts as up when it said so (set_proxy_alive(true)) and its
// sockets are still open: the kernel drops a closed socket from the map by
// itself, so a proxy killed with -9 stops being steered to at once. Slot
// kLifeSlot holds a listening TCP socket the proxy keeps for its whole life
// (its first TCP listener, or one made for the purpose): unix steering reads
// it. Otherwise the fail mode applies: closed refuses (ECONNREFUSED at once),
// open lets the connection reach the server.
//
// Nothing here needs the proxy: the agent or `ExecStopPost=` can open_pinned()
// and set_proxy_alive(false) to take an unhealthy but living proxy out.
//
// A proxy's start (and restart: the same calls, the pins are reused):
//   auto s = Steering::attach(options);               // clears stale exemptions
//   s->set_fail_mode(mode);
//   listeners: one per family (a socket bound to ::1 takes IPv6 only), e.g.
//     127.0.0.1:0 in slot 1 and [::1]:0 in slot 2; set_proxy_socket() each,
//     and set_proxy_socket(kLifeSlot, <one of them>)
//   for each port P: for (e : tcp_listen_endpoints(P)) s->protect_tcp(e, slot of e.family)
//   for each server socket S: one proxy socket path Q(S); for (a : unix_path_aliases(S))
//     s->protect_unix(a, Q(S))
//   list_existing_tcp/unix(...): log and count; `terminate` them after the grace period
//   s->set_proxy_alive(true);
// Per TCP client: accept; getsockname = the server endpoint the client dialled
// (Endpoint::from_sockaddr_unmapped: a v4 client on a v6 socket is v4-mapped).
// Per unix client: the listener it came in on names the server socket.
// Upstream: ex = s->exempt_tcp(fd, dst) or s->exempt_unix(fd); connect(); ex.release().
//
// Locking (unix). The connect program matches the path string the client
// passes, so a client reaching the server's socket inode by any other path (a
// relative one after chdir, a symlink, a hard link, a bind mount,
// /proc/self/root/...) would reach the server directly. lock_unix() closes that:
// it narrows the socket's permissions to its owner (0777 -> 0700). connect() on
// a unix socket needs write permission on the inode, so every unsteered path
// now fails with EACCES for anyone but the owner (and root), whatever path it
// takes. The proxy connects past the lock as its client after checking the
// client against the old bits (current_lock()). The old bits are pinned
// (`steer_locks`): unlock_unix(), unlock_all() and detach() put them back, also
// after a crash. A restarted server makes a new socket with its own mode: call
// lock_unix() again whenever the server (re)listens; it locks the new inode.
// The fail mode `open` needs the lock lifted while the proxy is down (clients
// must reach the server): the proxy's clean stop and `steering mark-down` call
// unlock_all() in that mode.
#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"

namespace dbwarden::steering {

inline constexpr const char* kDefaultPinDir = "/sys/fs/bpf/dbwarden-steer";
inline constexpr uint32_t kLifeSlot = 0;   // see above
inline constexpr uint32_t kMaxSlots = 64;  // slots 1..63 are free for TCP listeners

enum class FailMode { kClosed, kOpen };
// "closed" or "open" (the `fail-mode` config key).
Result<FailMode> parse_fail_mode(std::string_view text);
const char* fail_mode_name(FailMode mode);

// `enforce-existing`: what happens to connections open before steering began.
enum class ExistingPolicy { kKeep, kTerminate };
// "keep" or "terminate".
Result<ExistingPolicy> parse_enforce_existing(std::string_view text);

// A TCP address and port. addr holds the address in network order (4 bytes
// for AF_INET, rest zero); all zero is the family's wildcard address.
struct Endpoint {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};
  uint16_t port = 0;

  static Result<Endpoint> parse(const std::string& host, uint16_t port);
  static Result<Endpoint> from_sockaddr(const sockaddr* sa, socklen_t len);
  // A v4-mapped IPv6 address becomes the IPv4 endpoint the kernel sees.
  static Endpoint from_sockaddr_unmapped(const sockaddr_storage& ss);
  sockaddr_storage to_sockaddr(socklen_t* len) const;
  bool wildcard() const;
  std::string to_string() const;  // "127.0.0.1:5432", "[::1]:5432"
  bool operator==(const Endpoint&) const = default;
};

// The endpoints a server listens on for `port` in this network namespace (TCP
// LISTEN sockets, via sock_diag). A dual-stack [::] listener yields both
// wildcards; a v4-mapped one its IPv4 address. Exactly these are to be
// protected: anything else would open a door the server keeps shut.
Result<std::vector<Endpoint>> tcp_listen_endpoints(uint16_t port);

// Paths a client may use for the same unix socket that steering can see: the
// path itself and, where a parent directory is reached through a symlink
// (Debian's /var/run -> /run), the resolved one and the /var/run spelling.
std::vector<std::string> unix_path_aliases(const std::string& path);

struct Options {
  std::string pin_dir = kDefaultPinDir;
  // cgroup v2 root the unix programs attach to; empty: the cgroup2 mount
  // found in /proc/mounts (/sys/fs/cgroup, or /sys/fs/cgroup/unified).
  std::string cgroup_root;
  // network namespace the TCP program attaches to.
  std::string netns = "/proc/self/ns/net";
};

struct State {
  bool proxy_alive = false;  // the flag
  bool life_socket = false;  // slot kLifeSlot holds a socket
  FailMode fail_mode = FailMode::kClosed;
};

// Per-kind counters of the programs, summed over CPUs; see enum dbw_steer_stat.
struct Counters {
  uint64_t tcp_steered = 0, tcp_exempt = 0, tcp_fail_open = 0, tcp_fail_closed = 0,
           tcp_assign_error = 0;
  uint64_t unix_steered = 0, unix_exempt = 0, unix_fail_open = 0, unix_fail_closed = 0,
           unix_rewrite_error = 0;
};

// Run counts and time of one steering program (time counts only while BPF
// run-time statistics are enabled: kernel.bpf_stats_enabled or BPF_ENABLE_STATS).
struct ProgramStats {
  std::string name;  // the link's pin name: link_tcp, link_unix_connect, ...
  uint64_t run_count = 0, run_time_ns = 0;
};

// A server socket locked by lock_unix(), as pinned.
struct UnixLock {
  std::string path;
  uint64_t dev = 0, ino = 0;  // the inode that was locked
  uint32_t mode = 0;          // its permission bits before the lock
  uint32_t locked_mode = 0;   // the bits the lock set (the owner's only)
  uint32_t uid = 0, gid = 0;  // its owner and group
};

class Steering;

// An exemption of one upstream connect from steering, for as long as the
// object lives: keep it until connect() has completed (for a non-blocking
// socket, until it is writable), then drop it.
class Exemption {
 public:
  Exemption() = default;
  Exemption(Exemption&& other) noexcept;
  Exemption& operator=(Exemption&& other) noexcept;
  Exemption(const Exemption&) = delete;
  Exemption& operator=(const Exemption&) = delete;
  ~Exemption();
  void release();  // ends the exemption now

 private:
  friend class Steering;
  int map_fd_ = -1;  // a dup of the exempt map, so the exemption outlives nothing else
  std::vector<uint8_t> key_;
};

class Steering {
 public:
  // Loads and attaches the programs and pins them, or reuses the pins found
  // in options.pin_dir (same build). Pins of another build are replaced.
  static Result<std::unique_ptr<Steering>> attach(const Options& options);
  // Opens what attach() pinned, without loading anything; fails when absent.
  static Result<std::unique_ptr<Steering>> open_pinned(const std::string& pin_dir);
  // Removes every pin: the programs detach once no process holds them.
  // Idempotent. `removed` (optional) receives the number of pins removed.
  static Status detach(const std::string& pin_dir, int* removed = nullptr);

  ~Steering();
  Steering(const Steering&) = delete;
  Steering& operator=(const Steering&) = delete;

  // True when attach() found its pins and reused them.
  bool resumed() const { return resumed_; }
  // Why pins were replaced instead of reused (empty when not).
  const std::string& replaced_reason() const { return replaced_reason_; }

  Status set_fail_mode(FailMode mode);
  Status set_proxy_alive(bool alive);
  Result<State> state() const;
  Result<Counters> counters() const;
  Result<std::vector<ProgramStats>> program_stats() const;

  // TCP: connections for `server` go to the socket in `slot` (1..63).
  Status protect_tcp(const Endpoint& server, uint32_t slot);
  Status unprotect_tcp(const Endpoint& server);
  Result<std::vector<Endpoint>> protected_tcp() const;
  // A listening TCP socket of the proxy; kLifeSlot takes the life socket.
  Status set_proxy_socket(uint32_t slot, int listen_fd);
  Status clear_proxy_socket(uint32_t slot);

  // unix: a connect() to server_path reaches proxy_path instead. Protect
  // each alias of a socket (unix_path_aliases) with the same proxy path; use
  // one proxy path per server socket, as it tells the proxy where to go.
  Status protect_unix(const std::string& server_path, const std::string& proxy_path);
  Status unprotect_unix(const std::string& server_path);
  Result<std::vector<std::string>> protected_unix() const;

  // Locking (see the top). lock_unix: true when it changed the socket's mode
  // (a new or unlocked inode at `server_path`), false when it was locked
  // already. A socket is known by (device, inode), and a file system may give
  // a new socket the number of the one it replaces: `new_socket` (the caller
  // saw it made) takes its mode as the one to give back whatever its number.
  // unlock_unix puts back the old bits if the lock's bits are still there (an
  // owner's later chmod is kept) and forgets the lock.
  Result<bool> lock_unix(const std::string& server_path, bool new_socket = false);
  Status unlock_unix(const std::string& server_path);
  // Every lock; returns how many sockets got their old bits back.
  Result<int> unlock_all();
  Result<std::vector<UnixLock>> unix_locks() const;
  // The lock of the inode now at `server_path`, if that inode is locked.
  Result<std::optional<UnixLock>> current_lock(const std::string& server_path) const;
  // unlock_all() on the pins in `pin_dir` (nothing pinned: 0).
  static Result<int> unlock_pinned(const std::string& pin_dir);

  // The proxy's upstream connects. TCP: `fd` is an unconnected socket
  // without SO_REUSEADDR/SO_REUSEPORT, bound by the caller to the source of
  // its choice (a local address, a port: 0 is fine) or, when not bound, here
  // to (the destination's address, an ephemeral port). No other socket can
  // take that source while `fd` holds it, and that source is exempt. unix:
  // `fd`'s socket cookie is exempt. Neither looks at the uid. Call before
  // connect(); keep the Exemption until connect() completes.
  Result<Exemption> exempt_tcp(int fd, const Endpoint& destination);
  Result<Exemption> exempt_unix(int fd);

 private:
  Steering() = default;
  Status open_maps(const std::string& pin_dir);
  Result<Exemption> register_exemption(int map_fd, const void* key, size_t key_size,
                                       const std::string& what);

  int tcp_fd_ = -1, socks_fd_ = -1, exempt_tcp_fd_ = -1, unix_fd_ = -1, exempt_unix_fd_ = -1,
      origin_fd_ = -1, state_fd_ = -1, stats_fd_ = -1, locks_fd_ = -1;
  bool resumed_ = false;
  std::string replaced_reason_;
  std::string pin_dir_;
};

// Calls `changed(path)` (on its own thread) the moment a server makes one of
// `paths` anew or its mode changes, so that the caller locks it again
// (Steering::lock_unix): a thread waits on inotify in their directories. A
// directory removed and made again (systemd's RuntimeDirectory= of a stopped
// server) loses its watch: call rewatch() and lock_unix() now and then too.
class LockWatcher {
 public:
  // `created`: the socket was made anew (IN_CREATE), not only changed.
  using Changed = std::function<void(const std::string& path, bool created)>;
  static Result<std::unique_ptr<LockWatcher>> Start(const std::vector<std::string>& paths,
                                                    Changed changed);
  ~LockWatcher();  // stops the thread: no call to `changed` after it
  LockWatcher(const LockWatcher&) = delete;
  LockWatcher& operator=(const LockWatcher&) = delete;
  uint64_t events() const { return events_.load(); }
  // Watches each directory again where it was made anew.
  void rewatch();

 private:
  LockWatcher() = default;
  void run(const Changed& changed);
  struct Watched {
    int wd;
    std::string dir, name, path;
  };
  std::mutex mu_;  // watched_'s descriptors: the thread reads, rewatch() writes
  int inotify_ = -1, wake_ = -1;
  std::vector<Watched> watched_;
  std::atomic<uint64_t> events_{0};
  std::thread thread_;
};

// Connections open before steering began: they cannot be moved to the proxy.
struct ExistingConnection {
  bool unix_socket = false;
  Endpoint server, client;  // TCP: the server-side socket's two ends
  std::string path;         // unix: the protected path the server socket serves
  uint64_t inode = 0;       // the server-side socket
  uint64_t peer_inode = 0;  // unix: the client's socket (the proxy knows its own)
  uint64_t cookie = 0;      // its socket cookie (TCP)
  std::string to_string() const;
};

// Server-side sockets of connections to `servers` (TCP, sock_diag) or to
// `paths` (unix, unix_diag) in this network namespace. Call it before the
// proxy accepts: its own accepted sockets look the same.
Result<std::vector<ExistingConnection>> list_existing_tcp(const std::vector<Endpoint>& servers);
Result<std::vector<ExistingConnection>> list_existing_unix(const std::vector<std::string>& paths);

// `enforce-existing = terminate`: ends one such connection (after the caller's
// grace period). TCP: SOCK_DESTROY (the client gets a reset); unix, which has
// no SOCK_DESTROY: shutdown() of the server's socket taken from its owner with
// pidfd_getfd (the server reads end-of-file, the client too).
Status terminate(const ExistingConnection& conn);

}  // namespace dbwarden::steering
