// SPDX-License-Identifier: Apache-2.0
//
// Keeps the kernel's idea of "the database servers" current: finds the
// processes listening on the watched ports and unix sockets, tracks them and
// their existing children (the kernel tracks later children itself), and
// picks up servers that start or restart after the agent. PostgreSQL's unix
// sockets are found by name (.s.PGSQL.<port>); MySQL's are whatever unix
// sockets the process listening on the MySQL port holds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "capture/capture.h"
#include "capture/discovery.h"

namespace dbwarden::agent {

class ServerWatcher {
 public:
  ServerWatcher(capture::BpfCapture& capture, std::vector<uint16_t> postgres_ports,
                std::vector<uint16_t> mysql_ports);

  // Watch the ports, pick up clients of remote databases already connected,
  // then the first refresh.
  Status start();
  Status refresh();  // cheap when nothing changed: run it every second
  // The kernel found a server on its own (bpf/dbwarden.bpf.c on_untracked_accept,
  // on_listen): it captures already; the watcher records a new unix path and
  // asks for a refresh (children forked before, MySQL's other sockets).
  void on_kernel_found(const dbw_server_event& event);
  // A refresh is due now rather than at the next one-second tick.
  bool refresh_pending() const { return refresh_pending_; }
  // New port lists (config reload): ports no longer listed stop being
  // watched, with their unix sockets; new ones start. Tracked connections stay.
  Status set_ports(const std::vector<uint16_t>& postgres_ports,
                   std::vector<uint16_t> mysql_ports);
  size_t server_processes() const { return servers_.size(); }
  const std::vector<std::string>& unix_paths() const { return unix_paths_; }

 private:
  // Processes with a connection to a watched port on another host, opened
  // before the agent watched that port, are tracked as clients.
  Status track_remote_clients();

  capture::BpfCapture& capture_;
  std::vector<uint16_t> ports_;  // all of them
  std::vector<uint16_t> mysql_ports_;
  capture::Listeners last_;
  bool first_ = true;
  bool refresh_pending_ = false;
  std::vector<uint32_t> servers_;
  std::vector<std::string> unix_paths_;
  std::map<std::string, uint16_t> unix_path_ports_;  // path -> the port it stands for
};

}  // namespace dbwarden::agent
