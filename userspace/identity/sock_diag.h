// SPDX-License-Identifier: Apache-2.0
//
// Exact socket lookups through NETLINK_SOCK_DIAG (no dumps, no /proc/net).
// https://man7.org/linux/man-pages/man7/sock_diag.7.html
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>

namespace dbwarden::identity {

// An endpoint in network byte order, IPv4 in addr[0] for AF_INET.
struct Endpoint {
  int family = AF_INET;
  uint32_t addr[4] = {0, 0, 0, 0};
  uint16_t port_be = 0;
};

enum class DiagOutcome { kFound, kNoSuchSocket, kError };

struct DiagAnswer {
  DiagOutcome outcome = DiagOutcome::kError;
  uint64_t inode = 0;  // for TCP: the socket's inode; for unix: the peer's inode
};

// One netlink socket, opened lazily, reused for every request.
class SockDiag {
 public:
  SockDiag() = default;
  ~SockDiag();
  SockDiag(const SockDiag&) = delete;
  SockDiag& operator=(const SockDiag&) = delete;

  // The TCP socket whose local end is `local` and remote end is `remote`.
  DiagAnswer tcp_socket(const Endpoint& local, const Endpoint& remote);
  // The peer of the unix socket with inode `inode`. kNoSuchSocket also when it
  // has no peer (a listener, or the peer is already closed).
  DiagAnswer unix_peer(uint32_t inode);

 private:
  bool ensure_open();
  // Sends one request and returns the payload of the answer with the same
  // sequence number in `buf`; returns its length, 0 for "no such socket", -1 on error.
  long transact(const void* req, size_t req_len, unsigned char* buf, size_t buf_len,
                const void** payload);
  int fd_ = -1;
  uint32_t seq_ = 0;
};

// Text address -> Endpoint; IPv4-mapped IPv6 becomes AF_INET. False if unparsable.
bool parse_endpoint(const std::string& text, uint16_t port, Endpoint& out);

}  // namespace dbwarden::identity
