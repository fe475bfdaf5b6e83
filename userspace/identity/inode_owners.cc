// SPDX-License-Identifier: Apache-2.0
#include "identity/inode_owners.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string_view>

namespace dbwarden::identity {
namespace {

std::optional<uint64_t> parse_number(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// "socket:[12345]" -> 12345 (see proc(5), /proc/pid/fd).
std::optional<uint64_t> socket_inode_of_link(std::string_view link) {
  constexpr std::string_view kPrefix = "socket:[";
  if (link.size() < kPrefix.size() + 2 || link.substr(0, kPrefix.size()) != kPrefix ||
      link.back() != ']') {
    return std::nullopt;
  }
  return parse_number(link.substr(kPrefix.size(), link.size() - kPrefix.size() - 1));
}

// Calls f(pid) for each numeric entry of the /proc directory.
template <typename F>
void for_each_pid(const std::string& proc_root, F f) {
  DIR* d = opendir(proc_root.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    auto pid = parse_number(e->d_name);
    if (pid && *pid <= UINT32_MAX) f(static_cast<uint32_t>(*pid));
  }
  closedir(d);
}

}  // namespace

InodeOwners::InodeOwners(std::string proc_root, std::chrono::milliseconds interval,
                         size_t max_sockets)
    : proc_root_(std::move(proc_root)), interval_(interval), max_sockets_(max_sockets) {}

bool InodeOwners::still_holds(const Owner& owner, uint64_t inode) const {
  std::string path =
      proc_root_ + "/" + std::to_string(owner.pid) + "/fd/" + std::to_string(owner.fd);
  char buf[64];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  if (n <= 0) return false;
  auto got = socket_inode_of_link(std::string_view(buf, static_cast<size_t>(n)));
  return got && *got == inode;
}

bool InodeOwners::scan_pid(uint32_t pid) {
  std::string dir = proc_root_ + "/" + std::to_string(pid) + "/fd";
  // Processes we may not inspect (not root) or that just exited are skipped.
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return false;
  DIR* d = fdopendir(dfd);
  if (d == nullptr) {
    close(dfd);
    return false;
  }
  char buf[64];
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    ssize_t n = readlinkat(dfd, e->d_name, buf, sizeof(buf));
    if (n <= 0) continue;
    auto inode = socket_inode_of_link(std::string_view(buf, static_cast<size_t>(n)));
    if (!inode) continue;
    auto fd = parse_number(e->d_name);
    if (!fd || *fd > INT32_MAX) continue;
    if (owners_.size() >= max_sockets_ && owners_.find(*inode) == owners_.end()) {
      counters_.overflow++;
      continue;
    }
    // Several processes can hold one socket (inherited across fork); the first
    // seen, the lowest pid in /proc order, is kept so that answers are stable.
    owners_.try_emplace(*inode, Owner{pid, static_cast<int>(*fd)});
  }
  closedir(d);  // also closes dfd
  return true;
}

void InodeOwners::full_scan() {
  counters_.full_scans++;
  owners_.clear();
  known_pids_.clear();
  for_each_pid(proc_root_, [&](uint32_t pid) {
    known_pids_.insert(pid);
    scan_pid(pid);
  });
  last_full_ = std::chrono::steady_clock::now();
  scanned_once_ = true;
}

void InodeOwners::new_pid_scan() {
  counters_.new_pid_scans++;
  for_each_pid(proc_root_, [&](uint32_t pid) {
    if (known_pids_.insert(pid).second) scan_pid(pid);
  });
}

void InodeOwners::client_pid_scan() {
  counters_.client_pid_scans++;
  std::erase_if(client_pids_, [&](uint32_t pid) { return !scan_pid(pid); });  // gone: forget
}

void InodeOwners::remember_client(uint32_t pid) {
  std::erase(client_pids_, pid);
  if (client_pids_.size() >= kMaxClientPids) client_pids_.erase(client_pids_.begin());
  client_pids_.push_back(pid);
}

std::optional<Owner> InodeOwners::held_by(uint32_t pid, uint64_t inode) {
  owners_.erase(inode);  // whatever was cached, this scan is newer
  if (!scan_pid(pid)) return std::nullopt;
  known_pids_.insert(pid);
  auto it = owners_.find(inode);
  if (it == owners_.end() || it->second.pid != pid) return std::nullopt;
  remember_client(pid);
  return it->second;
}

std::optional<Owner> InodeOwners::find(uint64_t inode) {
  auto lookup = [&]() -> std::optional<Owner> {
    auto it = owners_.find(inode);
    if (it == owners_.end()) return std::nullopt;
    if (still_holds(it->second, inode)) return it->second;
    owners_.erase(it);  // closed or fd reused since the scan
    return std::nullopt;
  };
  if (auto hit = lookup()) {
    counters_.hits++;
    remember_client(hit->pid);
    return hit;
  }
  auto now = std::chrono::steady_clock::now();
  if (!scanned_once_ || now - last_full_ >= interval_) {
    full_scan();
  } else {
    new_pid_scan();
    client_pid_scan();
  }
  auto found = lookup();
  if (found) remember_client(found->pid);
  return found;
}

}  // namespace dbwarden::identity
