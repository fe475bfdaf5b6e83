// SPDX-License-Identifier: Apache-2.0
//
// Exemptions of the proxy's own upstream connects from steering.
//
// TCP: sk_lookup only sees the packet, so the exemption is the source
// (address, port). The proxy's socket binds it explicitly and without
// SO_REUSEADDR/SO_REUSEPORT: while that socket lives, bind() of the same
// tuple by anyone fails with EADDRINUSE, and connect()'s automatic port choice
// skips explicitly bound ports. The program honours an exemption only while
// the proxy's socket is in the SOCKMAP, and attach() clears what a dead proxy
// left, so a tuple freed by a crash opens no door.
// unix: the socket cookie, which the kernel never reuses during a boot.
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "steer.h"
#include "steering/steering.h"

namespace dbwarden::steering {
namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

}  // namespace

Result<Exemption> Steering::register_exemption(int map_fd, const void* key, size_t key_size,
                                               const std::string& what) {
  uint8_t one = 1;
  if (bpf_map_update_elem(map_fd, key, &one, BPF_ANY) != 0) {
    return Status::Error("cannot exempt " + what + ": " + errno_text(errno) +
                         (errno == E2BIG ? " (too many upstream connects in flight)" : ""));
  }
  Exemption e;
  e.map_fd_ = dup(map_fd);
  if (e.map_fd_ < 0) {
    bpf_map_delete_elem(map_fd, key);
    return Status::Error("cannot exempt " + what + ": dup: " + errno_text(errno));
  }
  const auto* k = static_cast<const uint8_t*>(key);
  e.key_.assign(k, k + key_size);
  return e;
}

Exemption::Exemption(Exemption&& other) noexcept
    : map_fd_(other.map_fd_), key_(std::move(other.key_)) {
  other.map_fd_ = -1;
}

Exemption& Exemption::operator=(Exemption&& other) noexcept {
  if (this != &other) {
    release();
    map_fd_ = other.map_fd_;
    key_ = std::move(other.key_);
    other.map_fd_ = -1;
  }
  return *this;
}

Exemption::~Exemption() { release(); }

void Exemption::release() {
  if (map_fd_ < 0) return;
  bpf_map_delete_elem(map_fd_, key_.data());  // ENOENT: cleared by a restart
  close(map_fd_);
  map_fd_ = -1;
}

Result<Exemption> Steering::exempt_tcp(int fd, const Endpoint& destination) {
  if (destination.wildcard()) {
    return Status::Error("exempt_tcp: destination " + destination.to_string() +
                         " is a wildcard; connect to the address the client dialled");
  }
  int reuse = 0;
  socklen_t optlen = sizeof(reuse);
  for (int opt : {SO_REUSEADDR, SO_REUSEPORT}) {
    if (getsockopt(fd, SOL_SOCKET, opt, &reuse, &optlen) != 0 || reuse != 0) {
      return Status::Error(
          "exempt_tcp: the upstream socket has SO_REUSEADDR or SO_REUSEPORT set: another "
          "process could bind the same source and share its exemption");
    }
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Status::Error("exempt_tcp: getsockname: " + errno_text(errno));
  }
  if (Endpoint::from_sockaddr_unmapped(ss).port == 0) {
    // Not bound yet: the destination's own address (it is local: the server
    // listens on it), an ephemeral port chosen by bind().
    Endpoint source = destination;
    source.port = 0;
    ss = source.to_sockaddr(&len);
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      return Status::Error("exempt_tcp: cannot bind the upstream socket to " + source.to_string() +
                           ": " + errno_text(errno));
    }
    len = sizeof(ss);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      return Status::Error("exempt_tcp: getsockname: " + errno_text(errno));
    }
  }
  const Endpoint bound = Endpoint::from_sockaddr_unmapped(ss);
  dbw_steer_endpoint key{};
  key.family = static_cast<uint8_t>(bound.family);
  key.port = bound.port;
  std::memcpy(key.addr, bound.addr.data(), sizeof(key.addr));
  return register_exemption(exempt_tcp_fd_, &key, sizeof(key), "source " + bound.to_string());
}

Result<Exemption> Steering::exempt_unix(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) {
    return Status::Error("exempt_unix: SO_COOKIE: " + errno_text(errno));
  }
  return register_exemption(exempt_unix_fd_, &cookie, sizeof(cookie),
                            "socket cookie " + std::to_string(cookie));
}

}  // namespace dbwarden::steering
