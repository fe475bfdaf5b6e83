// SPDX-License-Identifier: Apache-2.0
//
// Statements that run another statement: the policy judges that one too.
#include "policy/inner_statement.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "sql/analyzer.h"

namespace {

using dbwarden::policy::executed_statement;
using dbwarden::policy::may_have_modifying_cte;
using dbwarden::policy::modifying_ctes;
using dbwarden::sql::Dialect;

constexpr Dialect kPg = Dialect::kPostgresql;
constexpr Dialect kMy = Dialect::kMysql;

}  // namespace

TEST_CASE("inner statement: what EXPLAIN ANALYZE and ANALYZE run", "[policy][inner]") {
  CHECK(executed_statement(kPg, "EXPLAIN ANALYZE DELETE FROM t") == "DELETE FROM t");
  CHECK(executed_statement(kPg, "explain analyse verbose update t set a = 1") ==
        "update t set a = 1");
  CHECK(executed_statement(kPg, "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t") == "DELETE FROM t");
  CHECK(executed_statement(kPg, "EXPLAIN (FORMAT JSON, ANALYZE true) DROP TABLE t").empty());
  CHECK(executed_statement(kPg, "EXPLAIN (ANALYZE on) WITH x AS (SELECT 1) DELETE FROM t") ==
        "WITH x AS (SELECT 1) DELETE FROM t");
  CHECK(executed_statement(kPg, "/* c */ EXPLAIN ANALYZE SELECT 1") == "SELECT 1");
  // Plans only: nothing runs.
  CHECK(executed_statement(kPg, "EXPLAIN DELETE FROM t").empty());
  CHECK(executed_statement(kPg, "EXPLAIN VERBOSE DELETE FROM t").empty());
  CHECK(executed_statement(kPg, "EXPLAIN (ANALYZE false) DELETE FROM t").empty());
  CHECK(executed_statement(kPg, "EXPLAIN (ANALYZE off, COSTS) DELETE FROM t").empty());
  CHECK(executed_statement(kPg, "EXPLAIN (ANALYZE 0) DELETE FROM t").empty());
  CHECK(executed_statement(kPg, "ANALYZE t").empty());
  CHECK(executed_statement(kPg, "DELETE FROM t").empty());
  // MySQL / MariaDB.
  CHECK(executed_statement(kMy, "EXPLAIN ANALYZE DELETE FROM t") == "DELETE FROM t");
  CHECK(executed_statement(kMy, "EXPLAIN ANALYZE FORMAT=TREE UPDATE t SET a = 1") ==
        "UPDATE t SET a = 1");
  CHECK(executed_statement(kMy, "ANALYZE DELETE FROM t") == "DELETE FROM t");
  CHECK(executed_statement(kMy, "ANALYZE FORMAT=JSON UPDATE t SET a = 1") == "UPDATE t SET a = 1");
  CHECK(executed_statement(kMy, "ANALYZE TABLE t").empty());
  CHECK(executed_statement(kMy, "ANALYZE NO_WRITE_TO_BINLOG TABLE t").empty());
  CHECK(executed_statement(kMy, "EXPLAIN DELETE FROM t").empty());
  CHECK(executed_statement(kMy, "DESCRIBE t").empty());
}

