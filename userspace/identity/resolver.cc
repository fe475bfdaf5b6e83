// SPDX-License-Identifier: Apache-2.0
//
// Resolver: sock_diag finds the peer's socket inode, InodeOwners the process
// holding it, describe() reads that process from /proc.
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/read_file.h"
#include "identity/identity.h"
#include "identity/inode_owners.h"
#include "identity/sock_diag.h"

namespace dbwarden::identity {
namespace {

// Small /proc files only: reads are bounded.
constexpr size_t kSmallProcFile = 64 * 1024;

std::string user_name_of(uint32_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(4096);
  for (int i = 0; i < 4; i++) {
    int rc = getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE) {
      buf.resize(buf.size() * 4);
      continue;
    }
    if (rc != 0 || found == nullptr) return "";
    return pw.pw_name;
  }
  return "";
}

}  // namespace

struct Resolver::Impl {
  explicit Impl(Options o)
      : options(std::move(o)),
        owners(options.proc_root, options.full_rescan_interval, options.max_cached_sockets) {}
  Options options;
  std::mutex mu;  // one lookup at a time: the cache and the netlink socket are shared
  SockDiag diag;
  InodeOwners owners;
  Stats stats;

  // getpwuid_r reads /etc/passwd on every call (a third of a warm lookup
  // lookup): names are kept for a minute, at most kMaxNames of them.
  static constexpr size_t kMaxNames = 1024;
  static constexpr std::chrono::seconds kNameTtl{60};
  struct CachedName {
    std::string name;
    std::chrono::steady_clock::time_point at;
  };
  std::unordered_map<uint32_t, CachedName> names;

  std::string cached_user_name(uint32_t uid);
  PeerProcess describe(uint32_t pid);
  std::optional<PeerProcess> owner_of(uint64_t inode, const SeenConnector* seen);
  // The answers when /proc has nothing: the connector as the kernel saw it.
  std::optional<PeerProcess> from_seen(const SeenConnector* seen);
  std::optional<PeerProcess> socket_gone(const SeenConnector* seen);
};

std::optional<PeerProcess> Resolver::Impl::from_seen(const SeenConnector* seen) {
  if (seen == nullptr || seen->pid == 0) return std::nullopt;
  stats.from_connector++;
  PeerProcess p;
  p.pid = seen->pid;
  p.uid = seen->uid;
  p.user_name = cached_user_name(seen->uid);
  p.login_uid = seen->login_uid;
  if (p.login_uid) p.login_user = cached_user_name(*p.login_uid);
  p.comm = seen->comm;
  p.cgroup = seen->cgroup;
  p.systemd_unit = systemd_unit_from_cgroup(p.cgroup);
  p.container_id = container_id_from_cgroup(p.cgroup);
  return p;
}

std::optional<PeerProcess> Resolver::Impl::socket_gone(const SeenConnector* seen) {
  stats.socket_not_found++;
  return from_seen(seen);
}

std::string Resolver::Impl::cached_user_name(uint32_t uid) {
  auto now = std::chrono::steady_clock::now();
  auto it = names.find(uid);
  if (it != names.end() && now - it->second.at < kNameTtl) return it->second.name;
  if (names.size() >= kMaxNames) names.clear();
  std::string name = user_name_of(uid);
  names[uid] = CachedName{name, now};
  return name;
}

