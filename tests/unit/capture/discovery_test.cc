// SPDX-License-Identifier: Apache-2.0
#include "capture/discovery.h"

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

TEST_CASE("this process is found among the descendants of its parent", "[capture][discovery]") {
  auto all = with_descendants({static_cast<uint32_t>(getppid())});
  CHECK(std::find(all.begin(), all.end(), static_cast<uint32_t>(getpid())) != all.end());
}

}  // namespace
}  // namespace dbwarden::capture
