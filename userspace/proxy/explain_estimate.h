// SPDX-License-Identifier: Apache-2.0
//
// The blast radius of a statement held for approval (issue 14, item 2): how many rows it
// would touch, as the server's own EXPLAIN estimates it, never executed. The relays run the
// EXPLAIN on the held client's session (pg_explain.h, mysql_explain.h); this reads its JSON.
//
// Only numbers are read: the plan also holds the statement's values (filters, index
// conditions), and none of them reaches a reviewer. Every failure is a fixed text a
// reviewer understands.
//
// PostgreSQL, EXPLAIN (FORMAT JSON): [{"Plan": {"Node Type": "ModifyTable", "Operation":
//   "Delete", "Plan Rows": 0, "Plans": [{"Parent Relationship": "Outer", "Plan Rows": 42,
//   ...}]}}]. The rows the statement changes are the top ModifyTable's input: its "Outer"
//   child's "Plan Rows" (the first ModifyTable found depth first: a data-changing CTE's too).
// MySQL / MariaDB, EXPLAIN FORMAT=JSON: {"query_block": {"select_id": 1, "table":
//   {"update": 1, "table_name": "t", "rows": 1000, "filtered": 10, ...}}}, or a
//   "nested_loop" array of {"table": {...}} for a join, under "filesort" /
//   "temporary_table" wrappers at times. MariaDB names the row estimate "rows" and gives
//   "filtered" as a number; MySQL 8 "rows_examined_per_scan" and a string. The estimate is
//   rows x filtered / 100 of the changed table (marked "update" / "delete"); for a join, the
//   product of each table's rows x filtered along the outer join (the rows the join yields,
//   each a row to change at most), capped by the changed table's rows when it is marked.
//   Subqueries are not walked (they filter the join; their own rows are not changed).
// https://www.postgresql.org/docs/current/sql-explain.html,
// https://mariadb.com/kb/en/explain-format-json/
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dbwarden::proxy {

// Whether a statement's blast radius is estimated: UPDATE, DELETE, MERGE, and INSERT or
// REPLACE that read a SELECT (by its first word, and the word SELECT in the rest; WITH ...
// counts by its main verb, sql::operation_name).
bool WantsBlastRadius(std::string_view text);

// The largest EXPLAIN answer read (a plan's JSON); larger: "too large".
inline constexpr size_t kMaxExplainJson = 1u << 20;

struct BlastEstimate {
  bool ok = false;
  uint64_t rows = 0;    // when ok: rounded to the nearest row
  std::string failure;  // when !ok: why, for "estimate unavailable: ..."
};

BlastEstimate ReadPgExplain(std::string_view json);
BlastEstimate ReadMysqlExplain(std::string_view json);

// What a reviewer is told when the EXPLAIN failed with `sqlstate` and `message` (the
// server's error text, cut to a line of at most 160 bytes); a statement timeout (57014,
// MariaDB 1969, MySQL 3024) is "timed out".
std::string ExplainFailure(std::string_view sqlstate, std::string_view message);
// A server's or a library's message as a reviewer is shown it: its first line, at most 160
// bytes (cut at a character boundary, "..." after the cut).
std::string ExplainMessageLine(std::string_view message);

// How the estimates are obtained, as RequestSpec::blast_via says it.
inline constexpr std::string_view kBlastViaClientSession = "explain on the client's session";
// The EXPLAIN's time limit on the server.
inline constexpr uint32_t kExplainTimeoutMs = 2000;

}  // namespace dbwarden::proxy
