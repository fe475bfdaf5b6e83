// SPDX-License-Identifier: Apache-2.0
//
// The blast radius's EXPLAIN readers (proxy/explain_estimate.h): the plans PostgreSQL 15 and
// MariaDB 10.11 write for the statements an approval holds (taken from those servers, values
// shortened), and hostile or garbled answers: each is "unavailable" with a fixed reason,
// never a number made up, and no text of the plan comes out.
#include "proxy/explain_estimate.h"

#include <catch2/catch.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/pg_explain.h"

using dbwarden::proxy::ExplainFailure;
using dbwarden::proxy::ReadMysqlExplain;
using dbwarden::proxy::ReadPgExplain;
using dbwarden::proxy::WantsBlastRadius;

namespace {

constexpr std::string_view kPgDelete = R"json([
  {
    "Plan": {
      "Node Type": "ModifyTable", "Operation": "Delete", "Parallel Aware": false,
      "Relation Name": "accounts", "Alias": "accounts", "Startup Cost": 0.00,
      "Total Cost": 41.88, "Plan Rows": 0, "Plan Width": 0,
      "Plans": [
        {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "accounts",
         "Plan Rows": 850, "Plan Width": 6, "Filter": "(owner = 'secret-owner'::text)"
}
      ]
      }
      }
])json";

// UPDATE ... FROM: a join under the ModifyTable, an InitPlan beside it.
constexpr std::string_view kPgUpdateJoin = R"json([{"Plan": {"Node Type": "ModifyTable",
  "Operation": "Update", "Plan Rows": 0, "Plans": [
    {"Node Type": "Result", "Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1",
     "Plan Rows": 1},
    {"Node Type": "Hash Join", "Parent Relationship": "Outer", "Plan Rows": 2550.4,
     "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Plan Rows": 9000}]}
  ]}}])json";

// WITH d AS (DELETE ... RETURNING *) SELECT count(*) FROM d: the ModifyTable sits below.
constexpr std::string_view kPgCte = R"json([{"Plan": {"Node Type": "Aggregate", "Plan Rows": 1,
  "Plans": [{"Node Type": "ModifyTable", "Operation": "Delete", "Parent Relationship":
  "Member", "Subplan Name": "CTE d", "Plan Rows": 77, "Plans": [{"Node Type": "Seq Scan",
  "Parent Relationship": "Outer", "Plan Rows": 77}]}, {"Node Type": "CTE Scan",
  "Parent Relationship": "Outer", "Plan Rows": 77}]}}])json";

constexpr std::string_view kMariaUpdate = R"json({
  "query_block": {
    "select_id": 1,
    "table": {
      "update": 1, "table_name": "accounts", "access_type": "ALL", "rows": 1000,
      "filtered": 10, "attached_condition": "accounts.`owner` = 'secret-owner'"
    }
  }
})json";

constexpr std::string_view kMariaDeleteRange = R"json({"query_block": {"select_id": 1,
  "table": {"delete": 1, "table_name": "accounts", "access_type": "range",
  "possible_keys": ["PRIMARY"], "key": "PRIMARY", "rows": 42, "filtered": 100,
  "attached_condition": "accounts.id < 43"}}})json";

// A multi-table UPDATE: a join, the changed table not marked (MariaDB), under a wrapper.
constexpr std::string_view kMariaJoin = R"json({"query_block": {"select_id": 1,
  "temporary_table": {"nested_loop": [
    {"table": {"table_name": "o", "access_type": "ALL", "rows": 200, "filtered": 50}},
    {"table": {"table_name": "a", "access_type": "eq_ref", "rows": 1, "filtered": 100}}
  ]},
  "subqueries": [{"query_block": {"select_id": 2, "table": {"table_name": "x",
    "rows": 99999, "filtered": 100}}}]}})json";

// MySQL 8: rows_examined_per_scan and string numbers.
constexpr std::string_view kMysql8 = R"json({"query_block": {"select_id": 1, "table": {
  "update": true, "table_name": "accounts", "access_type": "ALL",
  "rows_examined_per_scan": 500, "filtered": "20.00"}}})json";

}  // namespace

TEST_CASE("blast radius: which statements are estimated", "[proxy][blast]") {
  CHECK(WantsBlastRadius("DELETE FROM t"));
  CHECK(WantsBlastRadius("  update t set a = 1"));
  CHECK(WantsBlastRadius("WITH x AS (SELECT 1) DELETE FROM t USING x"));
  CHECK(WantsBlastRadius("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"));
  CHECK(WantsBlastRadius("INSERT INTO t SELECT * FROM s"));
  CHECK(WantsBlastRadius("replace into t select * from s"));
  CHECK_FALSE(WantsBlastRadius("INSERT INTO t VALUES (1)"));
  CHECK_FALSE(WantsBlastRadius("SELECT * FROM t"));
  CHECK_FALSE(WantsBlastRadius("DROP TABLE t"));
  CHECK_FALSE(WantsBlastRadius(""));
}

