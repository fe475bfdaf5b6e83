// SPDX-License-Identifier: Apache-2.0
//
// format_record formats a connection's own fields once and reuses them
// (record.cc ConnectionFields, one table per thread). Each test changes a
// field under the memo and checks the record against one formatted by a new
// thread, whose table is empty.
#include <catch2/catch.hpp>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "audit/record.h"
#include "connection_fixture.h"

namespace {

using dbw_audit_test::local_peer;
using dbw_audit_test::tcp_connection;
using dbwarden::ConnectionInfo;
using dbwarden::Statement;
using dbwarden::audit::format_record;

constexpr int64_t kOffset = 1'700'000'000'000'000'000;

std::string warm(const Statement& s) {
  std::string out;
  format_record(s, kOffset, out);
  return out;
}

// Formatted with nothing remembered.
std::string fresh(const Statement& s) {
  std::string out;
  std::thread([&] { format_record(s, kOffset, out); }).join();
  return out;
}

Statement statement(const ConnectionInfo& c, std::string text = "SELECT 1") {
  Statement s;
  s.connection = &c;
  s.start_ns = 5'000'000;
  s.end_ns = 6'000'000;
  s.text = std::move(text);
  s.operation = "SELECT";
  s.error_message = "between the tail and the peer";
  return s;
}

// A record formatted after `change` differs from the one before and equals
// one formatted with nothing remembered.
void check_change_shows(ConnectionInfo& c, const std::function<void(ConnectionInfo&)>& change) {
  const std::string before = warm(statement(c));
  CHECK(before == fresh(statement(c)));
  change(c);
  const std::string after = warm(statement(c));
  CHECK(after != before);
  CHECK(after == fresh(statement(c)));
}

}  // namespace

TEST_CASE("record cache: every connection field changed under it shows in the next record",
          "[audit][record][cache]") {
  using Change = std::function<void(ConnectionInfo&)>;
  const std::vector<std::pair<const char*, Change>> changes = {
      {"connection_id", [](ConnectionInfo& c) { c.connection_id += 256; }},  // same slot
      {"db_system", [](ConnectionInfo& c) { c.db_system = "mysql"; }},
      {"database in place", [](ConnectionInfo& c) { c.database[0] = 'S'; }},
      {"user (USE/SET ROLE)", [](ConnectionInfo& c) { c.user = "bob"; }},
      {"client address", [](ConnectionInfo& c) { c.client_address = "10.1.2.4"; }},
      {"client port", [](ConnectionInfo& c) { c.client_port = 51235; }},
      {"server port", [](ConnectionInfo& c) { c.server_port = 5433; }},
      {"unix socket", [](ConnectionInfo& c) { c.unix_socket = true; }},
      {"server pid", [](ConnectionInfo& c) { c.server_pid = 4322; }},
      {"SET application_name", [](ConnectionInfo& c) { c.application_name = "app2"; }},
      {"application_name cleared", [](ConnectionInfo& c) { c.application_name.clear(); }},
      {"peer resolved later", [](ConnectionInfo& c) { c.peer.pid = 777; }},
  };
  for (const auto& [name, change] : changes) {
    SECTION(name) {
      ConnectionInfo c = tcp_connection(3);
      check_change_shows(c, change);
    }
  }
}

TEST_CASE("record cache: each peer identity field changed under it shows in the next record",
          "[audit][record][cache]") {
  using Change = std::function<void(ConnectionInfo&)>;
  const std::vector<std::pair<const char*, Change>> changes = {
      {"pid", [](ConnectionInfo& c) { c.peer.pid = 778; }},
      {"uid", [](ConnectionInfo& c) { c.peer.uid = 1001; }},
      {"user name", [](ConnectionInfo& c) { c.peer.user_name = "bob"; }},
      {"login uid", [](ConnectionInfo& c) { c.peer.login_uid = 1002; }},
      {"login uid gone", [](ConnectionInfo& c) { c.peer.login_uid.reset(); }},
      {"login user", [](ConnectionInfo& c) { c.peer.login_user = "carol"; }},
      {"command", [](ConnectionInfo& c) { c.peer.command[0] = 'P'; }},
      {"executable", [](ConnectionInfo& c) { c.peer.executable = "/usr/bin/pgbench"; }},
      {"systemd unit", [](ConnectionInfo& c) { c.peer.systemd_unit = "cron.service"; }},
      {"container id", [](ConnectionInfo& c) { c.peer.container_id = std::string(64, 'b'); }},
  };
  for (const auto& [name, change] : changes) {
    SECTION(name) {
      ConnectionInfo c = tcp_connection(9);
      c.peer = local_peer();
      check_change_shows(c, change);
    }
  }
}

