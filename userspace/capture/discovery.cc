// SPDX-License-Identifier: Apache-2.0
#include "capture/discovery.h"

#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace dbwarden::capture {
namespace {

constexpr int kTcpListen = 0x0A;          // TCP_LISTEN in /proc/net/tcp's `st` column
constexpr unsigned kSoAcceptCon = 0x10000;  // __SO_ACCEPTCON in /proc/net/unix's Flags
constexpr unsigned kSockStream = 1;

std::vector<std::string> split_ws(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

bool parse_hex(std::string_view s, unsigned long long& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_dec(std::string_view s, unsigned long long& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<uint32_t> numeric_dirs(const std::string& dir) {
  std::vector<uint32_t> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    unsigned long long v = 0;
    if (parse_dec(e->d_name, v)) out.push_back(static_cast<uint32_t>(v));
  }
  closedir(d);
  return out;
}

constexpr int kTcpEstablishedState = 1;  // TCP_ESTABLISHED
constexpr int kTcpListenState = 10;      // TCP_LISTEN

// Dumps the TCP sockets of one family in the given states (a bit per TCP
// state) over sock_diag netlink, calling on_socket for each. Unlike
// /proc/net/tcp, the kernel filters by state, so asking for listeners costs
// nothing per established connection on a busy server. Returns false if
// netlink is unavailable or the dump failed.
bool netlink_tcp_dump(uint8_t family, uint32_t states,
                      const std::function<void(const inet_diag_msg&)>& on_socket) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return false;
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = states;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    close(fd);
    return false;
  }
  alignas(nlmsghdr) char buf[16384];
  bool ok = false, done = false;
  while (!done) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    int len = static_cast<int>(n);
// NLMSG_OK compares the header's unsigned length with the signed byte count.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
#pragma GCC diagnostic pop
      if (h->nlmsg_type == NLMSG_DONE) {
        ok = done = true;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        done = true;
        break;
      }
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
      on_socket(*static_cast<const inet_diag_msg*>(NLMSG_DATA(h)));
    }
  }
  close(fd);
  return ok;
}

bool netlink_tcp_listeners(uint8_t family, std::vector<std::pair<uint16_t, uint64_t>>& out) {
  return netlink_tcp_dump(family, 1u << kTcpListenState, [&](const inet_diag_msg& d) {
    out.emplace_back(ntohs(d.id.idiag_sport), d.idiag_inode);
  });
}

}  // namespace

std::set<uint64_t> Listeners::unix_inodes() const {
  std::set<uint64_t> out;
  for (const auto& u : unix) out.insert(u.inode);
  return out;
}

// /proc/net/tcp: "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ..."
// local_address is "HEXADDR:HEXPORT".
bool parse_tcp_listen_line(const std::string& line, uint16_t& port, uint64_t& inode) {
  auto f = split_ws(line);
  if (f.size() < 10) return false;
  unsigned long long st = 0, p = 0, ino = 0;
  auto colon = f[1].rfind(':');
  if (colon == std::string::npos || !parse_hex(f[3], st) || st != kTcpListen) return false;
  if (!parse_hex(std::string_view(f[1]).substr(colon + 1), p) || p > 0xFFFF) return false;
  if (!parse_dec(f[9], ino)) return false;
  port = static_cast<uint16_t>(p);
  inode = ino;
  return true;
}

// /proc/net/unix: "Num RefCount Protocol Flags Type St Inode [Path]"
bool parse_unix_listen_line(const std::string& line, std::string& path, uint64_t& inode) {
  auto f = split_ws(line);
  if (f.size() < 8) return false;
  unsigned long long flags = 0, type = 0, ino = 0;
  if (!parse_hex(f[3], flags) || !parse_hex(f[4], type) || !parse_dec(f[6], ino)) return false;
  if (!(flags & kSoAcceptCon) || type != kSockStream) return false;
  path = f[7];
  inode = ino;
  return true;
}

uint16_t pgsql_socket_port(const std::string& path) {
  static constexpr std::string_view kPrefix = ".s.PGSQL.";
  auto slash = path.rfind('/');
  std::string_view name = std::string_view(path).substr(slash == std::string::npos ? 0 : slash + 1);
  if (name.substr(0, kPrefix.size()) != kPrefix) return 0;
  unsigned long long port = 0;
  if (!parse_dec(name.substr(kPrefix.size()), port) || port == 0 || port > 0xFFFF) return 0;
  return static_cast<uint16_t>(port);
}

template <typename Watched>
void read_proc_tcp_listeners(const std::string& proc_root, Watched watched, Listeners& out) {
  for (const char* file : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc_root + file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      uint16_t port = 0;
      uint64_t inode = 0;
      if (parse_tcp_listen_line(line, port, inode) && watched(port) && inode != 0) {
        out.tcp_inodes.insert(inode);
        out.tcp_ports[inode] = port;
      }
    }
  }
}

template <typename Watched>
void read_proc_unix_listeners(const std::string& proc_root, Watched watched, Listeners& out) {
  std::ifstream in(proc_root + "/net/unix");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    UnixListener u;
    if (!parse_unix_listen_line(line, u.path, u.inode)) continue;
    u.port = pgsql_socket_port(u.path);
    if (u.port != 0 && watched(u.port)) out.unix.insert(u);
  }
}

Listeners find_listeners(const std::vector<uint16_t>& ports, const std::string& proc_root) {
  Listeners out;
  auto watched = [&](uint16_t p) { return std::find(ports.begin(), ports.end(), p) != ports.end(); };
  std::vector<std::pair<uint16_t, uint64_t>> tcp;
  if (proc_root == "/proc" && netlink_tcp_listeners(AF_INET, tcp) &&
      netlink_tcp_listeners(AF_INET6, tcp)) {
    for (auto [port, inode] : tcp) {
      if (watched(port) && inode != 0) {
        out.tcp_inodes.insert(inode);
        out.tcp_ports[inode] = port;
      }
    }
  } else {
    read_proc_tcp_listeners(proc_root, watched, out);
  }
  read_proc_unix_listeners(proc_root, watched, out);
  return out;
}