TEST_CASE("blast radius, pg: the ModifyTable's input rows", "[proxy][blast]") {
  auto e = ReadPgExplain(kPgDelete);
  REQUIRE(e.ok);
  CHECK(e.rows == 850);
  e = ReadPgExplain(kPgUpdateJoin);
  REQUIRE(e.ok);
  CHECK(e.rows == 2550);  // the Outer child, not the InitPlan
  e = ReadPgExplain(kPgCte);
  REQUIRE(e.ok);
  CHECK(e.rows == 77);
}

TEST_CASE("blast radius, pg: garbled and hostile answers", "[proxy][blast]") {
  const auto unavailable = [](std::string_view json) {
    const auto e = ReadPgExplain(json);
    CHECK_FALSE(e.ok);
    CHECK_FALSE(e.failure.empty());
    CHECK(e.failure.find("secret") == std::string::npos);
    return e.failure;
  };
  CHECK(unavailable("") == "EXPLAIN's answer is not a plan the proxy reads");
  unavailable("not json");
  unavailable("[]");
  unavailable("{\"Plan\": {}}");
  unavailable(
      R"json([{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 5, "Filter": "secret"}}])json");
  CHECK(unavailable(R"json([{"Plan": {"Node Type": "ModifyTable", "Plan Rows": 0}}])json") ==
        "EXPLAIN's plan shows no rows to change");
  unavailable(R"json([{"Plan": {"Node Type": "ModifyTable", "Plans": [{"Plan Rows": -3}]}}])json");
  unavailable(
      R"json([{"Plan": {"Node Type": "ModifyTable", "Plans": [{"Plan Rows": 1e300}]}}])json");
  unavailable(R"json([{"Plan": {"Node Type": "ModifyTable", "Plans": [{"Plan Rows": "x"}]}}])json");
  unavailable(R"json([{"Plan": {"Node Type": "ModifyTable", "Plans": [5, "a", null]}}])json");
  unavailable(std::string(kPgDelete).substr(0, 200));  // cut short
  // Nested past any plan a server writes: refused, not walked into the stack's end.
  std::string deep = "[{\"Plan\": ";
  for (int i = 0; i < 5000; ++i) deep += "{\"Node Type\": \"Sort\", \"Plans\": [";
  unavailable(deep);
  deep += "{}";
  for (int i = 0; i < 5000; ++i) deep += "]}";
  deep += "}]";
  unavailable(deep);
  CHECK(unavailable(std::string(dbwarden::proxy::kMaxExplainJson + 1, ' ')) ==
        "EXPLAIN's answer is too large");
}

TEST_CASE("blast radius, mysql: the changed table's rows x filtered", "[proxy][blast]") {
  auto e = ReadMysqlExplain(kMariaUpdate);
  REQUIRE(e.ok);
  CHECK(e.rows == 100);
  e = ReadMysqlExplain(kMariaDeleteRange);
  REQUIRE(e.ok);
  CHECK(e.rows == 42);
  e = ReadMysqlExplain(kMariaJoin);  // the join's rows; the subquery is not counted
  REQUIRE(e.ok);
  CHECK(e.rows == 100);
  e = ReadMysqlExplain(kMysql8);
  REQUIRE(e.ok);
  CHECK(e.rows == 100);
  e = ReadMysqlExplain(R"json({"query_block": {"select_id": 1, "table": {"message":
    "Impossible WHERE"}}})json");
  REQUIRE(e.ok);
  CHECK(e.rows == 0);
  e = ReadMysqlExplain(R"json({"query_block": {"select_id": 1, "message": "No tables used"}})json");
  REQUIRE(e.ok);
  CHECK(e.rows == 0);
}

