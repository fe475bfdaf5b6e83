// SPDX-License-Identifier: Apache-2.0
//
// PostgreSQL classification with the server's own grammar, through
// libpg_query (https://github.com/pganalyze/libpg_query, Debian
// libpg-query-dev): CTEs, subqueries, set operations and every DDL form are
// understood as PostgreSQL understands them. It costs tens of microseconds per
// statement, so the Analyzer runs it once per distinct normalised text.
#pragma once

#include <string>
#include <vector>

namespace dbwarden::sql {

struct ParsedStatement {
  // Relations named (RangeVar, DROP TABLE/VIEW objects), main table first,
  // each once, "schema.table" where a schema was written; CTE names excluded.
  std::vector<std::string> collections;
  bool unbounded_write = false;  // an UpdateStmt/DeleteStmt without whereClause
  bool has_where = false;        // every statement node has a whereClause
  uint32_t statements = 0;
};

// Parses `sql` (NUL-terminated: std::string) into `out`. Returns false, and
// leaves `out` unspecified, when libpg_query rejects the text.
bool pg_parse(const std::string& sql, ParsedStatement& out);

}  // namespace dbwarden::sql
