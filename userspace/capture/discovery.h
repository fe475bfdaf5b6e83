// SPDX-License-Identifier: Apache-2.0
//
// Finds the database servers to watch from /proc: which processes listen on
// the configured ports (TCP, IPv4 and IPv6) and on `.s.PGSQL.<port>` unix
// sockets, wherever unix_socket_directories puts them.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace dbwarden::capture {

struct UnixListener {
  std::string path;
  uint16_t port = 0;
  uint64_t inode = 0;
  bool operator<(const UnixListener& o) const { return path < o.path; }
};

struct Listeners {
  std::set<uint64_t> tcp_inodes;     // listening TCP sockets on a watched port
  std::map<uint64_t, uint16_t> tcp_ports;  // inode -> port, for the same sockets
  std::set<UnixListener> unix;       // listening unix sockets named .s.PGSQL.<watched port>
  bool operator==(const Listeners& o) const {
    return tcp_inodes == o.tcp_inodes && unix_inodes() == o.unix_inodes();
  }
  std::set<uint64_t> unix_inodes() const;
};

// Parses /proc/net/{tcp,tcp6,unix} under proc_root. Cheap: run it every second.
Listeners find_listeners(const std::vector<uint16_t>& ports, const std::string& proc_root = "/proc");

// For each of the socket inodes, the pids holding it (one scan of /proc/*/fd:
// run it only when the listener set changed).
std::map<uint64_t, std::vector<uint32_t>> owners_of(const std::set<uint64_t>& inodes,
                                                    const std::string& proc_root = "/proc");

// Every pid of an owners_of() result, each once, in ascending order.
std::vector<uint32_t> distinct_pids(const std::map<uint64_t, std::vector<uint32_t>>& owners);

// Listening unix stream sockets held open by `pid`, whatever their names
// (`port` left 0). MySQL's socket path is a setting, so it is found through
// the process that listens on the MySQL TCP port.
std::vector<UnixListener> unix_listeners_of(uint32_t pid, const std::string& proc_root = "/proc");

// The given pids and all their descendants.
std::vector<uint32_t> with_descendants(const std::vector<uint32_t>& roots,
                                       const std::string& proc_root = "/proc");

// Both ends of a TCP socket, addresses in network byte order (IPv4 in [0]).
struct SocketEnds {
  uint8_t family = 0;  // AF_INET or AF_INET6
  uint32_t local[4] = {0, 0, 0, 0};
  uint32_t remote[4] = {0, 0, 0, 0};
};

// True when the remote end is on this host: loopback, unspecified, or the
// socket's own address (the kernel side applies the same rule).
bool is_local_peer(const SocketEnds& ends);

// Inodes of established TCP sockets whose remote end is a watched port on
// another host: local clients of remote databases. The connect(2) hook sees
// new ones; these are the ones that were open before capture started.
Result<std::set<uint64_t>> remote_database_sockets(const std::vector<uint16_t>& ports);

// Parsers, exposed for unit tests.
// One /proc/net/tcp{,6} line -> (port, inode) if it is a LISTEN socket.
bool parse_tcp_listen_line(const std::string& line, uint16_t& port, uint64_t& inode);
// One /proc/net/unix line -> (path, inode) if it is a listening stream socket.
bool parse_unix_listen_line(const std::string& line, std::string& path, uint64_t& inode);
// ".../.s.PGSQL.5432" -> 5432; 0 if the name is not a PostgreSQL socket.
uint16_t pgsql_socket_port(const std::string& path);

}  // namespace dbwarden::capture
