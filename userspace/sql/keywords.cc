// SPDX-License-Identifier: Apache-2.0
#include "sql/keywords.h"

#include <algorithm>
#include <array>

#include "sql/char_class.h"

namespace dbwarden::sql {
namespace {

// Sorted (checked by the unit tests through is_keyword on every entry).
constexpr std::array<std::string_view, 154> kKeywords = {
    "ADD",          "ALL",
    "ALTER",        "ANALYZE",
    "AND",          "ANY",
    "ARRAY",        "AS",
    "ASC",          "BEGIN",
    "BETWEEN",      "BY",
    "CALL",         "CASCADE",
    "CASE",         "CAST",
    "CHECK",        "COLLATE",
    "COLUMN",       "COMMIT",
    "CONFLICT",     "CONSTRAINT",
    "COPY",         "CREATE",
    "CROSS",        "CURRENT",
    "DATABASE",     "DEALLOCATE",
    "DECLARE",      "DEFAULT",
    "DELAYED",      "DELETE",
    "DESC",         "DISTINCT",
    "DO",           "DROP",
    "DUPLICATE",    "ELSE",
    "END",          "ESCAPE",
    "EXCEPT",       "EXECUTE",
    "EXISTS",       "EXPLAIN",
    "EXTRACT",      "FALSE",
    "FETCH",        "FILTER",
    "FIRST",        "FOR",
    "FOREIGN",      "FROM",
    "FULL",         "GRANT",
    "GROUP",        "HANDLER",
    "HAVING",       "HIGH_PRIORITY",
    "IF",           "IGNORE",
    "ILIKE",        "IN",
    "INDEX",        "INNER",
    "INSERT",       "INTERSECT",
    "INTERVAL",     "INTO",
    "IS",           "JOIN",
    "KEY",          "LATERAL",
    "LEFT",         "LIKE",
    "LIMIT",        "LOAD",
    "LOCK",         "LOCKED",
    "LOW_PRIORITY", "MATCHED",
    "MATERIALIZED", "MERGE",
    "NATURAL",      "NEXT",
    "NOT",          "NOTHING",
    "NOWAIT",       "NULL",
    "NULLS",        "OF",
    "OFFSET",       "ON",
    "ONLY",         "OR",
    "ORDER",        "OUTER",
    "OUTFILE",      "OVER",
    "OVERLAY",      "PARTITION",
    "POSITION",     "PREPARE",
    "PRIMARY",      "QUICK",
    "RANGE",        "RECURSIVE",
    "REFERENCES",   "REGEXP",
    "RELEASE",      "RENAME",
    "REPLACE",      "RESTRICT",
    "RETURNING",    "REVOKE",
    "RIGHT",        "ROLLBACK",
    "ROW",          "ROWS",
    "SAVEPOINT",    "SCHEMA",
    "SELECT",       "SET",
    "SHARE",        "SHOW",
    "SKIP",         "SOME",
    "SQL_CALC_FOUND_ROWS",
    "START",        "STRAIGHT_JOIN",
    "SUBSTRING",    "TABLE",
    "TABLES",       "TEMP",
    "TEMPORARY",    "THEN",
    "TO",           "TRANSACTION",
    "TRIM",         "TRUE",
    "TRUNCATE",     "UNION",
    "UNIQUE",       "UNLOGGED",
    "UPDATE",       "USE",
    "USING",        "VACUUM",
    "VALUES",       "VIEW",
    "WHEN",         "WHERE",
    "WINDOW",       "WITH",
    "WITHIN",
};

constexpr size_t kMaxKeyword = 19;  // SQL_CALC_FOUND_ROWS

}  // namespace

bool is_keyword(std::string_view word) {
  if (word.size() < 2 || word.size() > kMaxKeyword) return false;
  char upper[kMaxKeyword];
  for (size_t i = 0; i < word.size(); ++i) {
    upper[i] = static_cast<char>(chars::to_upper(static_cast<unsigned char>(word[i])));
  }
  const std::string_view key(upper, word.size());
  return std::binary_search(kKeywords.begin(), kKeywords.end(), key);
}

}  // namespace dbwarden::sql
