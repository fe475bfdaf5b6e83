// SPDX-License-Identifier: Apache-2.0
//
// Who is on the other end of a local connection: the process, its user, the
// human behind it (audit loginuid) and where it runs (systemd unit, container).
//
// Sockets are found with NETLINK_SOCK_DIAG (an exact 4-tuple lookup for TCP,
// the peer of a unix socket), not by reading /proc/net files; the owning
// process is found through a cached socket-inode -> (pid, fd) map built from
// /proc/*/fd. Nothing here throws: a process that is gone, a socket in another
// network namespace or an unreadable /proc entry gives std::nullopt or empty
// fields, and a counter in Resolver::Stats.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace dbwarden::identity {

// What the kernel saw of the process that connect(2)ed a local client socket
// (the capture's connect hook): names the process exactly, and is all there
// is once a short-lived client has exited.
struct SeenConnector {
  uint32_t pid = 0;
  uint32_t uid = 0;  // effective uid at connect
  std::optional<uint32_t> login_uid;
  std::string comm;
  // The cgroup path, or its innermost components when it is deeper than the
  // hook reads ("/system.slice/cron.service", ".../docker-<id>.scope").
  std::string cgroup;
};

struct PeerProcess {
  uint32_t pid = 0;
  uint32_t uid = 0;                   // effective uid (/proc/<pid>/status)
  std::string user_name;              // empty when the uid has no passwd entry
  std::optional<uint32_t> login_uid;  // /proc/<pid>/loginuid; unset (4294967295) -> nullopt
  std::string login_user;
  std::string comm;          // /proc/<pid>/comm
  std::string executable;    // readlink /proc/<pid>/exe (may end in " (deleted)")
  std::string cgroup;        // the v2 path, else the name=systemd v1 path
  std::string systemd_unit;  // innermost .service/.scope of `cgroup`
  std::string container_id;  // 64-hex id from container runtime cgroup names
};

class Resolver {
 public:
  struct Options {
    std::string proc_root = "/proc";
    // A lookup that misses the inode cache rescans all of /proc at most this
    // often; in between, a miss scans only processes that appeared since the
    // last scan and processes already found as clients. A SeenConnector from
    // the caller comes first and needs no scan at all.
    std::chrono::milliseconds full_rescan_interval{1000};
    // Bound on cached sockets; sockets beyond it are counted, not cached.
    size_t max_cached_sockets = 1u << 20;
  };
  struct Stats {
    uint64_t lookups = 0;     // tcp_peer + unix_peer calls
    uint64_t cache_hits = 0;  // inode found in the cache and still valid
    uint64_t full_scans = 0;
    uint64_t new_pid_scans = 0;
    uint64_t client_pid_scans = 0;  // misses that rescanned the known client processes
    uint64_t connector_hits = 0;    // owner named by the SeenConnector, checked in /proc
    uint64_t from_connector = 0;    // process gone: answered from the SeenConnector alone
    uint64_t socket_not_found = 0;  // sock_diag has no such socket (closed, other netns)
    uint64_t owner_not_found = 0;   // socket exists, no process found holding it
    uint64_t diag_errors = 0;       // netlink failures other than "no such socket"
    uint64_t peer_inode_given = 0;  // unix peer inode from the capture: no unix_diag query
    uint64_t cache_overflow = 0;    // sockets not cached because of max_cached_sockets
    uint64_t bad_arguments = 0;     // unparsable address, inode out of range
  };

  Resolver();
  explicit Resolver(Options options);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // TCP over loopback: the local socket whose local end is client_addr:client_port
  // and whose remote end is server_addr:server_port, then the process owning it.
  // Addresses are IPv4 or IPv6 text; IPv4-mapped IPv6 ("::ffff:127.0.0.1") is
  // looked up as IPv4.
  // `seen`, when given, is checked against /proc/<pid>/fd before it is
  // believed; without it, or when the check fails, the /proc scan decides;
  // when the socket or the process is gone, `seen` alone answers (no
  // executable, cgroup or unit then).
  std::optional<PeerProcess> tcp_peer(const std::string& client_addr, uint16_t client_port,
                                      const std::string& server_addr, uint16_t server_port,
                                      const SeenConnector* seen = nullptr);
  // Unix stream socket: the server-side socket inode -> its peer socket inode
  // (unix_diag, UDIAG_SHOW_PEER) -> the process owning the peer. A nonzero
  // `peer_socket_inode` is that peer inode already known (the capture reads
  // it from the kernel at accept): no unix_diag round trip then.
  std::optional<PeerProcess> unix_peer(uint64_t server_socket_inode,
                                       const SeenConnector* seen = nullptr,
                                       uint64_t peer_socket_inode = 0);
  // The /proc reads for one pid. A pid that is gone gives only `pid` set.
  PeerProcess describe(uint32_t pid);

  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Pure parsers (no I/O).
// "/system.slice/ssh.service" -> "ssh.service"; the innermost .service or
// .scope component; "" when there is none.
std::string systemd_unit_from_cgroup(std::string_view cgroup_path);
// The 64-hex container id of docker, containerd, cri-o, podman (systemd or
// cgroupfs driver) paths; "" when there is none. Conmon scopes are not containers.
std::string container_id_from_cgroup(std::string_view cgroup_path);
// The content of /proc/<pid>/cgroup -> the "0::" path, else the
// "name=systemd" path, else "".
std::string cgroup_path_from_proc_file(std::string_view content);
// The content of /proc/<pid>/status -> the effective uid.
std::optional<uint32_t> effective_uid_from_status(std::string_view content);
// The content of /proc/<pid>/loginuid -> the loginuid, nullopt when unset or bad.
std::optional<uint32_t> login_uid_from_file(std::string_view content);

}  // namespace dbwarden::identity
