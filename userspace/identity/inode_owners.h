// SPDX-License-Identifier: Apache-2.0
//
// Socket inode -> the process holding it, from /proc/<pid>/fd links
// ("socket:[<inode>]"). A full scan reads every fd of every process, so it is
// cached and rebuilt only when a lookup misses, at most once per interval; in
// between, a miss scans the pids that appeared since the last scan and the
// pids already found holding a looked-up socket: a connection pool or a
// multi-connection client opens its next connection from a process we know,
// and that must be found at once, not a full-scan interval later.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace dbwarden::identity {

struct Owner {
  uint32_t pid = 0;
  int fd = -1;
};

class InodeOwners {
 public:
  struct Counters {
    uint64_t hits = 0, full_scans = 0, new_pid_scans = 0, client_pid_scans = 0, overflow = 0;
  };
  // Bound on remembered client pids (the rescan on a miss reads each one's fds).
  static constexpr size_t kMaxClientPids = 256;
  InodeOwners(std::string proc_root, std::chrono::milliseconds interval, size_t max_sockets);

  // The process holding socket `inode`, checked against /proc/<pid>/fd/<fd>
  // before it is returned.
  std::optional<Owner> find(uint64_t inode);
  // `inode` if process `pid` holds it now (reads only that process's fds).
  std::optional<Owner> held_by(uint32_t pid, uint64_t inode);
  // True while /proc/<pid>/fd/<fd> still names socket `inode`.
  bool still_holds(const Owner& owner, uint64_t inode) const;
  const Counters& counters() const { return counters_; }

 private:
  // False when the pid's fd directory cannot be read (exited, not ours).
  bool scan_pid(uint32_t pid);
  void full_scan();
  void new_pid_scan();
  void client_pid_scan();
  void remember_client(uint32_t pid);

  std::string proc_root_;
  std::chrono::milliseconds interval_;
  size_t max_sockets_;
  std::unordered_map<uint64_t, Owner> owners_;
  std::unordered_set<uint32_t> known_pids_;
  // Pids find() answered with, most recent last; rescanned on a miss.
  std::vector<uint32_t> client_pids_;
  std::chrono::steady_clock::time_point last_full_{};
  bool scanned_once_ = false;
  Counters counters_;
};

}  // namespace dbwarden::identity
