// SPDX-License-Identifier: Apache-2.0
#include "sql/keywords.h"

#include <array>
#include <cstring>

#include "sql/char_class.h"

namespace dbwarden::sql {
namespace {

// Sorted (checked by the unit tests through is_keyword on every entry).
constexpr std::array<std::string_view, 154> kKeywords = {
    "ADD",
    "ALL",
    "ALTER",
    "ANALYZE",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CALL",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "COMMIT",
    "CONFLICT",
    "CONSTRAINT",
    "COPY",
    "CREATE",
    "CROSS",
    "CURRENT",
    "DATABASE",
    "DEALLOCATE",
    "DECLARE",
    "DEFAULT",
    "DELAYED",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DO",
    "DROP",
    "DUPLICATE",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXECUTE",
    "EXISTS",
    "EXPLAIN",
    "EXTRACT",
    "FALSE",
    "FETCH",
    "FILTER",
    "FIRST",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "GRANT",
    "GROUP",
    "HANDLER",
    "HAVING",
    "HIGH_PRIORITY",
    "IF",
    "IGNORE",
    "ILIKE",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOAD",
    "LOCK",
    "LOCKED",
    "LOW_PRIORITY",
    "MATCHED",
    "MATERIALIZED",
    "MERGE",
    "NATURAL",
    "NEXT",
    "NOT",
    "NOTHING",
    "NOWAIT",
    "NULL",
    "NULLS",
    "OF",
    "OFFSET",
    "ON",
    "ONLY",
    "OR",
    "ORDER",
    "OUTER",
    "OUTFILE",
    "OVER",
    "OVERLAY",
    "PARTITION",
    "POSITION",
    "PREPARE",
    "PRIMARY",
    "QUICK",
    "RANGE",
    "RECURSIVE",
    "REFERENCES",
    "REGEXP",
    "RELEASE",
    "RENAME",
    "REPLACE",
    "RESTRICT",
    "RETURNING",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "ROW",
    "ROWS",
    "SAVEPOINT",
    "SCHEMA",
    "SELECT",
    "SET",
    "SHARE",
    "SHOW",
    "SKIP",
    "SOME",
    "SQL_CALC_FOUND_ROWS",
    "START",
    "STRAIGHT_JOIN",
    "SUBSTRING",
    "TABLE",
    "TABLES",
    "TEMP",
    "TEMPORARY",
    "THEN",
    "TO",
    "TRANSACTION",
    "TRIM",
    "TRUE",
    "TRUNCATE",
    "UNION",
    "UNIQUE",
    "UNLOGGED",
    "UPDATE",
    "USE",
    "USING",
    "VACUUM",
    "VALUES",
    "VIEW",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "WITHIN",
};

constexpr size_t kMaxKeyword = 19;  // SQL_CALC_FOUND_ROWS

// kKeywords is sorted, so the words starting with each letter are one run:
// index the runs once (at compile time) and search only the word's run, a
// handful of entries instead of the whole list. Every word of a statement
// goes through here, so this is the normaliser's hottest lookup.
struct LetterRuns {
  std::array<uint8_t, 27> begin{};  // begin[c]..begin[c + 1]: words starting with 'A' + c
};

constexpr LetterRuns make_letter_runs() {
  LetterRuns runs;
  size_t k = 0;
  for (size_t c = 0; c < 26; ++c) {
    runs.begin[c] = static_cast<uint8_t>(k);
    while (k < kKeywords.size() && kKeywords[k][0] == static_cast<char>('A' + c)) ++k;
  }
  runs.begin[26] = static_cast<uint8_t>(k);
  return runs;
}

constexpr LetterRuns kRuns = make_letter_runs();
static_assert(kRuns.begin[26] == kKeywords.size(), "every keyword starts with a letter A-Z");
static_assert(kKeywords.size() < 256, "run offsets are bytes");

}  // namespace

bool is_keyword(std::string_view word) {
  if (word.size() < 2 || word.size() > kMaxKeyword) return false;
  char upper[kMaxKeyword];
  for (size_t i = 0; i < word.size(); ++i) {
    upper[i] = static_cast<char>(chars::to_upper(static_cast<unsigned char>(word[i])));
  }
  if (upper[0] < 'A' || upper[0] > 'Z') return false;
  const size_t letter = static_cast<size_t>(upper[0] - 'A');
  // A run holds at most a couple of dozen words; most differ in length, so a
  // linear scan comparing lengths first beats a binary search's memcmp calls.
  for (size_t k = kRuns.begin[letter]; k < kRuns.begin[letter + 1]; ++k) {
    const std::string_view kw = kKeywords[k];
    if (kw.size() == word.size() && std::memcmp(kw.data(), upper, kw.size()) == 0) return true;
  }
  return false;
}

}  // namespace dbwarden::sql
