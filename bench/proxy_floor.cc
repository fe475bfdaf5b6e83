// SPDX-License-Identifier: Apache-2.0
//
// The floor of a user-space TCP proxy on this host: a forwarder with the enforcement
// proxy's shape (one thread, one epoll loop, a socket pair per client, TCP_NODELAY, reads
// into one 64 KiB buffer, each read sent on at once) and nothing else: no decoding, no
// policy, no records. proxy_pgbench.py --floor runs pgbench through it, so that the
// proxy's throughput can be read against what any proxy built this way reaches here.
//
//   bench_proxy_floor LISTEN_PORT UPSTREAM_PORT   (both on 127.0.0.1; runs until killed)
//
// Blocking sends keep it short: a benchmark client (pgbench) reads all it is sent, so a
// send never waits long; a production proxy cannot do that (userspace/proxy/proxy.cc).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

void no_delay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool send_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT\n", argv[0]);
    return 2;
  }
  const auto listen_port = static_cast<uint16_t>(std::atoi(argv[1]));
  const auto upstream_port = static_cast<uint16_t>(std::atoi(argv[2]));
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in la = loopback(listen_port);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&la), sizeof(la)) != 0 || listen(lfd, 128) != 0) {
    std::perror("listen");
    return 1;
  }
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = ~0ull;  // the listener
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  // data.u64: (this fd << 32) | the fd it forwards to.
  static uint8_t buf[64 * 1024];
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(ep, events, 64, -1);
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == ~0ull) {
        const int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        const int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in ua = loopback(upstream_port);
        if (connect(u, reinterpret_cast<sockaddr*>(&ua), sizeof(ua)) != 0) {
          close(c);
          close(u);
          continue;
        }
        no_delay(c);
        no_delay(u);
        epoll_event e{};
        e.events = EPOLLIN;
        e.data.u64 = (uint64_t(uint32_t(c)) << 32) | uint32_t(u);
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
        e.data.u64 = (uint64_t(uint32_t(u)) << 32) | uint32_t(c);
        epoll_ctl(ep, EPOLL_CTL_ADD, u, &e);
        continue;
      }
      const int from = static_cast<int>(tag >> 32), to = static_cast<int>(tag & 0xffffffffu);
      const ssize_t r = read(from, buf, sizeof(buf));
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0 || !send_all(to, buf, static_cast<size_t>(r))) {
        // Either side gone: both closed (a later event of this batch for the other fd
        // reads EBADF and lands here again, harmlessly).
        close(from);
        close(to);
      }
    }
  }
}
