// SPDX-License-Identifier: Apache-2.0
#include "sql/keywords.h"

#include <array>
#include <cstdint>

#include "sql/char_class.h"

namespace dbwarden::sql {
namespace {

// Sorted, upper case (the unit tests check both).
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
static_assert(kKeywords.size() < 255, "slot entries are bytes, 255 marks an empty slot");

// Every word of a statement is looked up here (the normaliser's hottest
// lookup), so it is one hash, one table read and at most one comparison: a
// perfect hash of the keywords. A word is keyed by its length and its first
// two and last two bytes, each OR 0x20 (letters fold to lower case; the final
// comparison is exact, so folding other bytes too only costs a comparison).
// The multiplier is the first odd 64-bit value a random search (seed 1) found
// that gives every keyword a slot of its own; kSlots checks that at compile
// time, so a keyword added to the list that collides fails the build (search
// again: any odd multiplier with a perfect table will do).
constexpr uint64_t kHashMultiplier = 0x9f960f659c4e3e91ULL;
constexpr unsigned kSlotBits = 10;
constexpr uint8_t kEmptySlot = 0xff;

// `word` has at least two bytes.
constexpr size_t slot_of(std::string_view word) {
  const size_t n = word.size();
  const auto folded = [&](size_t i) {
    return uint64_t{static_cast<unsigned char>(word[i])} | 0x20u;
  };
  const uint64_t key =
      folded(0) | folded(1) << 8 | folded(n - 1) << 16 | folded(n - 2) << 24 | uint64_t{n} << 32;
  return static_cast<size_t>((key * kHashMultiplier) >> (64 - kSlotBits));
}

struct SlotTable {
  std::array<uint8_t, size_t{1} << kSlotBits> keyword{};  // index into kKeywords, or kEmptySlot
  bool perfect = true;                                    // no two keywords share a slot
};

constexpr SlotTable make_slots() {
  SlotTable t;
  for (uint8_t& k : t.keyword) k = kEmptySlot;
  for (size_t k = 0; k < kKeywords.size(); ++k) {
    uint8_t& slot = t.keyword[slot_of(kKeywords[k])];
    if (slot != kEmptySlot) t.perfect = false;
    slot = static_cast<uint8_t>(k);
  }
  return t;
}

constexpr SlotTable kSlots = make_slots();
static_assert(kSlots.perfect, "two keywords share a hash slot: pick another kHashMultiplier");

}  // namespace

std::string_view keyword_upper(std::string_view word) {
  if (word.size() < 2 || word.size() > kMaxKeyword) return {};
  const uint8_t k = kSlots.keyword[slot_of(word)];
  if (k == kEmptySlot) return {};
  const std::string_view kw = kKeywords[k];
  if (kw.size() != word.size()) return {};
  for (size_t i = 0; i < kw.size(); ++i) {
    if (chars::to_upper(static_cast<unsigned char>(word[i])) != static_cast<unsigned char>(kw[i])) {
      return {};
    }
  }
  return kw;
}

bool is_keyword(std::string_view word) { return !keyword_upper(word).empty(); }

std::span<const std::string_view> keyword_list() { return kKeywords; }

}  // namespace dbwarden::sql
