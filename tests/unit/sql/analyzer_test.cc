// SPDX-License-Identifier: Apache-2.0
#include "sql/analyzer.h"

#include <catch2/catch.hpp>
#include <string>

#include "sql/keywords.h"
#include "sql/mysql_lexer.h"

namespace {

using dbwarden::sql::Analysis;
using dbwarden::sql::AnalysisSource;
using dbwarden::sql::Analyzer;
using dbwarden::sql::AnalyzerOptions;
using dbwarden::sql::Dialect;

}  // namespace

TEST_CASE("analyzer: a repeated statement is parsed once", "[sql][analyzer]") {
  Analyzer analyzer;
  for (int i = 0; i < 50; ++i) {
    // A subquery: sql/certainty.h sends this shape to the grammar.
    const std::string sql = "SELECT * FROM accounts WHERE id = " + std::to_string(i) +
                            " AND tag IN (SELECT tag FROM tags WHERE kind IN (" +
                            std::string(static_cast<size_t>(i % 7) * 3, ' ') + "'a', 'b'))";
    const Analysis& a = analyzer.analyze(Dialect::kPostgresql, sql);
    CHECK(a.summary == "SELECT accounts");
    CHECK(a.source == AnalysisSource::kParser);
  }
  const auto c = analyzer.counters();
  CHECK(c.statements == 50);
  CHECK(c.parses == 1);
  CHECK(c.parses_skipped == 0);
  CHECK(c.cache_misses == 1);
  CHECK(c.cache_hits == 49);
  CHECK(analyzer.cache_entries() == 1);
}

TEST_CASE("analyzer: dialects do not share cache entries", "[sql][analyzer]") {
  Analyzer analyzer;
  const Analysis& pg = analyzer.analyze(Dialect::kPostgresql, "SELECT 1 UNION SELECT 2");
  CHECK(pg.source == AnalysisSource::kParser);
  const std::string pg_fp = pg.fingerprint;
  const Analysis& my = analyzer.analyze(Dialect::kMysql, "SELECT 1 UNION SELECT 2");
  CHECK(my.source == AnalysisSource::kLexer);
  CHECK(my.fingerprint == pg_fp);  // same normalised text, same fingerprint
  CHECK(analyzer.cache_entries() == 2);
  CHECK(analyzer.counters().parses == 1);
}

TEST_CASE("analyzer: cache is bounded in entries and evicts the least recent", "[sql][analyzer]") {
  AnalyzerOptions options;
  options.cache.max_entries = 3;
  Analyzer analyzer(options);
  for (const char* t : {"a", "b", "c"})
    analyzer.analyze(Dialect::kMysql, std::string("SELECT * FROM ") + t);
  analyzer.analyze(Dialect::kMysql, "SELECT * FROM a");  // a is now most recent
  analyzer.analyze(Dialect::kMysql, "SELECT * FROM d");  // evicts b
  CHECK(analyzer.cache_entries() == 3);
  CHECK(analyzer.counters().cache_evictions == 1);
  const auto hits = analyzer.counters().cache_hits;
  analyzer.analyze(Dialect::kMysql, "SELECT * FROM a");
  analyzer.analyze(Dialect::kMysql, "SELECT * FROM c");
  CHECK(analyzer.counters().cache_hits == hits + 2);
  analyzer.analyze(Dialect::kMysql, "SELECT * FROM b");
  CHECK(analyzer.counters().cache_hits == hits + 2);  // b was evicted
}

TEST_CASE("analyzer: cache is bounded in bytes, an oversized text is analysed, not cached",
          "[sql][analyzer]") {
  AnalyzerOptions options;
  options.cache.max_bytes = 4096;
  Analyzer analyzer(options);
  for (int i = 0; i < 200; ++i) {
    analyzer.analyze(Dialect::kMysql, "SELECT c" + std::to_string(i) + " FROM t");
    CHECK(analyzer.cache_bytes() <= 4096);
  }
  CHECK(analyzer.counters().cache_evictions > 0);
  const std::string huge = "SELECT " + std::string(8000, 'x') + " FROM big";
  const Analysis& a = analyzer.analyze(Dialect::kMysql, huge);
  CHECK(a.summary == "SELECT big");
  CHECK(analyzer.counters().cache_rejected == 1);
  CHECK(analyzer.cache_bytes() <= 4096);
}