TEST_CASE("record cache: connections sharing a slot and a reused address stay apart",
          "[audit][record][cache]") {
  const ConnectionInfo a = tcp_connection(1);
  ConnectionInfo b = tcp_connection(257);  // 257 % 256 == 1: the same slot
  b.user = "bob";
  for (int i = 0; i < 3; ++i) {
    CHECK(warm(statement(a)) == fresh(statement(a)));
    CHECK(warm(statement(b)) == fresh(statement(b)));
  }
  // A connection ends and the next one, with the same id, lives at the same
  // address (the observer reuses its storage): only the values decide.
  auto storage = std::make_unique<ConnectionInfo>(tcp_connection(5));
  const std::string first = warm(statement(*storage));
  *storage = tcp_connection(5);
  storage->client_port = 40000;
  storage->application_name = "pgbench";
  const std::string second = warm(statement(*storage));
  CHECK(second != first);
  CHECK(second == fresh(statement(*storage)));
  // No connection at all: the fields of an empty ConnectionInfo, also from the memo.
  Statement none = statement(a);
  none.connection = nullptr;
  CHECK(warm(none) == fresh(none));
  CHECK(warm(none) == fresh(none));
}

// Many connections over shared slots, fields changing at random (fixed seed):
// every record as a fresh thread formats it.
TEST_CASE("record cache: random changes over shared slots match fresh records",
          "[audit][record][cache]") {
  std::mt19937 rng(20261126);
  std::vector<ConnectionInfo> conns;
  for (uint64_t i = 0; i < 700; ++i) conns.push_back(tcp_connection(i * 7));
  const char* const names[] = {"psql", "", "pgbench", "app\"quoted\""};
  for (int n = 0; n < 400; ++n) {
    ConnectionInfo& c = conns[rng() % conns.size()];
    switch (rng() % 6) {
      case 0:
        c.application_name = names[rng() % 4];
        break;
      case 1:
        c.database = (rng() % 2) ? "shop" : "stock";
        break;
      case 2:
        c.peer.pid = rng() % 3 == 0 ? 0 : 1000 + rng() % 5;
        c.peer.command = "cmd" + std::to_string(rng() % 3);
        break;
      default:
        break;  // most statements change nothing
    }
    Statement s = statement(c, "SELECT " + std::to_string(n));
    const unsigned kind = rng() % 4;  // a few analyses, some sharing a fingerprint
    s.fingerprint = kind == 3 ? "" : "00000000000000f" + std::to_string(kind % 2);
    s.summary = kind == 2 ? "SELECT a" : "SELECT b";
    if (kind != 0) s.collections = {kind == 1 ? "a" : "b"};
    const std::string got = warm(s);
    REQUIRE(got == fresh(s));
  }
}

// The analyser's fields (operation .. fingerprint) are memoised per
// fingerprint: each one changed under an unchanged fingerprint, and
// fingerprints sharing their first bytes, must still show as they are.
TEST_CASE("record cache: analysis fields changed under the same fingerprint show",
          "[audit][record][cache]") {
  const ConnectionInfo c = tcp_connection(11);
  Statement base = statement(c);
  base.summary = "SELECT accounts";
  base.fingerprint = "0123456789abcdef";
  base.collections = {"accounts", "public.branches"};
  using Change = std::function<void(Statement&)>;
  const std::vector<std::pair<const char*, Change>> changes = {
      {"operation", [](Statement& s) { s.operation = "UPDATE"; }},
      {"summary", [](Statement& s) { s.summary = "SELECT branches"; }},
      {"summary gone", [](Statement& s) { s.summary.clear(); }},
      {"collection renamed in place", [](Statement& s) { s.collections[1][0] = 'P'; }},
      {"collection added", [](Statement& s) { s.collections.push_back("tellers"); }},
      {"collections gone", [](Statement& s) { s.collections.clear(); }},
      {"fingerprint, same first bytes", [](Statement& s) { s.fingerprint = "0123456789abcdee"; }},
      {"fingerprint gone", [](Statement& s) { s.fingerprint.clear(); }},
  };
  for (const auto& [name, change] : changes) {
    SECTION(name) {
      Statement s = base;
      const std::string before = warm(s);
      CHECK(before == fresh(s));
      change(s);
      const std::string after = warm(s);
      CHECK(after != before);
      CHECK(after == fresh(s));
      CHECK(warm(base) == before);  // and back
    }
  }
}