TEST_CASE("blast radius, mysql: garbled and hostile answers", "[proxy][blast]") {
  const auto unavailable = [](std::string_view json) {
    const auto e = ReadMysqlExplain(json);
    CHECK_FALSE(e.ok);
    CHECK_FALSE(e.failure.empty());
    CHECK(e.failure.find("secret") == std::string::npos);
    return e.failure;
  };
  unavailable("");
  unavailable("[1, 2]");
  unavailable(R"json({"query_block": 7})json");
  unavailable(R"json({"query_block": {"select_id": 1}})json");
  unavailable(
      R"json({"query_block": {"table": {"table_name": "secret", "access_type": "ALL"}}})json");
  unavailable(R"json({"query_block": {"table": {"rows": 10, "filtered": 250}}})json");
  unavailable(R"json({"query_block": {"table": {"rows": -10}}})json");
  unavailable(R"json({"query_block": {"table": {"rows": 10, "filtered": "lots"}}})json");
  unavailable(R"json({"query_block": {"nested_loop": [{"table": {"rows": 1e12}},
    {"table": {"rows": 1e12}}]}})json");  // a product past any table
  std::string deep = "{\"query_block\": ";
  for (int i = 0; i < 5000; ++i) deep += "{\"filesort\": ";
  deep += "{\"table\": {\"rows\": 1}}";
  for (int i = 0; i < 5000; ++i) deep += "}";
  deep += "}";
  unavailable(deep);
  unavailable(std::string(kMariaUpdate).substr(0, 60));
}

TEST_CASE("blast radius: failures a reviewer reads", "[proxy][blast]") {
  CHECK(ExplainFailure("57014", "canceling statement due to statement timeout") ==
        "timed out (EXPLAIN's limit is 2 s)");
  CHECK(ExplainFailure("70100", "Query execution was interrupted (max_statement_time exceeded)") ==
        "timed out (EXPLAIN's limit is 2 s)");
  CHECK(ExplainFailure("HY000", "Lock wait timeout exceeded; try restarting transaction") ==
        "timed out (EXPLAIN's limit is 2 s)");
  CHECK(ExplainFailure("42P01", "relation \"nope\" does not exist") ==
        "EXPLAIN failed: 42P01 relation \"nope\" does not exist");
  CHECK(ExplainFailure("", "two\nlines") == "EXPLAIN failed: two");
  const std::string long_utf8 = std::string(159, 'a') + "\xc3\xa9" + std::string(50, 'b');
  const std::string cut = ExplainFailure("XX000", long_utf8);
  CHECK(cut == "EXPLAIN failed: XX000 " + std::string(159, 'a') + "...");
}

TEST_CASE("blast radius, pg: a Bind's values for the agent's role's EXPLAIN", "[proxy][blast]") {
  using dbwarden::proxy::PgBindParameters;
  using dbwarden::proxy::PgBindValues;
  // A Bind body (portal "", statement "s"): its format codes, its values by length (-1:
  // NULL) cut from `values`, no result formats.
  const auto bind = [](uint16_t formats, std::initializer_list<uint16_t> codes,
                       std::initializer_list<int32_t> lengths, std::string values) {
    std::string b = std::string("\0s\0", 3);
    const auto put16 = [&b](uint16_t v) {
      b += static_cast<char>(v >> 8);
      b += static_cast<char>(v);
    };
    put16(formats);
    for (const uint16_t c : codes) put16(c);
    put16(static_cast<uint16_t>(lengths.size()));
    size_t at = 0;
    for (const int32_t n : lengths) {
      for (int shift = 24; shift >= 0; shift -= 8) b += static_cast<char>(n >> shift);
      if (n > 0) {
        b += values.substr(at, static_cast<size_t>(n));
        at += static_cast<size_t>(n);
      }
    }
    put16(0);  // result formats
    return b;
  };
  const auto read = [](const std::string& body, std::vector<std::optional<std::string>>& v,
                       std::vector<int>& f) {
    std::string_view statement;
    std::span<const uint8_t> parameters;
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(body.data()),
                                         body.size());
    return PgBindParameters(bytes, &statement, &parameters) && statement == "s" &&
           PgBindValues(parameters, v, f);
  };
  std::vector<std::optional<std::string>> values;
  std::vector<int> formats;
  REQUIRE(read(bind(2, {0, 1}, {1, -1}, "9"), values, formats));
  REQUIRE(values.size() == 2);
  CHECK(values[0] == "9");
  CHECK_FALSE(values[1].has_value());
  CHECK(formats == std::vector<int>{0, 1});
  // One code for all; none: text.
  REQUIRE(read(bind(1, {1}, {2, 1}, "abc"), values, formats));
  CHECK(formats == std::vector<int>{1, 1});
  CHECK(values[1] == "c");
  REQUIRE(read(bind(0, {}, {3}, "xyz"), values, formats));
  CHECK(formats == std::vector<int>{0});
  // Two codes for three values: malformed, as the server would say.
  CHECK_FALSE(read(bind(2, {0, 0}, {1, 1, 1}, "abc"), values, formats));
}
