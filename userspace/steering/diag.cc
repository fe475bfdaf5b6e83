// SPDX-License-Identifier: Apache-2.0
//
// sock_diag (netlink) look-ups for steering: the endpoints a server listens
// on, the connections open before steering began, and ending them.
// Wire format: linux/inet_diag.h and linux/unix_diag.h; each reply is a
// struct inet_diag_msg / unix_diag_msg followed by rtattr attributes.
#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <set>

#include "common/unique_fd.h"
#include "steering/steering.h"

namespace dbwarden::steering {
namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

// Sends one sock_diag request and hands each reply message to `on_msg` until
// the dump ends (NLMSG_DONE) or, for a non-dump request, its ACK arrives.
Status send_request(const void* req, size_t len, const char* what,
                    const std::function<void(const nlmsghdr*)>& on_msg) {
  UniqueFd nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (nl.get() < 0)
    return Status::Error(std::string(what) + ": netlink socket: " + errno_text(errno));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl.get(), req, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    return Status::Error(std::string(what) + ": netlink send: " + errno_text(errno));
  }
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    ssize_t n = recv(nl.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(std::string(what) + ": netlink receive: " + errno_text(errno));
    }
    if (n == 0) return Status::Error(std::string(what) + ": netlink closed");
    uint32_t left = static_cast<uint32_t>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return Status::Ok();
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) return Status::Ok();  // the ACK of a non-dump request
        return Status::Error(std::string(what) + ": " + errno_text(e->error));
      }
      on_msg(h);
    }
  }
}

// A sock_diag request of `type` (SOCK_DIAG_BY_FAMILY, SOCK_DESTROY) with the
// family-specific body `body`; a dump unless `flags` say otherwise.
template <typename Body>
Status sock_diag(uint16_t type, const Body& body, const char* what,
                 const std::function<void(const nlmsghdr*)>& on_msg,
                 uint16_t flags = NLM_F_REQUEST | NLM_F_DUMP) {
  struct {
    nlmsghdr nlh;
    Body body;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = type;
  msg.nlh.nlmsg_flags = flags;
  msg.body = body;
  return send_request(&msg, sizeof(msg), what, on_msg);
}

// The two 32-bit halves of a socket cookie as sock_diag carries them.
uint64_t cookie_of(const uint32_t halves[2]) {
  return static_cast<uint64_t>(halves[0]) | (static_cast<uint64_t>(halves[1]) << 32);
}

// One TCP socket as inet_diag reports it, addresses unmapped.
struct InetSock {
  int family = 0;  // as reported (AF_INET6 for a dual-stack socket)
  uint8_t state = 0;
  Endpoint local, remote;
  uint64_t inode = 0, cookie = 0;
  bool v6only = false;
};

Endpoint diag_endpoint(int family, const __be32* addr, __be16 port) {
  sockaddr_storage ss{};
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = port;
    std::memcpy(&in6->sin6_addr, addr, 16);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = port;
    std::memcpy(&in->sin_addr, addr, 4);
  }
  return Endpoint::from_sockaddr_unmapped(ss);
}

// Every TCP socket of `family` in one of `states` (TCPF_* bits) in this
// network namespace. An AF_INET6 listener always carries INET_DIAG_SKV6ONLY.
Status dump_tcp(int family, uint32_t states, std::vector<InetSock>* out) {
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<uint8_t>(family);
  req.sdiag_protocol = IPPROTO_TCP;
  req.idiag_states = states;
  return sock_diag(SOCK_DIAG_BY_FAMILY, req, "sock_diag TCP dump", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
      return;
    const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
    InetSock s;
    s.family = m->idiag_family;
    s.state = m->idiag_state;
    s.local = diag_endpoint(m->idiag_family, m->id.idiag_src, m->id.idiag_sport);
    s.remote = diag_endpoint(m->idiag_family, m->id.idiag_dst, m->id.idiag_dport);
    s.inode = m->idiag_inode;
    s.cookie = cookie_of(m->id.idiag_cookie);
    int attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
    for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, attr_len);
         a = RTA_NEXT(a, attr_len)) {
      if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1) {
        s.v6only = *static_cast<const uint8_t*>(RTA_DATA(a)) != 0;
      }
    }
    out->push_back(s);
  });
}

// True when `local` is served by the protected endpoint `server`.
bool serves(const Endpoint& server, const Endpoint& local) {
  if (server.family != local.family || server.port != local.port) return false;
  return server.wildcard() || server.addr == local.addr;
}

}  // namespace

Result<std::vector<Endpoint>> tcp_listen_endpoints(uint16_t port) {
  std::vector<InetSock> socks;
  for (int family : {AF_INET, AF_INET6}) {
    if (Status st = dump_tcp(family, 1u << TCP_LISTEN, &socks); !st.ok()) return st;
  }
  std::vector<Endpoint> out;
  auto add = [&out](const Endpoint& e) {
    for (const Endpoint& have : out) {
      if (have == e) return;
    }
    out.push_back(e);
  };
  for (const InetSock& s : socks) {
    if (s.local.port != port) continue;
    add(s.local);
    // [::] without IPV6_V6ONLY also takes every IPv4 connection for the port.
    if (s.family == AF_INET6 && s.local.family == AF_INET6 && s.local.wildcard() && !s.v6only) {
      Endpoint any4;
      any4.family = AF_INET;
      any4.port = port;
      add(any4);
    }
  }
  return out;
}

