// SPDX-License-Identifier: Apache-2.0
//
// Exporter::on_statement memoises the series of a connection's last label set
// (exporter.cc CachedSeries). These tests change every label under it and
// check the counts against an independent tally.
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "exposition.h"
#include "metrics/exporter.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::Statement;
using dbwarden::metrics::Exporter;

using dbw_metrics_test::count_series;
using dbw_metrics_test::make_exporter;
using dbw_metrics_test::value_of;

std::string series(const std::string& system, const std::string& db, const std::string& user,
                   const std::string& op, const std::string& status) {
  return "dbwarden_statements_total{db_namespace=\"" + db + "\",db_system=\"" + system +
         "\",db_user=\"" + user + "\",operation=\"" + op + "\",status_code=\"" + status + "\"}";
}

Statement statement(const ConnectionInfo& c, const std::string& op,
                    const std::string& status = "00000") {
  Statement s;
  s.connection = &c;
  s.start_ns = 1000;
  s.end_ns = 2000;
  s.operation = op;
  s.status_code = status;
  return s;
}

ConnectionInfo connection(uint64_t id, const std::string& db, const std::string& user) {
  ConnectionInfo c;
  c.connection_id = id;
  c.db_system = "postgresql";
  c.database = db;
  c.user = user;
  return c;
}

}  // namespace

TEST_CASE("exporter cache: a connection's new database or user is a new series",
          "[metrics][cache]") {
  const auto e = make_exporter();
  ConnectionInfo c = connection(7, "shop", "alice");
  e->on_statement(statement(c, "SELECT"));
  e->on_statement(statement(c, "SELECT"));
  c.database = "stock";  // USE stock / \c stock: same connection, same slot
  e->on_statement(statement(c, "SELECT"));
  c.user = "bob";  // same length as before would not matter either: values are compared
  e->on_statement(statement(c, "SELECT"));
  c.user = "eve";
  e->on_statement(statement(c, "SELECT"));
  c.db_system = "mysql";
  e->on_statement(statement(c, "SELECT"));
  const std::string text = e->serialize();
  CHECK(value_of(text, series("postgresql", "shop", "alice", "SELECT", "00000")) == 2);
  CHECK(value_of(text, series("postgresql", "stock", "alice", "SELECT", "00000")) == 1);
  CHECK(value_of(text, series("postgresql", "stock", "bob", "SELECT", "00000")) == 1);
  CHECK(value_of(text, series("postgresql", "stock", "eve", "SELECT", "00000")) == 1);
  CHECK(value_of(text, series("mysql", "stock", "eve", "SELECT", "00000")) == 1);
  CHECK(value_of(text, R"(dbwarden_statement_duration_seconds_count{db_system="postgresql"})") ==
        5);
  CHECK(value_of(text, R"(dbwarden_statement_duration_seconds_count{db_system="mysql"})") == 1);
}

TEST_CASE("exporter cache: same-length values in place and a new status are new series",
          "[metrics][cache]") {
  const auto e = make_exporter();
  ConnectionInfo c = connection(1, "db_a", "user");
  e->on_statement(statement(c, "SELECT"));
  c.database[3] = 'b';  // same length, same buffer: must not hit
  e->on_statement(statement(c, "SELECT"));
  e->on_statement(statement(c, "SELECT", "42P01"));
  e->on_statement(statement(c, "SELECT", "42P01"));
  e->on_statement(statement(c, "SELECT"));
  e->on_statement(statement(c, "SELFCT"));  // same length and ends as SELECT: same slot
  const std::string text = e->serialize();
  CHECK(value_of(text, series("postgresql", "db_a", "user", "SELECT", "00000")) == 1);
  CHECK(value_of(text, series("postgresql", "db_b", "user", "SELECT", "00000")) == 2);
  CHECK(value_of(text, series("postgresql", "db_b", "user", "SELECT", "42P01")) == 2);
  CHECK(value_of(text, series("postgresql", "db_b", "user", "SELFCT", "00000")) == 1);
  CHECK(count_series(text, "dbwarden_statements_total") == 4);
}

TEST_CASE("exporter cache: a connection over the label-set limit keeps counting the overflow",
          "[metrics][cache]") {
  const auto e = make_exporter();
  for (int i = 0; i < 1000; ++i) {
    const ConnectionInfo c = connection(static_cast<uint64_t>(i), "shop", "u" + std::to_string(i));
    e->on_statement(statement(c, "SELECT"));
  }
  const ConnectionInfo late = connection(5000, "shop", "late");
  for (int i = 0; i < 3; ++i) e->on_statement(statement(late, "SELECT"));  // 2 from the memo
  const ConnectionInfo known = connection(5001, "shop", "u0");
  e->on_statement(statement(known, "SELECT"));
  const std::string text = e->serialize();
  CHECK(value_of(text, "dbwarden_metrics_label_overflow_total") == 3);
  CHECK(value_of(text, series("__other__", "__other__", "__other__", "__other__", "__other__")) ==
        3);
  CHECK(value_of(text, series("postgresql", "shop", "u0", "SELECT", "00000")) == 2);
}

// Many connections (more than the memo's slots, so they share slots) whose
// labels change at random: every series must equal a plain tally.
TEST_CASE("exporter cache: random label changes over shared slots match a tally",
          "[metrics][cache]") {
  const auto e = make_exporter();
  std::mt19937 rng(20261126);
  const char* const dbs[] = {"shop", "stock", "db_a", "db_b"};
  const char* const users[] = {"alice", "bob", "eve", "app"};
  const char* const ops[] = {"SELECT", "UPDATE", "INSERT", "BEGIN", "COMMIT", "SELFCT"};
  const char* const codes[] = {"00000", "00000", "00000", "42P01", "40001"};
  std::vector<ConnectionInfo> conns;
  for (uint64_t i = 0; i < 1500; ++i) conns.push_back(connection(i * 3 + 1, "shop", "alice"));
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<Key, int> tally;
  for (int n = 0; n < 60000; ++n) {
    ConnectionInfo& c = conns[rng() % conns.size()];
    if (rng() % 50 == 0) c.database = dbs[rng() % 4];
    if (rng() % 50 == 0) c.user = users[rng() % 4];
    const Statement s = statement(c, ops[rng() % 6], codes[rng() % 5]);
    e->on_statement(s);
    ++tally[Key{c.database, c.user, s.operation, s.status_code}];
  }
  const std::string text = e->serialize();
  CHECK(count_series(text, "dbwarden_statements_total") == tally.size());
  for (const auto& [k, n] : tally) {
    const auto& [db, user, op, code] = k;
    CHECK(value_of(text, series("postgresql", db, user, op, code)) == n);
  }
  CHECK(value_of(text, R"(dbwarden_statement_duration_seconds_count{db_system="postgresql"})") ==
        60000);
}