TEST_CASE("inner statement: the guardrails judge what EXPLAIN ANALYZE runs", "[policy][inner]") {
  auto loaded = dbwarden::policy::Policy::load_string(R"(rules:
  - {name: admin, match: {user: admin}, action: allow}
  - {name: no-unbounded, match: {operation: [DELETE, UPDATE], has_where: false}, action: block}
  - {name: log-explain, match: {operation: EXPLAIN}, action: log}
)",
                                                      "p.yaml");
  REQUIRE(loaded.ok());
  const auto& p = *loaded.value();
  dbwarden::ConnectionInfo app, admin;
  app.user = "app";
  admin.user = "admin";
  dbwarden::sql::Analyzer analyzer;
  const auto decide = [&](const dbwarden::ConnectionInfo& who, Dialect d, const std::string& sql) {
    return p.decide(who, analyzer.analyze(d, sql), sql).rule;
  };
  CHECK(decide(app, kPg, "EXPLAIN ANALYZE DELETE FROM t") == "no-unbounded");
  CHECK(decide(app, kPg, "EXPLAIN (ANALYZE, TIMING off) UPDATE t SET a = 1") == "no-unbounded");
  CHECK(decide(app, kPg, "EXPLAIN ANALYZE DELETE FROM t WHERE id = 1") == "log-explain");
  CHECK(decide(app, kPg, "EXPLAIN DELETE FROM t") == "log-explain");
  CHECK(decide(app, kMy, "ANALYZE DELETE FROM t") == "no-unbounded");
  CHECK(decide(app, kMy, "EXPLAIN ANALYZE DELETE FROM t") == "no-unbounded");
  CHECK(decide(app, kMy, "ANALYZE TABLE t").empty());
  // The inner statement is judged for the same client: allowed for admin.
  CHECK(decide(admin, kPg, "EXPLAIN ANALYZE DELETE FROM t") == "admin");

  const auto& a = analyzer.analyze(kPg, "EXPLAIN ANALYZE DELETE FROM t");
  const auto e = p.explain(app, a, "EXPLAIN ANALYZE DELETE FROM t");
  CHECK(e.rule == "no-unbounded");
  CHECK(e.why ==
        "the EXPLAIN runs the statement it analyses, judged first: DELETE FROM t\n"
        "rule \"admin\" (line 2): no: user \"app\", not admin\n"
        "rule \"no-unbounded\" (line 3): MATCH: operation DELETE is DELETE or UPDATE; has_where "
        "is false\n");
}

TEST_CASE("inner statement: the writes of a PostgreSQL WITH list", "[policy][inner]") {
  const auto parts = [](const std::string& sql) {
    std::vector<std::string_view> out;
    modifying_ctes(sql, out);
    return std::vector<std::string>(out.begin(), out.end());
  };
  CHECK(parts("WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d") ==
        std::vector<std::string>{"DELETE FROM t RETURNING *"});
  CHECK(parts("with recursive a (x) as (select 1), b as materialized (update t set v = "
              "f(1, (2)) where id = 3 returning id), c AS NOT MATERIALIZED (INSERT INTO l "
              "SELECT id FROM b) SELECT * FROM a") ==
        std::vector<std::string>{"update t set v = f(1, (2)) where id = 3 returning id",
                                 "INSERT INTO l SELECT id FROM b"});
  CHECK(parts("WITH x AS (SELECT 1) SELECT * FROM x").empty());
  CHECK(parts("SELECT * FROM t AS x").empty());
  CHECK(parts("WITH d AS (DELETE FROM t").size() == 1);  // cut short: runs to the end

  CHECK(may_have_modifying_cte("WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d"));
  CHECK_FALSE(may_have_modifying_cte("WITH x AS (SELECT ?) SELECT * FROM x"));
  CHECK_FALSE(may_have_modifying_cte("SELECT * FROM t WHERE a IN (DELETE )"));

  auto loaded = dbwarden::policy::Policy::load_string(R"(rules:
  - {name: no-unbounded, match: {operation: [DELETE, UPDATE], has_where: false}, action: block}
  - {name: writes-to-log, match: {collections: log}, action: block}
)",
                                                      "p.yaml");
  REQUIRE(loaded.ok());
  dbwarden::ConnectionInfo who;
  who.user = "app";
  dbwarden::sql::Analyzer analyzer;
  const auto decide = [&](const std::string& sql) {
    return loaded.value()->decide(who, analyzer.analyze(kPg, sql), sql).rule;
  };
  CHECK(decide("WITH d AS (DELETE FROM sessions RETURNING *) SELECT count(*) FROM d") ==
        "no-unbounded");
  CHECK(decide("WITH d AS (DELETE FROM sessions WHERE exp < now() RETURNING *) SELECT count(*) "
               "FROM d")
            .empty());
  CHECK(decide("WITH u AS (UPDATE a SET v = 1 WHERE id = 2 RETURNING id), w AS (UPDATE b SET "
               "v = 0 RETURNING id) SELECT 1") == "no-unbounded");
  CHECK(decide("WITH x AS (SELECT 1) SELECT * FROM x").empty());
  // MySQL has no data-modifying WITH: its text is not read that way.
  CHECK(loaded.value()
            ->decide(who, analyzer.analyze(kMy, "WITH d AS (DELETE FROM t) SELECT 1"),
                     "WITH d AS (DELETE FROM t) SELECT 1")
            .rule.empty());
}
