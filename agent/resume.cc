// SPDX-License-Identifier: Apache-2.0
#include "agent/resume.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "agent/log.h"
#include "capture/discovery.h"

namespace dbwarden::agent {
namespace {

bool parse_hex32(const std::string& s, uint32_t& out) {
  if (s.empty() || s.size() > 8) return false;
  uint32_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (d < 0) return false;
    v = v << 4 | static_cast<uint32_t>(d);
  }
  out = v;
  return true;
}

// "0100007F:1538": the address is printed as the 32-bit words the kernel
// holds in network order (%08X each), so storing each parsed word in host
// order restores the original bytes (net/ipv4/tcp_ipv4.c, get_tcp4_sock;
// net/ipv6/tcp_ipv6.c, get_tcp6_sock).
bool parse_endpoint(const std::string& field, bool ipv6, uint8_t* addr, uint16_t& port) {
  auto colon = field.find(':');
  size_t words = ipv6 ? 4 : 1;
  if (colon != words * 8) return false;
  for (size_t i = 0; i < words; i++) {
    uint32_t w = 0;
    if (!parse_hex32(field.substr(i * 8, 8), w)) return false;
    std::memcpy(addr + 4 * i, &w, 4);
  }
  uint32_t p = 0;
  if (!parse_hex32(field.substr(colon + 1), p) || p > 0xFFFF) return false;
  port = static_cast<uint16_t>(p);
  return true;
}

std::map<uint64_t, TcpSocketLine> tcp_sockets(const std::string& proc_root,
                                              const std::set<uint64_t>& wanted) {
  std::map<uint64_t, TcpSocketLine> out;
  for (bool ipv6 : {false, true}) {
    std::ifstream in(proc_root + (ipv6 ? "/net/tcp6" : "/net/tcp"));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      TcpSocketLine t;
      if (parse_tcp_socket_line(line, ipv6, t) && wanted.count(t.inode)) out[t.inode] = t;
    }
  }
  return out;
}

}  // namespace

// "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout
// inode"
bool parse_tcp_socket_line(const std::string& line, bool ipv6, TcpSocketLine& out) {
  std::istringstream in(line);
  std::string f[10];
  for (auto& s : f) {
    if (!(in >> s)) return false;
  }
  TcpSocketLine t;
  if (!parse_endpoint(f[1], ipv6, t.local_addr, t.local_port) ||
      !parse_endpoint(f[2], ipv6, t.remote_addr, t.remote_port)) {
    return false;
  }
  if (f[9].empty() || !std::all_of(f[9].begin(), f[9].end(), ::isdigit) || f[9].size() > 19) {
    return false;
  }
  t.inode = std::stoull(f[9]);
  out = t;
  return true;
}

size_t resume_connections(const capture::BpfCapture& capture, Observer& observer,
                          const std::string& proc_root) {
  auto tracked = capture.tracked_sockets();
  if (!tracked.ok()) {
    DBW_LOG(kWarning, "resuming: %s; connections are picked up as their records arrive",
            tracked.status().message().c_str());
    return 0;
  }
  std::set<uint64_t> inodes;
  for (const auto& t : tracked.value()) inodes.insert(t.sock_ino);
  std::map<uint64_t, TcpSocketLine> tcp = tcp_sockets(proc_root, inodes);
  std::map<uint64_t, std::vector<uint32_t>> owners = capture::owners_of(inodes, proc_root);

  for (const auto& t : tracked.value()) {
    dbw_conn_event e{};
    e.hdr.kind = DBW_EV_CONN_OPEN;
    e.hdr.conn_id = t.conn_id;
    // The backend: the postmaster closed its copy after fork, so the holder
    // with the highest pid is the usual answer; records correct it anyway.
    const auto& pids = owners[t.sock_ino];
    e.hdr.pid = pids.empty() ? 0 : *std::max_element(pids.begin(), pids.end());
    e.family = t.family;
    e.server_port = t.server_port;
    e.sock_ino = t.sock_ino;
    if (auto it = tcp.find(t.sock_ino); it != tcp.end()) {
      const TcpSocketLine& s = it->second;
      std::memcpy(e.server_addr, s.local_addr, 16);
      std::memcpy(e.client_addr, s.remote_addr, 16);
      e.client_port = s.remote_port;
    }
    observer.on_conn_open(e);
  }
  return tracked.value().size();
}

Status unwatch_stale_ports(capture::BpfCapture& capture, const std::vector<uint16_t>& configured) {
  auto watched = capture.watched_ports();
  if (!watched.ok()) return watched.status();
  for (uint16_t port : watched.value()) {
    if (std::find(configured.begin(), configured.end(), port) != configured.end()) continue;
    if (Status s = capture.unwatch_port(port); !s.ok()) return s;
    DBW_LOG(kInfo, "port %u was watched by the previous agent, not by this config: unwatched",
            port);
  }
  return Status::Ok();
}

}  // namespace dbwarden::agent
