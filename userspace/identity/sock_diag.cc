// SPDX-License-Identifier: Apache-2.0
//
// Wire layout of one request (both families), see linux/sock_diag.h,
// linux/inet_diag.h and linux/unix_diag.h:
//   struct nlmsghdr { len, type = SOCK_DIAG_BY_FAMILY, flags = NLM_F_REQUEST, seq, pid }
//   then inet_diag_req_v2 { family, IPPROTO_TCP, ext, pad, states, inet_diag_sockid id }
//     id = { sport, dport, src[4], dst[4], if, cookie[2] }: "src" is the socket's
//     local end. Without NLM_F_DUMP the kernel does one hash lookup of the 4-tuple
//     (inet_diag_find_one_icsk), answering one inet_diag_msg or NLMSG_ERROR -ENOENT.
//   or unix_diag_req { AF_UNIX, 0, pad, states, ino, show = UDIAG_SHOW_PEER, cookie[2] }
//     answered by unix_diag_msg followed by rtattrs; UNIX_DIAG_PEER holds the
//     peer's inode as a u32.
// A cookie of INET_DIAG_NOCOOKIE in both words means "do not check the cookie".
#include "identity/sock_diag.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace dbwarden::identity {

bool parse_endpoint(const std::string& text, uint16_t port, Endpoint& out) {
  std::string t = text;
  if (t.size() >= 2 && t.front() == '[' && t.back() == ']') t = t.substr(1, t.size() - 2);
  out = Endpoint{};
  out.port_be = htons(port);
  in_addr a4{};
  if (inet_pton(AF_INET, t.c_str(), &a4) == 1) {
    out.family = AF_INET;
    out.addr[0] = a4.s_addr;
    return true;
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, t.c_str(), &a6) != 1) return false;
  if (IN6_IS_ADDR_V4MAPPED(&a6)) {
    // A dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d; the
    // client's own socket is AF_INET and the kernel hashes it by the IPv4 tuple.
    out.family = AF_INET;
    std::memcpy(&out.addr[0], &a6.s6_addr[12], 4);
    return true;
  }
  out.family = AF_INET6;
  std::memcpy(out.addr, a6.s6_addr, 16);
  return true;
}

SockDiag::~SockDiag() {
  if (fd_ >= 0) close(fd_);
}

bool SockDiag::ensure_open() {
  if (fd_ >= 0) return true;
  fd_ = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd_ < 0) return false;
  // The kernel answers inside sendmsg(), so the answer is queued before recv();
  // the timeout only guards against a kernel that does not answer at all.
  timeval tv{0, 200 * 1000};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return true;
}

long SockDiag::transact(const void* req, size_t req_len, unsigned char* buf, size_t buf_len,
                        const void** payload) {
  if (!ensure_open()) return -1;
  struct {
    nlmsghdr nlh;
    unsigned char body[128];
  } msg{};
  if (req_len > sizeof(msg.body)) return -1;
  const uint32_t seq = ++seq_;
  msg.nlh.nlmsg_len = NLMSG_LENGTH(req_len);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.nlh.nlmsg_seq = seq;
  std::memcpy(msg.body, req, req_len);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(fd_, &msg, msg.nlh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
                  sizeof(kernel));
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return -1;
  // Answers to earlier requests that were abandoned (timeout) may still be
  // queued: skip anything whose sequence number is not ours.
  for (int attempts = 0; attempts < 8; attempts++) {
    ssize_t n = recv(fd_, buf, buf_len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return -1;
        auto* err = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        // ENOENT is "no such socket"; anything else is a failed request.
        return err->error == -ENOENT ? 0 : -1;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) return -1;
      *payload = NLMSG_DATA(h);
      return static_cast<long>(h->nlmsg_len - NLMSG_LENGTH(0));
    }
  }
  return -1;
}

DiagAnswer SockDiag::tcp_socket(const Endpoint& local, const Endpoint& remote) {
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<uint8_t>(local.family);
  req.sdiag_protocol = IPPROTO_TCP;
  req.idiag_states = ~0u;
  req.id.idiag_sport = local.port_be;
  req.id.idiag_dport = remote.port_be;
  std::memcpy(req.id.idiag_src, local.addr, sizeof(local.addr));
  std::memcpy(req.id.idiag_dst, remote.addr, sizeof(remote.addr));
  req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  alignas(nlmsghdr) unsigned char buf[8192];
  const void* payload = nullptr;
  long len = transact(&req, sizeof(req), buf, sizeof(buf), &payload);
  if (len < 0) return {DiagOutcome::kError, 0};
  if (len == 0) return {DiagOutcome::kNoSuchSocket, 0};
  if (static_cast<size_t>(len) < sizeof(inet_diag_msg)) return {DiagOutcome::kError, 0};
  inet_diag_msg m;
  std::memcpy(&m, payload, sizeof(m));
  // A TIME_WAIT socket has no inode and no owner any more.
  if (m.idiag_inode == 0) return {DiagOutcome::kNoSuchSocket, 0};
  return {DiagOutcome::kFound, m.idiag_inode};
}

DiagAnswer SockDiag::unix_peer(uint32_t inode) {
  unix_diag_req req{};
  req.sdiag_family = AF_UNIX;
  req.udiag_states = ~0u;
  req.udiag_ino = inode;
  req.udiag_show = UDIAG_SHOW_PEER;
  req.udiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
  alignas(nlmsghdr) unsigned char buf[8192];
  const void* payload = nullptr;
  long len = transact(&req, sizeof(req), buf, sizeof(buf), &payload);
  if (len < 0) return {DiagOutcome::kError, 0};
  if (len == 0) return {DiagOutcome::kNoSuchSocket, 0};
  if (static_cast<size_t>(len) < NLMSG_ALIGN(sizeof(unix_diag_msg))) {
    return {DiagOutcome::kError, 0};
  }
  auto* base = static_cast<const unsigned char*>(payload);
  long rest = len - static_cast<long>(NLMSG_ALIGN(sizeof(unix_diag_msg)));
  auto* attr = reinterpret_cast<const rtattr*>(base + NLMSG_ALIGN(sizeof(unix_diag_msg)));
  for (; rest > 0 && RTA_OK(attr, static_cast<unsigned>(rest)); attr = RTA_NEXT(attr, rest)) {
    if (attr->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(attr) >= sizeof(uint32_t)) {
      uint32_t peer;
      std::memcpy(&peer, RTA_DATA(attr), sizeof(peer));
      if (peer == 0) break;
      return {DiagOutcome::kFound, peer};
    }
  }
  return {DiagOutcome::kNoSuchSocket, 0};
}

}  // namespace dbwarden::identity