namespace {

// Socket inodes behind /proc/<pid>/fd, calling `visit(inode)` for each until it returns true.
template <typename Visit>
void for_each_socket_inode(uint32_t pid, const std::string& proc_root, Visit visit) {
  static constexpr std::string_view kSocket = "socket:[";
  char target[64];
  std::string fd_dir = proc_root + "/" + std::to_string(pid) + "/fd";
  for (uint32_t fd : numeric_dirs(fd_dir)) {
    std::string link = fd_dir + "/" + std::to_string(fd);
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    std::string_view t(target, static_cast<size_t>(n));
    if (t.substr(0, kSocket.size()) != kSocket || t.back() != ']') continue;
    unsigned long long ino = 0;
    if (parse_dec(t.substr(kSocket.size(), t.size() - kSocket.size() - 1), ino) && visit(ino)) {
      return;
    }
  }
}

}  // namespace

std::vector<UnixListener> unix_listeners_of(uint32_t pid, const std::string& proc_root) {
  std::map<uint64_t, std::string> listening;  // inode -> path, from /proc/net/unix
  std::ifstream in(proc_root + "/net/unix");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::string path;
    uint64_t inode = 0;
    if (parse_unix_listen_line(line, path, inode) && !path.empty() && path[0] == '/') {
      listening[inode] = path;
    }
  }
  std::vector<UnixListener> out;
  for_each_socket_inode(pid, proc_root, [&](uint64_t ino) {
    if (auto it = listening.find(ino); it != listening.end()) {
      out.push_back(UnixListener{it->second, 0, ino});
    }
    return false;
  });
  return out;
}

std::map<uint64_t, std::vector<uint32_t>> owners_of(const std::set<uint64_t>& inodes,
                                                    const std::string& proc_root) {
  std::map<uint64_t, std::vector<uint32_t>> out;
  if (inodes.empty()) return out;
  for (uint32_t pid : numeric_dirs(proc_root)) {
    for_each_socket_inode(pid, proc_root, [&](uint64_t ino) {
      if (inodes.count(ino)) {
        auto& pids = out[ino];
        if (pids.empty() || pids.back() != pid) pids.push_back(pid);
      }
      return false;
    });
  }
  return out;
}

std::vector<uint32_t> distinct_pids(const std::map<uint64_t, std::vector<uint32_t>>& owners) {
  std::set<uint32_t> pids;
  for (const auto& [ino, holders] : owners) pids.insert(holders.begin(), holders.end());
  return {pids.begin(), pids.end()};
}

std::vector<uint32_t> with_descendants(const std::vector<uint32_t>& roots,
                                       const std::string& proc_root) {
  std::multimap<uint32_t, uint32_t> children;
  for (uint32_t pid : numeric_dirs(proc_root)) {
    std::ifstream in(proc_root + "/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(in, stat);
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    auto f = split_ws(stat.substr(close + 1));
    unsigned long long ppid = 0;
    if (f.size() >= 2 && parse_dec(f[1], ppid)) children.emplace(static_cast<uint32_t>(ppid), pid);
  }
  std::vector<uint32_t> out;
  std::vector<uint32_t> todo(roots.begin(), roots.end());
  while (!todo.empty()) {
    uint32_t p = todo.back();
    todo.pop_back();
    if (std::find(out.begin(), out.end(), p) != out.end()) continue;
    out.push_back(p);
    auto [b, e] = children.equal_range(p);
    for (auto it = b; it != e; ++it) todo.push_back(it->second);
  }
  return out;
}

bool is_local_peer(const SocketEnds& ends) {
  // The rule of peer_is_local() in bpf/dbwarden.bpf.c, so that userspace and the
  // kernel agree on what "another host" is.
  const uint32_t* d = ends.remote;
  const uint32_t* s = ends.local;
  if (ends.family == AF_INET) {
    const uint32_t daddr = ntohl(d[0]);
    return daddr == 0 || (daddr >> 24) == 127 || d[0] == s[0];
  }
  if (d[0] == s[0] && d[1] == s[1] && d[2] == s[2] && d[3] == s[3]) return true;
  if (d[0] == 0 && d[1] == 0 && d[2] == 0 && (d[3] == 0 || d[3] == htonl(1))) return true;
  return d[0] == 0 && d[1] == 0 && d[2] == htonl(0xffff) && (ntohl(d[3]) >> 24) == 127;
}

Result<std::set<uint64_t>> remote_database_sockets(const std::vector<uint16_t>& ports) {
  const std::set<uint16_t> watched(ports.begin(), ports.end());
  std::set<uint64_t> out;
  for (uint8_t family : {uint8_t{AF_INET}, uint8_t{AF_INET6}}) {
    const bool ok =
        netlink_tcp_dump(family, 1u << kTcpEstablishedState, [&](const inet_diag_msg& m) {
          SocketEnds ends;
          ends.family = m.idiag_family;
          std::memcpy(ends.local, m.id.idiag_src, sizeof(ends.local));
          std::memcpy(ends.remote, m.id.idiag_dst, sizeof(ends.remote));
          if (watched.count(ntohs(m.id.idiag_dport)) && !is_local_peer(ends) &&
              m.idiag_inode != 0) {
            out.insert(m.idiag_inode);
          }
        });
    if (!ok) {
      return Status::Error("listing established TCP connections over sock_diag netlink failed");
    }
  }
  return out;
}

}  // namespace dbwarden::capture
