// SPDX-License-Identifier: Apache-2.0
#include "sql/shape_memo.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "sql/analyzer.h"
#include "sql/normalize.h"

namespace {

using dbwarden::sql::Analysis;
using dbwarden::sql::Analyzer;
using dbwarden::sql::AnalyzerOptions;
using dbwarden::sql::Dialect;
using dbwarden::sql::normalize;
using dbwarden::sql::ShapeMemo;
using dbwarden::sql::Token;
using dbwarden::sql::tokenize;

// Remembers `remembered` (as the analyser would: its analysis without the memo).
void remember(ShapeMemo& memo, const std::string& remembered) {
  std::vector<Token> tokens;
  tokenize(Dialect::kPostgresql, {}, remembered, tokens);
  AnalyzerOptions off;
  off.shape_memo = false;
  Analyzer analyzer(off);
  memo.remember(remembered, tokens, analyzer.analyze(Dialect::kPostgresql, remembered));
}

// Whether the memo answers `text` after remembering `remembered`; when it
// does, its answer must be what a full analysis of `text` gives.
bool answers(const std::string& remembered, const std::string& text) {
  ShapeMemo memo;
  remember(memo, remembered);
  const Analysis* a = memo.find(text);
  if (a == nullptr) return false;
  CHECK(a->normalized == normalize(Dialect::kPostgresql, text));
  return true;
}

}  // namespace

TEST_CASE("shape memo: texts that differ only in number and string literals", "[sql][shape_memo]") {
  const std::string pgbench = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";
  CHECK(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = 7;"));
  CHECK(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = 1000000;"));
  CHECK(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = 1.5e-3;"));
  CHECK(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = 0x1F;"));
  const std::string strings = "UPDATE t SET name = 'bob', n = 3 WHERE id = 'x''y'";
  CHECK(answers(strings, "UPDATE t SET name = '', n = 12 WHERE id = 'it''s'"));
  CHECK(answers(strings, "UPDATE t SET name = 'a b c', n = 0 WHERE id = 'z'"));
  // No literal at all: the whole text is fixed.
  CHECK(answers("BEGIN", "BEGIN"));
  CHECK(answers("SELECT 1", "SELECT 2"));
}

TEST_CASE("shape memo: anything else is a miss", "[sql][shape_memo]") {
  const std::string pgbench = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";
  // Other fixed bytes, other case, other spacing.
  CHECK_FALSE(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = 48213"));
  CHECK_FALSE(answers(pgbench, "select abalance FROM pgbench_accounts WHERE aid = 48213;"));
  CHECK_FALSE(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid =  48213;"));
  CHECK_FALSE(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE bid = 48213;"));
  // Another kind of token where the literal was.
  CHECK_FALSE(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"));
  CHECK_FALSE(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = '1';"));
  CHECK_FALSE(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = .5;"));
  CHECK_FALSE(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = -1;"));
  CHECK_FALSE(answers(pgbench, "SELECT abalance FROM pgbench_accounts WHERE aid = 1 OR 1;"));
  // A literal that eats into what follows, or runs to the end.
  CHECK_FALSE(answers("SELECT 'a' || b", "SELECT 'a'' || b"));
  CHECK_FALSE(answers("SELECT 'a'", "SELECT 'a"));
  CHECK_FALSE(answers("SELECT 1.5 FROM t", "SELECT 1.5.5 FROM t"));
  // A prefixed string is not a varying literal: its bytes are fixed.
  CHECK(answers("SELECT E'a\\'b'", "SELECT E'a\\'b'"));
  CHECK_FALSE(answers("SELECT E'a'", "SELECT E'b'"));
}

TEST_CASE("shape memo: a text the redaction pass would look into is never remembered",
          "[sql][shape_memo]") {
  // Words that name a credential: not remembered at all.
  CHECK_FALSE(answers("ALTER ROLE bob PASSWORD 'x'", "ALTER ROLE bob PASSWORD 'y'"));
  CHECK_FALSE(answers("UPDATE users SET user_password = 'a' WHERE id = 1",
                      "UPDATE users SET user_password = 'b' WHERE id = 2"));
  CHECK_FALSE(answers("DO $$ BEGIN END $$", "DO $$ BEGIN END $$"));
  // A remembered shape, then a literal that may hold a connection string or a URI.
  const std::string call = "SELECT dblink_connect('c', 'host=h')";
  CHECK_FALSE(answers(call, call));  // '=' in a literal: the pass looks, so no memo
  const std::string plain = "SELECT f('a', 'b')";
  CHECK(answers(plain, "SELECT f('x', 'y z')"));
  CHECK_FALSE(answers(plain, "SELECT f('x', 'host=h password=secret')"));
  CHECK_FALSE(answers(plain, "SELECT f('x', 'postgresql://u:pw@h/db')"));
  CHECK_FALSE(answers(plain, "SELECT f('x', 'it''s ALTER ROLE a PASSWORD')"));
}

TEST_CASE(
    "shape memo: the analyser answers from it only after a second sighting, and "
    "redacts as before",
    "[sql][shape_memo][analyzer]") {
  Analyzer analyzer;
  dbwarden::sql::Redaction redaction;
  for (int i = 0; i < 10; ++i) {
    const std::string sql =
        "SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(i * 7919) + ";";
    const Analysis& a = analyzer.analyze(Dialect::kPostgresql, sql, redaction);
    CHECK(a.normalized == "SELECT abalance FROM pgbench_accounts WHERE aid = ?");
    CHECK(a.operation == "SELECT");
    CHECK_FALSE(redaction.any());
  }
  auto c = analyzer.counters();
  CHECK(c.cache_misses == 1);
  CHECK(c.cache_hits == 9);
  CHECK(c.shape_hits == 8);  // the first is a miss, the second a cache hit that remembers
  // A credential in a text of another shape is still found.
  analyzer.analyze(Dialect::kPostgresql, "ALTER ROLE bob PASSWORD 'hunter2'", redaction);
  CHECK(redaction.text_redacted);
  // Redaction state does not leak into the next memo answer.
  analyzer.analyze(Dialect::kPostgresql, "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
                   redaction);
  CHECK_FALSE(redaction.any());
  CHECK(analyzer.counters().shape_hits == 9);
}

TEST_CASE("shape memo: bounded, least recently used way gives way", "[sql][shape_memo]") {
  ShapeMemo memo;
  // Three shapes in one bucket (same first 16 bytes, a literal after them).
  const std::string a = "SELECT * FROM accounts_a WHERE id = 1";
  const std::string b = "SELECT * FROM accounts_b WHERE id = 1";
  const std::string c = "SELECT * FROM accounts_c WHERE id = 1";
  remember(memo, a);
  remember(memo, b);
  CHECK(memo.find("SELECT * FROM accounts_a WHERE id = 2") != nullptr);  // a most recent
  remember(memo, c);                                                     // b gives way
  CHECK(memo.find("SELECT * FROM accounts_b WHERE id = 2") == nullptr);
  CHECK(memo.find("SELECT * FROM accounts_a WHERE id = 3") != nullptr);
  CHECK(memo.find("SELECT * FROM accounts_c WHERE id = 3") != nullptr);
  // Over the size bound: not remembered.
  const std::string huge = "SELECT " + std::string(ShapeMemo::kMaxTextBytes, 'x') + " FROM t";
  remember(memo, huge);
  CHECK(memo.find(huge) == nullptr);
  std::string many = "SELECT 0";
  for (size_t i = 0; i < ShapeMemo::kMaxLiterals; ++i) many += ", " + std::to_string(i);
  remember(memo, many);
  CHECK(memo.find(many) == nullptr);
}