PeerProcess Resolver::Impl::describe(uint32_t pid) {
  PeerProcess p;
  p.pid = pid;
  const std::string base = options.proc_root + "/" + std::to_string(pid);
  std::string status = read_whole_file(base + "/status", kSmallProcFile);
  if (status.empty()) return p;  // gone
  if (auto uid = effective_uid_from_status(status)) {
    p.uid = *uid;
    p.user_name = cached_user_name(*uid);
  }
  p.login_uid = login_uid_from_file(read_whole_file(base + "/loginuid", kSmallProcFile));
  if (p.login_uid) p.login_user = cached_user_name(*p.login_uid);
  p.comm = read_whole_file(base + "/comm", 64);
  if (!p.comm.empty() && p.comm.back() == '\n') p.comm.pop_back();
  char exe[4096];
  ssize_t n = readlink((base + "/exe").c_str(), exe, sizeof(exe));
  if (n > 0) p.executable.assign(exe, static_cast<size_t>(n));  // kernel threads have none
  p.cgroup = cgroup_path_from_proc_file(read_whole_file(base + "/cgroup", kSmallProcFile));
  p.systemd_unit = systemd_unit_from_cgroup(p.cgroup);
  p.container_id = container_id_from_cgroup(p.cgroup);
  return p;
}

std::optional<PeerProcess> Resolver::Impl::owner_of(uint64_t inode, const SeenConnector* seen) {
  std::optional<Owner> owner;
  if (seen != nullptr) {
    owner = owners.held_by(seen->pid, inode);
    if (owner) stats.connector_hits++;
  }
  if (!owner) owner = owners.find(inode);
  if (!owner) {
    stats.owner_not_found++;
    return from_seen(seen);
  }
  PeerProcess p = describe(owner->pid);
  // The process may have exited (and its pid been reused) while we read it:
  // only answer if it still holds the socket afterwards.
  if (p.comm.empty() || !owners.still_holds(*owner, inode)) {
    stats.owner_not_found++;
    return from_seen(seen);
  }
  return p;
}

Resolver::Resolver() : Resolver(Options{}) {}
Resolver::Resolver(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Resolver::~Resolver() = default;

std::optional<PeerProcess> Resolver::tcp_peer(const std::string& client_addr, uint16_t client_port,
                                              const std::string& server_addr, uint16_t server_port,
                                              const SeenConnector* seen) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.lookups++;
  Endpoint local, remote;
  if (!parse_endpoint(client_addr, client_port, local) ||
      !parse_endpoint(server_addr, server_port, remote) || local.family != remote.family) {
    impl_->stats.bad_arguments++;
    return std::nullopt;
  }
  DiagAnswer a = impl_->diag.tcp_socket(local, remote);
  if (a.outcome == DiagOutcome::kError) {
    impl_->stats.diag_errors++;
    return std::nullopt;
  }
  if (a.outcome == DiagOutcome::kNoSuchSocket) return impl_->socket_gone(seen);
  return impl_->owner_of(a.inode, seen);
}

std::optional<PeerProcess> Resolver::unix_peer(uint64_t server_socket_inode,
                                               const SeenConnector* seen,
                                               uint64_t peer_socket_inode) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.lookups++;
  if (peer_socket_inode != 0) {
    impl_->stats.peer_inode_given++;
    return impl_->owner_of(peer_socket_inode, seen);
  }
  // unix_diag carries inodes as u32 (linux/unix_diag.h).
  if (server_socket_inode == 0 || server_socket_inode > UINT32_MAX) {
    impl_->stats.bad_arguments++;
    return std::nullopt;
  }
  DiagAnswer a = impl_->diag.unix_peer(static_cast<uint32_t>(server_socket_inode));
  if (a.outcome == DiagOutcome::kError) {
    impl_->stats.diag_errors++;
    return std::nullopt;
  }
  if (a.outcome == DiagOutcome::kNoSuchSocket) return impl_->socket_gone(seen);
  return impl_->owner_of(a.inode, seen);
}

PeerProcess Resolver::describe(uint32_t pid) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->describe(pid);
}

Resolver::Stats Resolver::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Stats s = impl_->stats;
  const auto& c = impl_->owners.counters();
  s.cache_hits = c.hits;
  s.full_scans = c.full_scans;
  s.new_pid_scans = c.new_pid_scans;
  s.client_pid_scans = c.client_pid_scans;
  s.cache_overflow = c.overflow;
  return s;
}

}  // namespace dbwarden::identity
