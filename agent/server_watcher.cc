// SPDX-License-Identifier: Apache-2.0
#include "agent/server_watcher.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "agent/log.h"

namespace dbwarden::agent {

ServerWatcher::ServerWatcher(capture::BpfCapture& capture, std::vector<uint16_t> postgres_ports,
                             std::vector<uint16_t> mysql_ports)
    : capture_(capture), ports_(std::move(postgres_ports)), mysql_ports_(std::move(mysql_ports)) {
  ports_.insert(ports_.end(), mysql_ports_.begin(), mysql_ports_.end());
}

namespace {

// PostgreSQL ports get the bulk-data bound; MySQL ports never (its decoder
// counts rows from every row packet: see DBW_PORT_BULK_BOUND).
bool bulk_bound(uint16_t port, const std::vector<uint16_t>& mysql_ports) {
  return std::find(mysql_ports.begin(), mysql_ports.end(), port) == mysql_ports.end();
}

}  // namespace

Status ServerWatcher::start() {
  for (uint16_t port : ports_) {
    if (Status s = capture_.watch_port(port, bulk_bound(port, mysql_ports_)); !s.ok()) return s;
  }
  if (Status s = track_remote_clients(); !s.ok()) return s;
  return refresh();
}

Status ServerWatcher::track_remote_clients() {
  // The connect(2) hook is live before this runs, so a connection is either
  // made after it (the hook sees it) or listed here.
  Result<std::set<uint64_t>> sockets = capture::remote_database_sockets(ports_);
  if (!sockets.ok()) {
    // Not fatal: connections made from now on are still found by the hook.
    DBW_LOG(kWarning,
            "%s: client connections to remote databases opened before now "
            "are not captured",
            sockets.status().message().c_str());
    return Status::Ok();
  }
  if (sockets->empty()) return Status::Ok();
  for (uint32_t pid : capture::distinct_pids(capture::owners_of(*sockets))) {
    if (capture_.is_tracked(pid)) continue;
    if (Status s = capture_.track_client_process(pid); !s.ok()) return s;
    DBW_LOG(kInfo,
            "capturing process %u on the client side: connected to a remote database "
            "before the agent started",
            pid);
  }
  return Status::Ok();
}

Status ServerWatcher::set_ports(const std::vector<uint16_t>& postgres_ports,
                                std::vector<uint16_t> mysql_ports) {
  std::vector<uint16_t> all = postgres_ports;
  all.insert(all.end(), mysql_ports.begin(), mysql_ports.end());
  for (uint16_t port : all) {
    if (Status s = capture_.watch_port(port, bulk_bound(port, mysql_ports)); !s.ok()) return s;
  }
  for (uint16_t port : ports_) {
    if (std::find(all.begin(), all.end(), port) != all.end()) continue;
    if (Status s = capture_.unwatch_port(port); !s.ok()) return s;
    DBW_LOG(kInfo, "no longer watching port %u", port);
  }
  for (auto it = unix_path_ports_.begin(); it != unix_path_ports_.end();) {
    if (std::find(all.begin(), all.end(), it->second) != all.end()) {
      ++it;
      continue;
    }
    if (Status s = capture_.unwatch_unix_path(it->first); !s.ok()) return s;
    DBW_LOG(kInfo, "no longer watching unix socket %s", it->first.c_str());
    unix_paths_.erase(std::find(unix_paths_.begin(), unix_paths_.end(), it->first));
    it = unix_path_ports_.erase(it);
  }
  ports_ = std::move(all);
  mysql_ports_ = std::move(mysql_ports);
  first_ = true;  // list the listeners of the new port set now
  if (Status s = track_remote_clients(); !s.ok()) return s;
  return refresh();
}

void ServerWatcher::on_kernel_found(const dbw_server_event& e) {
  refresh_pending_ = true;
  if (e.how == DBW_SERVER_ACCEPT) {
    DBW_LOG(kInfo, "database server process %u found by the kernel (accepted on port %u)",
            e.hdr.pid, e.port);
    return;
  }
  const std::string path(e.path, strnlen(e.path, sizeof(e.path)));
  if (std::find(unix_paths_.begin(), unix_paths_.end(), path) != unix_paths_.end()) return;
  DBW_LOG(kInfo, "watching unix socket %s (port %u), found by the kernel at its listen by %u",
          path.c_str(), e.port, e.hdr.pid);
  unix_paths_.push_back(path);
  unix_path_ports_[path] = e.port;
}

Status ServerWatcher::refresh() {
  refresh_pending_ = false;
  capture::Listeners now = capture::find_listeners(ports_);
  if (!first_ && now == last_) {
    // Same listeners. A server that restarted on the same port gets new
    // socket inodes, so it does not take this path.
    return Status::Ok();
  }
  first_ = false;
  last_ = now;
  for (const auto& u : now.unix) {
    if (std::find(unix_paths_.begin(), unix_paths_.end(), u.path) != unix_paths_.end()) continue;
    if (Status s = capture_.watch_unix_path(u.path, u.port); !s.ok()) return s;
    DBW_LOG(kInfo, "watching unix socket %s (PostgreSQL port %u)", u.path.c_str(), u.port);
    unix_paths_.push_back(u.path);
    unix_path_ports_[u.path] = u.port;
  }
  std::set<uint64_t> inodes = now.tcp_inodes;
  for (uint64_t ino : now.unix_inodes()) inodes.insert(ino);
  // One /proc scan serves both the server processes and MySQL's unix sockets.
  std::map<uint64_t, std::vector<uint32_t>> owners = capture::owners_of(inodes);
  for (const auto& [inode, port] : now.tcp_ports) {
    if (std::find(mysql_ports_.begin(), mysql_ports_.end(), port) == mysql_ports_.end()) continue;
    for (uint32_t pid : owners[inode]) {
      for (const auto& u : capture::unix_listeners_of(pid)) {
        if (std::find(unix_paths_.begin(), unix_paths_.end(), u.path) != unix_paths_.end()) {
          continue;
        }
        if (Status s = capture_.watch_unix_path(u.path, port); !s.ok()) return s;
        DBW_LOG(kInfo, "watching unix socket %s (MySQL port %u)", u.path.c_str(), port);
        unix_paths_.push_back(u.path);
        unix_path_ports_[u.path] = port;
      }
    }
  }
  // Track the servers before listing their children: a child forked in
  // between is then either seen by the kernel's fork hook or listed here.
  std::vector<uint32_t> roots = capture::distinct_pids(owners);
  for (uint32_t pid : roots) {
    if (Status s = capture_.track_process(pid); !s.ok()) return s;
  }
  for (uint32_t pid : capture::with_descendants(roots)) {
    if (Status s = capture_.track_process(pid); !s.ok()) return s;
  }
  for (uint32_t pid : roots) {
    if (std::find(servers_.begin(), servers_.end(), pid) == servers_.end()) {
      DBW_LOG(kInfo, "watching database server process %u", pid);
    }
  }
  servers_ = roots;
  return Status::Ok();
}

}  // namespace dbwarden::agent
