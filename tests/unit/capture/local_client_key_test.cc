// SPDX-License-Identifier: Apache-2.0
//
// The key the agent looks up must be the one bpf/dbwarden.bpf.c's connect hook
// wrote (on_connect, key_addr): IPv6 form, IPv4 mapped, ports in host order.
#include "capture/local_client_key.h"

#include <catch2/catch.hpp>
#include <cstring>

namespace dbwarden::capture {
namespace {

dbw_conn_event tcp_event(__u8 family) {
  dbw_conn_event e{};
  e.family = family;
  e.side = DBW_SIDE_SERVER;
  e.server_port = 5432;
  e.client_port = 40001;
  return e;
}

TEST_CASE("local client key: IPv4 ends are mapped into IPv6 form") {
  dbw_conn_event e = tcp_event(DBW_FAMILY_INET);
  const __u8 client[4] = {127, 0, 0, 1}, server[4] = {127, 0, 0, 2};
  std::memcpy(e.client_addr, client, 4);
  std::memcpy(e.server_addr, server, 4);
  auto key = local_client_key(e);
  REQUIRE(key);
  const __u8 want_client[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  const __u8 want_server[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2};
  CHECK(std::memcmp(key->client_addr, want_client, 16) == 0);
  CHECK(std::memcmp(key->server_addr, want_server, 16) == 0);
  CHECK(key->client_port == 40001);
  CHECK(key->server_port == 5432);
  CHECK(key->unix_ino == 0);
  CHECK(key->_pad == 0);
}

TEST_CASE("local client key: IPv6 ends as they are, an IPv4 client of a dual-stack listener "
          "meets its connect-side key") {
  dbw_conn_event v6 = tcp_event(DBW_FAMILY_INET6);
  const __u8 mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  std::memcpy(v6.client_addr, mapped, 16);
  std::memcpy(v6.server_addr, mapped, 16);
  dbw_conn_event v4 = tcp_event(DBW_FAMILY_INET);
  const __u8 lo[4] = {127, 0, 0, 1};
  std::memcpy(v4.client_addr, lo, 4);
  std::memcpy(v4.server_addr, lo, 4);
  auto a = local_client_key(v6), b = local_client_key(v4);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(std::memcmp(&*a, &*b, sizeof(dbw_client_key)) == 0);
}

TEST_CASE("local client key: unix sockets by the client socket's inode, none without one") {
  dbw_conn_event e{};
  e.family = DBW_FAMILY_UNIX;
  e.side = DBW_SIDE_SERVER;
  e.server_port = 5432;
  CHECK(!local_client_key(e));
  e.peer_ino = 987654;
  auto key = local_client_key(e);
  REQUIRE(key);
  dbw_client_key want{};
  want.unix_ino = 987654;
  CHECK(std::memcmp(&*key, &want, sizeof(want)) == 0);
}

TEST_CASE("local client key: client-side connections have no local client") {
  dbw_conn_event e = tcp_event(DBW_FAMILY_INET);
  e.side = DBW_SIDE_CLIENT;
  CHECK(!local_client_key(e));
}

}  // namespace
}  // namespace dbwarden::capture
