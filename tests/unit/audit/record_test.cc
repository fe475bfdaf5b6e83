// SPDX-License-Identifier: Apache-2.0
#include "audit/record.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "connection_fixture.h"

namespace {

using dbw_audit_test::tcp_connection;
using dbwarden::ConnectionInfo;
using dbwarden::Statement;
using dbwarden::audit::format_record;

// 2023-11-14T22:13:20.123456789Z
constexpr int64_t kWallNs = 1'700'000'000'123'456'789;

Statement full_statement(const ConnectionInfo* c) {
  Statement s;
  s.connection = c;
  s.start_ns = 1'000'000'000;
  s.end_ns = 1'000'000'000 + 1'234'567;
  s.text = "SELECT * FROM t WHERE name = 'x\"y'";
  s.text_truncated = true;
  s.status_code = "42P01";
  s.error_message = "relation \"t\" does not exist";
  s.returned_rows = 3;
  s.statement_name = "s1";
  s.capture_gap = true;
  s.operation = "SELECT";
  return s;
}

nlohmann::json format(const Statement& s, int64_t offset) {
  std::string line;
  format_record(s, offset, line);
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);  // exactly one line
  return nlohmann::json::parse(line);
}

std::set<std::string> keys(const nlohmann::json& j) {
  std::set<std::string> out;
  for (const auto& [k, v] : j.items()) out.insert(k);
  return out;
}

}  // namespace