Result<std::vector<ExistingConnection>> list_existing_tcp(const std::vector<Endpoint>& servers) {
  constexpr uint32_t kOpen = (1u << TCP_ESTABLISHED) | (1u << TCP_SYN_RECV) |
                             (1u << TCP_CLOSE_WAIT) | (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2);
  std::vector<InetSock> socks;
  for (int family : {AF_INET, AF_INET6}) {
    if (Status st = dump_tcp(family, kOpen, &socks); !st.ok()) return st;
  }
  std::vector<ExistingConnection> out;
  for (const InetSock& s : socks) {
    for (const Endpoint& server : servers) {
      if (!serves(server, s.local)) continue;
      ExistingConnection c;
      c.server = s.local;
      c.client = s.remote;
      c.inode = s.inode;
      c.cookie = s.cookie;
      out.push_back(c);
      break;
    }
  }
  return out;
}

Result<std::vector<ExistingConnection>> list_existing_unix(const std::vector<std::string>& paths) {
  unix_diag_req req{};
  req.sdiag_family = AF_UNIX;
  req.udiag_states = 1u << TCP_ESTABLISHED;
  req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER;
  std::set<std::string> wanted(paths.begin(), paths.end());
  std::vector<ExistingConnection> out;
  Status st = sock_diag(SOCK_DIAG_BY_FAMILY, req, "sock_diag unix dump", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(unix_diag_msg)))
      return;
    const auto* m = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
    if (m->udiag_type != SOCK_STREAM) return;
    std::string path;
    uint32_t peer = 0;
    int attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
    for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, attr_len);
         a = RTA_NEXT(a, attr_len)) {
      if (a->rta_type == UNIX_DIAG_NAME) {
        // An accepted socket carries its listener's name: a server-side socket.
        const char* name = static_cast<const char*>(RTA_DATA(a));
        path.assign(name, strnlen(name, RTA_PAYLOAD(a)));
      } else if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= sizeof(peer)) {
        std::memcpy(&peer, RTA_DATA(a), sizeof(peer));
      }
    }
    if (path.empty() || !wanted.count(path)) return;
    ExistingConnection c;
    c.unix_socket = true;
    c.path = path;
    c.inode = m->udiag_ino;
    c.peer_inode = peer;
    c.cookie = cookie_of(m->udiag_cookie);
    out.push_back(c);
  });
  if (!st.ok()) return st;
  return out;
}

namespace {

// SOCK_DESTROY of one TCP socket, named by its tuple and cookie so that a new
// socket reusing the tuple is never hit.
Status destroy_tcp(const ExistingConnection& c) {
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<uint8_t>(c.server.family);
  req.sdiag_protocol = IPPROTO_TCP;
  req.idiag_states = ~0u;
  req.id.idiag_sport = htons(c.server.port);
  req.id.idiag_dport = htons(c.client.port);
  std::memcpy(req.id.idiag_src, c.server.addr.data(), 16);
  std::memcpy(req.id.idiag_dst, c.client.addr.data(), 16);
  req.id.idiag_cookie[0] = static_cast<uint32_t>(c.cookie);
  req.id.idiag_cookie[1] = static_cast<uint32_t>(c.cookie >> 32);
  return sock_diag(
      SOCK_DESTROY, req, "SOCK_DESTROY", [](const nlmsghdr*) {}, NLM_F_REQUEST | NLM_F_ACK);
}

// A process and fd holding the socket with inode `ino`, from /proc/*/fd.
bool find_owner(uint64_t ino, pid_t* pid, int* fd) {
  const std::string want = "socket:[" + std::to_string(ino) + "]";
  DIR* proc = opendir("/proc");
  if (!proc) return false;
  bool found = false;
  while (dirent* p = readdir(proc)) {
    if (found || p->d_name[0] < '1' || p->d_name[0] > '9') continue;
    std::string dir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = opendir(dir.c_str());
    if (!fds) continue;
    while (dirent* f = readdir(fds)) {
      char link[64];
      ssize_t n = readlink((dir + "/" + f->d_name).c_str(), link, sizeof(link) - 1);
      if (n <= 0) continue;
      link[n] = 0;
      if (want == link) {
        *pid = static_cast<pid_t>(std::stol(p->d_name));
        *fd = std::atoi(f->d_name);
        found = true;
        break;
      }
    }
    closedir(fds);
  }
  closedir(proc);
  return found;
}

// shutdown() of a socket another process holds: its copy of the fd via
// pidfd_getfd (kernel 5.6, needs ptrace rights over the owner).
Status shutdown_by_owner(uint64_t ino) {
  pid_t pid = 0;
  int fd = -1;
  if (!find_owner(ino, &pid, &fd)) return Status::Ok();  // gone meanwhile
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd.get() < 0) {
    if (errno == ESRCH) return Status::Ok();
    return Status::Error("pidfd_open " + std::to_string(pid) + ": " + errno_text(errno));
  }
  UniqueFd sock(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (sock.get() < 0) {
    if (errno == EBADF || errno == ESRCH) return Status::Ok();  // closed meanwhile
    return Status::Error("pidfd_getfd from pid " + std::to_string(pid) + ": " + errno_text(errno));
  }
  if (shutdown(sock.get(), SHUT_RDWR) != 0 && errno != ENOTCONN) {
    return Status::Error("shutdown: " + errno_text(errno));
  }
  return Status::Ok();
}

}  // namespace

Status terminate(const ExistingConnection& conn) {
  if (conn.unix_socket) return shutdown_by_owner(conn.inode);
  Status st = destroy_tcp(conn);
  // ENOENT: it closed meanwhile. The tuple and cookie name only that socket.
  if (!st.ok() && st.message().find(std::strerror(ENOENT)) != std::string::npos) {
    return Status::Ok();
  }
  return st;
}

std::string ExistingConnection::to_string() const {
  if (unix_socket) return "unix " + path + " (socket inode " + std::to_string(inode) + ")";
  return "tcp " + client.to_string() + " -> " + server.to_string() + " (socket inode " +
         std::to_string(inode) + ")";
}

}  // namespace dbwarden::steering
