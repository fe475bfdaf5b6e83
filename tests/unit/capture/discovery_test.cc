// SPDX-License-Identifier: Apache-2.0
#include "capture/discovery.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>

namespace dbwarden::capture {
namespace {

TEST_CASE("/proc/net/tcp LISTEN lines give port and inode", "[capture][discovery]") {
  uint16_t port = 0;
  uint64_t inode = 0;
  // Copied in form from a live /proc/net/tcp: 127.0.0.1:5432 listening.
  REQUIRE(parse_tcp_listen_line(
      "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101  "
      "      0 123456 1 0000000000000000 100 0 0 10 0",
      port, inode));
  CHECK(port == 5432);
  CHECK(inode == 123456);
  // An established connection (st 01) is not a listener.
  CHECK_FALSE(parse_tcp_listen_line(
      "   1: 0100007F:1538 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   101  "
      "      0 654321 1 0000000000000000 20 4 30 10 -1",
      port, inode));
  CHECK_FALSE(parse_tcp_listen_line("garbage", port, inode));
  CHECK_FALSE(parse_tcp_listen_line("0: zz:yy 0 0A a b c d e f", port, inode));
}

TEST_CASE("/proc/net/unix: listening stream sockets only", "[capture][discovery]") {
  std::string path;
  uint64_t inode = 0;
  REQUIRE(parse_unix_listen_line(
      "0000000000000000: 00000002 00000000 00010000 0001 01 77001 /tmp/pg/.s.PGSQL.5432", path,
      inode));
  CHECK(path == "/tmp/pg/.s.PGSQL.5432");
  CHECK(inode == 77001);
  // Connected (not listening) stream socket.
  CHECK_FALSE(parse_unix_listen_line(
      "0000000000000000: 00000003 00000000 00000000 0001 03 77002 /tmp/pg/.s.PGSQL.5432", path,
      inode));
  // Datagram socket.
  CHECK_FALSE(parse_unix_listen_line(
      "0000000000000000: 00000002 00000000 00010000 0002 01 77003 /run/x", path, inode));
  // Unnamed listener has no path column.
  CHECK_FALSE(parse_unix_listen_line("0000000000000000: 00000002 00000000 00010000 0001 01 77004",
                                     path, inode));
}

TEST_CASE("PostgreSQL socket names carry the port", "[capture][discovery]") {
  CHECK(pgsql_socket_port("/var/run/postgresql/.s.PGSQL.5432") == 5432);
  CHECK(pgsql_socket_port(".s.PGSQL.6543") == 6543);
  CHECK(pgsql_socket_port("/tmp/.s.PGSQL.5432.lock") == 0);
  CHECK(pgsql_socket_port("/tmp/.s.PGSQL.") == 0);
  CHECK(pgsql_socket_port("/tmp/.s.PGSQL.99999") == 0);
  CHECK(pgsql_socket_port("/tmp/mysql.sock") == 0);
}

TEST_CASE("a listening socket of this process is found, via netlink and via /proc",
          "[capture][discovery]") {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(listen(fd, 1) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  uint16_t port = ntohs(a.sin_port);
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  for (const char* root : {"/proc", "/proc/"}) {  // "/proc/" takes the /proc/net/tcp path
    Listeners l = find_listeners({port}, root);
    CHECK(l.tcp_inodes == std::set<uint64_t>{st.st_ino});
    CHECK(find_listeners({static_cast<uint16_t>(port + 1)}, root).tcp_inodes.count(st.st_ino) == 0);
  }
  auto owners = owners_of({st.st_ino});
  CHECK(owners[st.st_ino] == std::vector<uint32_t>{static_cast<uint32_t>(getpid())});
  CHECK(distinct_pids(owners) == std::vector<uint32_t>{static_cast<uint32_t>(getpid())});
  close(fd);
}

TEST_CASE("this process is found among the descendants of its parent", "[capture][discovery]") {
  auto all = with_descendants({static_cast<uint32_t>(getppid())});
  CHECK(std::find(all.begin(), all.end(), static_cast<uint32_t>(getpid())) != all.end());
}

}  // namespace
}  // namespace dbwarden::capture

namespace {
dbwarden::capture::SocketEnds ends_of(int family, const char* local, const char* remote) {
  dbwarden::capture::SocketEnds e;
  e.family = static_cast<uint8_t>(family);
  REQUIRE(inet_pton(family, local, e.local) == 1);
  REQUIRE(inet_pton(family, remote, e.remote) == 1);
  return e;
}
}  // namespace

TEST_CASE("is_local_peer: the kernel side's rule for 'on this host'", "[discovery]") {
  using dbwarden::capture::is_local_peer;
  // Loopback, unspecified and the socket's own address are this host.
  CHECK(is_local_peer(ends_of(AF_INET, "127.0.0.1", "127.0.0.1")));
  CHECK(is_local_peer(ends_of(AF_INET, "10.0.0.5", "127.8.9.10")));
  CHECK(is_local_peer(ends_of(AF_INET, "10.0.0.5", "10.0.0.5")));
  CHECK(is_local_peer(ends_of(AF_INET, "10.0.0.5", "0.0.0.0")));
  CHECK(is_local_peer(ends_of(AF_INET6, "::1", "::1")));
  CHECK(is_local_peer(ends_of(AF_INET6, "fd00::5", "fd00::5")));
  CHECK(is_local_peer(ends_of(AF_INET6, "fd00::5", "::")));
  CHECK(is_local_peer(ends_of(AF_INET6, "::ffff:10.0.0.5", "::ffff:127.0.0.1")));
  // Anything else is another host, including addresses that merely contain 127.
  CHECK_FALSE(is_local_peer(ends_of(AF_INET, "10.0.0.5", "10.0.0.6")));
  CHECK_FALSE(is_local_peer(ends_of(AF_INET, "10.0.0.5", "10.0.0.127")));
  CHECK_FALSE(is_local_peer(ends_of(AF_INET, "10.0.0.5", "128.0.0.1")));
  CHECK_FALSE(is_local_peer(ends_of(AF_INET6, "fd00::5", "fd00::6")));
  CHECK_FALSE(is_local_peer(ends_of(AF_INET6, "fd00::5", "::2")));
  CHECK_FALSE(is_local_peer(ends_of(AF_INET6, "::ffff:10.0.0.5", "::ffff:10.0.0.127")));
}
