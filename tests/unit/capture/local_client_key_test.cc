// SPDX-License-Identifier: Apache-2.0
//
// The key the agent looks up must be the one bpf/dbwarden.bpf.c's connect hook
// wrote (on_connect, key_addr): IPv6 form, IPv4 mapped, ports in host order.
#include "capture/local_client_key.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <initializer_list>
#include <string>

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

TEST_CASE("local client key: the proxy's TCP key from address text meets the connect hook's") {
  // The proxy knows a steered client by the addresses of its accepted socket; the hook
  // wrote the key from the client's socket (issue 12: without it the proxy missed clients).
  dbw_conn_event v4 = tcp_event(DBW_FAMILY_INET);
  const __u8 lo[4] = {127, 0, 0, 1};
  std::memcpy(v4.client_addr, lo, 4);
  std::memcpy(v4.server_addr, lo, 4);
  auto hook = local_client_key(v4);
  auto text = tcp_client_key("127.0.0.1", 40001, "127.0.0.1", 5432);
  REQUIRE(hook);
  REQUIRE(text);
  CHECK(std::memcmp(&*hook, &*text, sizeof(dbw_client_key)) == 0);
  auto mapped = tcp_client_key("::ffff:127.0.0.1", 40001, "::ffff:127.0.0.1", 5432);
  REQUIRE(mapped);
  CHECK(std::memcmp(&*hook, &*mapped, sizeof(dbw_client_key)) == 0);
  auto v6 = tcp_client_key("::1", 40001, "::1", 5432);
  REQUIRE(v6);
  CHECK(v6->client_addr[15] == 1);
  CHECK(v6->server_port == 5432);
  CHECK_FALSE(tcp_client_key("127.0.0.1", 1, "::1", 2));  // families differ
  CHECK_FALSE(tcp_client_key("localhost", 1, "127.0.0.1", 2));
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

dbw_client_info with_cgroups(std::initializer_list<const char*> innermost_first) {
  dbw_client_info info{};
  int i = 0;
  for (const char* name : innermost_first) {
    std::strncpy(info.cgroup[i++], name, DBW_CGROUP_NAME_BYTES - 1);
  }
  return info;
}

TEST_CASE("local client cgroup: names innermost first become a path") {
  CHECK(cgroup_path(with_cgroups({"cron.service", "system.slice", ""})) ==
        "/system.slice/cron.service");
  CHECK(cgroup_path(with_cgroups({"system.slice", ""})) == "/system.slice");
  CHECK(cgroup_path(with_cgroups({""})) == "/");
  CHECK(cgroup_path(with_cgroups({})) == "/");
  // Deeper than the hook reads: a suffix, marked as one.
  CHECK(cgroup_path(with_cgroups({"payload", "app.service", "user@1000.service"})) ==
        ".../user@1000.service/app.service/payload");
  // A full-length name (no NUL within the field) is read up to the field's end.
  dbw_client_info full{};
  std::memset(full.cgroup[0], 'a', DBW_CGROUP_NAME_BYTES);
  CHECK(cgroup_path(full) == "/" + std::string(DBW_CGROUP_NAME_BYTES, 'a'));
}

}  // namespace
}  // namespace dbwarden::capture