TEST_CASE("record: every field of a TCP statement", "[audit][record]") {
  const ConnectionInfo c = tcp_connection();
  const Statement s = full_statement(&c);
  const auto j = format(s, kWallNs - 1'000'000'000);
  CHECK(j["time"] == "2023-11-14T22:13:20.123456789Z");
  CHECK(j["duration_us"] == 1234);
  CHECK(j["connection_id"] == 42);
  CHECK(j["db.system.name"] == "postgresql");
  CHECK(j["db.namespace"] == "shop");
  CHECK(j["db.user"] == "alice");
  CHECK(j["db.query.text"] == "SELECT * FROM t WHERE name = 'x\"y'");
  CHECK(j["db.operation.name"] == "SELECT");
  CHECK(j["db.response.status_code"] == "42P01");
  CHECK(j["db.response.returned_rows"] == 3);
  CHECK(j["db.statement.name"] == "s1");
  CHECK(j["network.transport"] == "tcp");
  CHECK(j["client.address"] == "10.1.2.3");
  CHECK(j["client.port"] == 51234);
  CHECK(j["server.port"] == 5432);
  CHECK(j["process.pid"] == 4321);
  CHECK(j["db.client.application_name"] == "psql");
  CHECK(j["error.message"] == "relation \"t\" does not exist");
  CHECK(j["dbwarden.query_truncated"] == true);
  CHECK(j["dbwarden.capture_gap"] == true);
  CHECK(j["error.type"] == "42P01");  // failed: error.type is the status code
  CHECK(keys(j).size() == 21);
}

TEST_CASE("record: optional fields are omitted, unix socket has no client address",
          "[audit][record]") {
  ConnectionInfo c = tcp_connection();
  c.unix_socket = true;
  c.client_address.clear();
  c.client_port = 0;
  c.application_name.clear();
  Statement s;
  s.connection = &c;
  s.start_ns = 5;
  s.end_ns = 5;
  s.text = "BEGIN";
  s.operation = "BEGIN";
  const auto j = format(s, 0);
  CHECK(keys(j) == std::set<std::string>{"time", "duration_us", "connection_id", "db.system.name",
                                         "db.namespace", "db.user", "db.query.text",
                                         "db.operation.name", "db.response.status_code",
                                         "network.transport", "server.port", "process.pid"});
  CHECK(j["network.transport"] == "unix");
  CHECK(j["db.response.status_code"] == "00000");
  CHECK(j["time"] == "1970-01-01T00:00:00.000000005Z");
  CHECK(j["duration_us"] == 0);
}

TEST_CASE("record: an unknown outcome is a null status, not an empty SQLSTATE", "[audit][record]") {
  const ConnectionInfo c = tcp_connection();
  Statement s;
  s.connection = &c;
  s.status_code.clear();  // what a session sets when no response was seen
  s.capture_gap = true;
  const auto j = format(s, 0);
  REQUIRE(j.contains("db.response.status_code"));
  CHECK(j["db.response.status_code"].is_null());
  CHECK(!j.contains("db.response.returned_rows"));
}

TEST_CASE("record: zero returned rows is present, not omitted", "[audit][record]") {
  const ConnectionInfo c = tcp_connection();
  Statement s;
  s.connection = &c;
  s.returned_rows = 0;
  CHECK(format(s, 0)["db.response.returned_rows"] == 0);
}

TEST_CASE("record: clock edge cases", "[audit][record]") {
  Statement s;  // no connection at all
  s.start_ns = 10'000;
  s.end_ns = 5'000;                // end before start: duration 0, not a huge unsigned value
  auto j = format(s, -1'000'000);  // wall time before the epoch clamps to it
  CHECK(j["time"] == "1970-01-01T00:00:00.000000000Z");
  CHECK(j["duration_us"] == 0);
  CHECK(j["connection_id"] == 0);
  s.start_ns = 0;
  j = format(s, 951'782'400'000'000'000);  // 2000-02-29 (leap day)
  CHECK(j["time"] == "2000-02-29T00:00:00.000000000Z");
  j = format(s, 4'102'444'799'999'999'999);
  CHECK(j["time"] == "2099-12-31T23:59:59.999999999Z");
}

TEST_CASE("record: hostile strings in every text field still give valid JSON", "[audit][record]") {
  ConnectionInfo c = tcp_connection();
  static constexpr char kHostile[] =
      "\"}\n{\"evil\":1,\\\x00\x01\xff\xc0\xed\xa0\x80\xe2\x82\r\t\x7f";
  const std::string hostile(kHostile, sizeof(kHostile) - 1);
  c.user = hostile;
  c.database = hostile;
  c.application_name = hostile;
  c.client_address = hostile;
  c.db_system = hostile;
  Statement s = full_statement(&c);
  s.text = hostile;
  s.error_message = hostile;
  s.statement_name = hostile;
  s.status_code = hostile;
  s.sqlstate = hostile;
  s.operation = hostile;
  const auto j = format(s, 0);
  CHECK(!j.contains("evil"));
  CHECK(j["db.user"].get<std::string>().substr(0, 4) == "\"}\n{");
  CHECK(keys(j).size() == 22);  // with error.type and dbwarden.sqlstate
}

TEST_CASE("record: analysis fields, parameters and unresolved statements", "[audit][record]") {
  const ConnectionInfo c = tcp_connection();
  Statement s;
  s.connection = &c;
  s.text = "UPDATE shop.accounts SET balance = $1 FROM t2 WHERE id = $2";
  s.operation = "UPDATE";
  s.summary = "UPDATE shop.accounts";
  s.fingerprint = "0123456789abcdef";
  s.collections = {"shop.accounts", "t2"};
  s.parameters = {std::string("10\"0"), std::nullopt, std::string("")};
  s.statement_unresolved = true;
  s.unbounded_write = true;
  const auto j = format(s, 0);
  CHECK(j["db.query.summary"] == "UPDATE shop.accounts");
  CHECK(j["db.collection.name"] == "shop.accounts");
  CHECK(j["dbwarden.collections"] == nlohmann::json::array({"shop.accounts", "t2"}));
  CHECK(j["dbwarden.fingerprint"] == "0123456789abcdef");
  CHECK(j["db.query.parameter.0"] == "10\"0");
  CHECK(j["db.query.parameter.1"].is_null());
  CHECK(j["db.query.parameter.2"] == "");
  CHECK(!j.contains("db.query.parameter.3"));
  CHECK(j["dbwarden.statement_unresolved"] == true);
  CHECK(j["dbwarden.unbounded_write"] == true);
}

TEST_CASE("record: worst-case growth, appended after what the buffer holds", "[audit][record]") {
  // Records are written straight into the buffer's bytes after making room
  // for each piece's worst case: every string at six bytes per input byte
  // (control bytes, bytes that are not UTF-8), many parameters, a long text,
  // after existing content and across the buffer's growth steps.
  ConnectionInfo c = tcp_connection();
  c.peer.pid = 7;
  c.peer.command = std::string(300, '\x01');
  c.peer.executable = std::string(300, '\xff');
  c.peer.login_uid = 1000;
  c.peer.login_user = "bob";
  for (size_t text_bytes : {0, 1, 15, 16, 17, 170, 1023, 1024, 1025, 5000}) {
    Statement s = full_statement(&c);
    s.text = std::string(text_bytes, '\x02');
    s.collections = {std::string(100, '\x1f'), "t2"};
    s.fingerprint = "0123456789abcdef";
    for (int i = 0; i < 200; ++i) {
      if (i % 3 == 0) {
        s.parameters.emplace_back(std::nullopt);
      } else {
        s.parameters.emplace_back(std::string(static_cast<size_t>(i), i % 2 ? '\xc0' : '"'));
      }
    }
    std::string out = "previous record\n";
    format_record(s, kWallNs, out);
    REQUIRE(out.compare(0, 16, "previous record\n") == 0);
    const std::string line = out.substr(16);
    REQUIRE(line.back() == '\n');
    REQUIRE(line.find('\n') == line.size() - 1);
    const auto j = nlohmann::json::parse(line);
    CHECK(j["db.query.text"].get<std::string>() == std::string(text_bytes, '\x02'));
    CHECK(j["client.process.executable.path"].get<std::string>().size() == 300 * 3);  // U+FFFD
    CHECK(j["db.query.parameter.0"].is_null());
    CHECK(j["db.query.parameter.199"].get<std::string>().size() == 199 * 3);
    CHECK_FALSE(j.contains("db.query.parameter.200"));
    CHECK(j["db.query.parameter.2"].get<std::string>() == "\"\"");
    CHECK(j["dbwarden.collections"][0].get<std::string>() == std::string(100, '\x1f'));
    // The same record formatted alone: appending changes nothing in it.
    std::string alone;
    format_record(s, kWallNs, alone);
    CHECK(alone == line);
  }
}

TEST_CASE("record: a redacted statement says so, others do not", "[audit][record][redact]") {
  const ConnectionInfo c = tcp_connection();
  Statement s = full_statement(&c);
  CHECK_FALSE(format(s, 0).contains("dbwarden.redacted"));
  s.text = "ALTER ROLE bob PASSWORD '<redacted>'";
  s.redacted = true;
  const auto j = format(s, 0);
  CHECK(j["dbwarden.redacted"] == true);
  CHECK(j["db.query.text"] == "ALTER ROLE bob PASSWORD '<redacted>'");
}

TEST_CASE("record: MySQL and MariaDB failures follow the OpenTelemetry tables", "[audit][record]") {
  // https://opentelemetry.io/docs/specs/semconv/database/mariadb/ (and mysql/):
  // db.system.name "mariadb" / "mysql"; db.response.status_code the error
  // number as a string; error.type on failure; the SQLSTATE is ours.
  for (const char* system : {"mariadb", "mysql"}) {
    INFO(system);
    ConnectionInfo c = tcp_connection();
    c.db_system = system;
    c.server_port = 3306;
    Statement s;
    s.connection = &c;
    s.text = "SELECT * FROM nosuch";
    s.status_code = "1146";
    s.sqlstate = "42S02";
    s.error_message = "Table 'shop.nosuch' doesn't exist";
    const auto j = format(s, 0);
    CHECK(j["db.system.name"] == system);
    CHECK(j["db.response.status_code"] == "1146");
    CHECK(j["error.type"] == "1146");
    CHECK(j["dbwarden.sqlstate"] == "42S02");
    CHECK(j["error.message"] == "Table 'shop.nosuch' doesn't exist");
  }
}

TEST_CASE("record: error.type only on failure", "[audit][record]") {
  const ConnectionInfo c = tcp_connection();
  Statement ok;
  ok.connection = &c;
  ok.text = "SELECT 1";
  const auto j = format(ok, 0);
  CHECK(j["db.response.status_code"] == "00000");
  CHECK_FALSE(j.contains("error.type"));
  CHECK_FALSE(j.contains("dbwarden.sqlstate"));
  Statement unknown = ok;
  unknown.status_code.clear();  // no response seen: not known to have failed
  const auto u = format(unknown, 0);
  CHECK(u["db.response.status_code"].is_null());
  CHECK_FALSE(u.contains("error.type"));
  Statement failed = ok;
  failed.status_code = "57014";  // PostgreSQL: the SQLSTATE
  const auto f = format(failed, 0);
  CHECK(f["error.type"] == "57014");
  CHECK_FALSE(f.contains("dbwarden.sqlstate"));
}

TEST_CASE("record: masked counts appear when something was masked", "[audit][record][masking]") {
  const ConnectionInfo c = tcp_connection();
  Statement s = full_statement(&c);
  CHECK_FALSE(format(s, 0).contains("dbwarden.masked_values"));
  s.masked_columns = 2;
  s.masked_values = 9;
  const auto j = format(s, 0);
  CHECK(j["dbwarden.masked_columns"] == 2);
  CHECK(j["dbwarden.masked_values"] == 9);
}