TEST_CASE("analyzer: text libpg_query rejects falls back to the lexer, counted once",
          "[sql][analyzer]") {
  Analyzer analyzer;
  for (int i = 0; i < 3; ++i) {
    const Analysis& a = analyzer.analyze(Dialect::kPostgresql, "UPDATE t SET x = 1 WHERE");
    CHECK(a.source == AnalysisSource::kLexerFallback);
    CHECK(a.summary == "UPDATE t");
  }
  CHECK(analyzer.counters().parse_failures == 1);
  CHECK(analyzer.counters().parses == 1);
}

TEST_CASE("analyzer: text with NUL bytes and empty text", "[sql][analyzer]") {
  Analyzer analyzer;
  const Analysis& e = analyzer.analyze(Dialect::kPostgresql, "");
  CHECK(e.operation.empty());
  CHECK(e.normalized.empty());
  const std::string nul("SELECT 1\0 FROM x", 16);
  const Analysis& a = analyzer.analyze(Dialect::kPostgresql, nul);
  CHECK(a.operation == "SELECT");
  const Analysis& m = analyzer.analyze(Dialect::kMysql, nul);
  CHECK(m.operation == "SELECT");
}

TEST_CASE("analyzer: deep nesting is bounded and does not crash", "[sql][analyzer]") {
  Analyzer analyzer;
  const std::string deep = "SELECT " + std::string(5000, '(') + "1" + std::string(5000, ')');
  for (Dialect d : {Dialect::kPostgresql, Dialect::kMysql}) {
    const Analysis& a = analyzer.analyze(d, deep);
    CHECK(a.operation == "SELECT");
  }
}

TEST_CASE("keywords: every listed keyword is found whatever its case", "[sql]") {
  for (const char* k : {"SELECT", "select", "SeLeCt", "sql_calc_found_rows", "ADD", "WITHIN"}) {
    CHECK(dbwarden::sql::is_keyword(k));
  }
  for (const char* w : {"accounts", "", "S", "SELECTX", "count"}) {
    CHECK_FALSE(dbwarden::sql::is_keyword(w));
  }
}

TEST_CASE("mysql lexer: version comments, hints and dash comments", "[sql][lexer]") {
  using dbwarden::sql::MysqlLexer;
  using dbwarden::sql::TokenKind;
  const std::string_view sql = "/*!50001 SELECT */ 1--x\n-- c\n/*+ hint */";
  MysqlLexer lexer(sql);
  std::vector<std::pair<TokenKind, std::string>> got;
  for (auto t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
    got.emplace_back(t.kind, std::string(t.text(sql)));
  }
  const std::vector<std::pair<TokenKind, std::string>> want = {
      {TokenKind::kComment, "/*!50001"},
      {TokenKind::kWord, "SELECT"},
      {TokenKind::kComment, "*/"},
      {TokenKind::kNumber, "1"},
      {TokenKind::kOperator, "-"},
      {TokenKind::kOperator, "-"},
      {TokenKind::kWord, "x"},
      {TokenKind::kComment, "-- c"},
      {TokenKind::kComment, "/*+ hint */"}};
  CHECK(got == want);
}

TEST_CASE("analyzer: plain PostgreSQL DML skips the grammar, counted", "[sql][analyzer]") {
  Analyzer analyzer;
  const Analysis& a =
      analyzer.analyze(Dialect::kPostgresql, "UPDATE Accounts SET x = 1 WHERE id = 3");
  CHECK(a.source == AnalysisSource::kLexer);
  CHECK(a.summary == "UPDATE accounts");
  CHECK_FALSE(a.unbounded_write);
  const Analysis& b = analyzer.analyze(Dialect::kPostgresql, "DELETE FROM s.logs");
  CHECK(b.source == AnalysisSource::kLexer);
  CHECK(b.unbounded_write);
  CHECK(analyzer.counters().parses == 0);
  CHECK(analyzer.counters().parses_skipped == 2);
}
