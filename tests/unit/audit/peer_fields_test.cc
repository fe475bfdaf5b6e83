// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "audit/record.h"
#include "connection_fixture.h"

namespace dbwarden::audit {
namespace {

nlohmann::json format(const ConnectionInfo& c) {
  Statement st;
  st.connection = &c;
  st.text = "SELECT 1";
  std::string out;
  format_record(st, 0, out);
  return nlohmann::json::parse(out);
}

TEST_CASE("the local client process is recorded under client.*", "[audit][identity]") {
  ConnectionInfo c;
  c.server_pid = 100;
  c.peer = dbw_audit_test::local_peer();
  auto j = format(c);
  CHECK(j["process.pid"] == 100);  // the server backend stays process.pid
  CHECK(j["client.process.pid"] == 4242);
  CHECK(j["client.process.command"] == "psql");
  CHECK(j["client.process.executable.path"] == "/usr/lib/postgresql/15/bin/psql");
  CHECK(j["client.user.id"] == 1000);
  CHECK(j["client.user.name"] == "alice");
  CHECK(j["dbwarden.login_uid"] == 1001);
  CHECK(j["dbwarden.login_user"] == "bob");
  CHECK(j["dbwarden.client.systemd_unit"] == "session-3.scope");
  CHECK(j["container.id"] == std::string(64, 'a'));
}

TEST_CASE("no client.* keys when the peer is unknown or remote", "[audit][identity]") {
  ConnectionInfo c;
  c.server_pid = 100;
  auto j = format(c);
  for (const char* key : {"client.process.pid", "client.user.id", "dbwarden.login_uid",
                          "dbwarden.login_user", "container.id"}) {
    CHECK_FALSE(j.contains(key));
  }
  c.peer.pid = 7;  // known process without a loginuid (unset) and no unit
  j = format(c);
  CHECK(j["client.process.pid"] == 7);
  CHECK_FALSE(j.contains("dbwarden.login_uid"));
  CHECK_FALSE(j.contains("dbwarden.client.systemd_unit"));
}

}  // namespace
}  // namespace dbwarden::audit
