// SPDX-License-Identifier: Apache-2.0
#include "protocol/pgsql/split.h"

#include <catch2/catch.hpp>
#include <iterator>
#include <random>
#include <string>
#include <vector>

using dbwarden::pgsql::SplitStatements;
using dbwarden::pgsql::SqlPiece;

namespace {
std::vector<std::string> Split(std::string_view sql) {
  std::vector<SqlPiece> pieces;
  SplitStatements(sql, &pieces);
  std::vector<std::string> out;
  for (const SqlPiece& p : pieces) out.emplace_back(sql.substr(p.offset, p.length));
  return out;
}
using V = std::vector<std::string>;
}  // namespace

TEST_CASE("pgsql split: top-level semicolons only", "[pgsql]") {
  CHECK(Split("SELECT 1") == V{"SELECT 1"});
  CHECK(Split("  SELECT 1 ;  SELECT 2;") == V{"SELECT 1", "SELECT 2"});
  CHECK(Split("SELECT 'a;b'; SELECT 'it''s;'") == V{"SELECT 'a;b'", "SELECT 'it''s;'"});
  CHECK(Split(R"(SELECT E'x\';y'; SELECT 2)") == V{R"(SELECT E'x\';y')", "SELECT 2"});
  CHECK(Split(R"(SELECT 'x\'; SELECT 2)") == V{R"(SELECT 'x\')", "SELECT 2"});
  CHECK(Split(R"(SELECT "a;""b" FROM t; SELECT 2)") == V{R"(SELECT "a;""b" FROM t)", "SELECT 2"});
  CHECK(Split("SELECT $$a;b$$; SELECT $f$ $$; $f$") == V{"SELECT $$a;b$$", "SELECT $f$ $$; $f$"});
  CHECK(Split("SELECT $1; SELECT $2") == V{"SELECT $1", "SELECT $2"});
  CHECK(Split("SELECT a$b; SELECT 2") == V{"SELECT a$b", "SELECT 2"});
  CHECK(Split("SELECT 1 -- x;y\n; SELECT 2") == V{"SELECT 1 -- x;y", "SELECT 2"});
  CHECK(Split("SELECT /* a /* nested; */ still; */ 1; SELECT 2") ==
        V{"SELECT /* a /* nested; */ still; */ 1", "SELECT 2"});
}

TEST_CASE("pgsql split: empty pieces are dropped", "[pgsql]") {
  CHECK(Split("").empty());
  CHECK(Split(" ; ;; ").empty());
  CHECK(Split("-- only a comment").empty());
  CHECK(Split("SELECT 1; -- trailing comment") == V{"SELECT 1"});
  CHECK(Split("/* c */ ; SELECT 1") == V{"SELECT 1"});
}

TEST_CASE("pgsql split: BEGIN ATOMIC bodies stay whole", "[pgsql]") {
  const std::string f =
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN "
      "true THEN 2 END; END";
  CHECK(Split(f + "; SELECT 3") == V{f, "SELECT 3"});
  CHECK(Split("BEGIN; SELECT 1; END") == V{"BEGIN", "SELECT 1", "END"});
}

TEST_CASE("pgsql split: unterminated quotes swallow the rest", "[pgsql]") {
  CHECK(Split("SELECT 'abc; SELECT 2") == V{"SELECT 'abc; SELECT 2"});
  CHECK(Split("SELECT $$abc; SELECT 2") == V{"SELECT $$abc; SELECT 2"});
  CHECK(Split("SELECT /* abc; SELECT 2") == V{"SELECT /* abc; SELECT 2"});
}

TEST_CASE("pgsql split: the one-statement fast paths agree with the lexer", "[pgsql]") {
  // Texts built from the pieces that change how ';' splits (quotes, dollar quotes,
  // comments, BEGIN ATOMIC bodies, blanks, trailing ';'), fixed seed: SplitStatements
  // must give exactly what the byte-wise lexer gives, whichever path it takes.
  static const char* const kParts[] = {"SELECT 1",
                                       " ",
                                       ";",
                                       "'",
                                       "\"",
                                       "$$",
                                       "$1",
                                       "--",
                                       "\n",
                                       "/*",
                                       "*/",
                                       "CREATE ",
                                       "FUNCTION f() ",
                                       "BEGIN ",
                                       "ATOMIC ",
                                       "atomic",
                                       "END",
                                       "a",
                                       "E'\\'",
                                       "\t",
                                       ";;",
                                       "x"};
  std::mt19937 rng(4242);
  std::vector<SqlPiece> fast, lexer;
  for (int round = 0; round < 200000; ++round) {
    std::string sql;
    const size_t parts = rng() % 9;
    for (size_t i = 0; i < parts; ++i) sql += kParts[rng() % std::size(kParts)];
    SplitStatements(sql, &fast);
    dbwarden::pgsql::SplitStatementsByLexer(sql, &lexer);
    REQUIRE(fast.size() == lexer.size());
    for (size_t i = 0; i < fast.size(); ++i) {
      INFO(sql);
      REQUIRE(fast[i].offset == lexer[i].offset);
      REQUIRE(fast[i].length == lexer[i].length);
    }
  }
  // The shapes the fast paths are for.
  CHECK(Split("SELECT abalance FROM pgbench_accounts WHERE aid = 42;") ==
        V{"SELECT abalance FROM pgbench_accounts WHERE aid = 42"});
  CHECK(Split("  UPDATE t SET x = 1 ;; \n") == V{"UPDATE t SET x = 1"});
  CHECK(Split("SELECT 'a;b';") == V{"SELECT 'a;b'"});
}

TEST_CASE("pgsql split: each sensitive byte at every position of a plain run", "[pgsql]") {
  // The fast path looks for these bytes sixteen at a time: put each one at
  // every position (both sides of each 16-byte block edge) of plain texts of
  // 1..70 bytes, with and without a trailing ';', and compare with the lexer.
  std::vector<SqlPiece> fast, lexer;
  for (const char* insert : {";", "'", "\"", "$$", "--", "/*", "ATOMIC ", "atomic ", "a", "A"}) {
    for (size_t len = 1; len <= 70; ++len) {
      for (size_t at = 0; at <= len; ++at) {
        for (const char* tail : {"", ";", " ; 'x';"}) {
          std::string sql(len, 'x');
          sql.insert(at, insert);
          sql += tail;
          SplitStatements(sql, &fast);
          dbwarden::pgsql::SplitStatementsByLexer(sql, &lexer);
          INFO(sql);
          REQUIRE(fast.size() == lexer.size());
          for (size_t i = 0; i < fast.size(); ++i) {
            REQUIRE(fast[i].offset == lexer[i].offset);
            REQUIRE(fast[i].length == lexer[i].length);
          }
        }
      }
    }
  }
}

TEST_CASE("pgsql split: BEGIN ATOMIC found wherever it sits in the 16-byte blocks", "[pgsql]") {
  // The 16-byte search stops at an 'a' only before a 't' (or at a block's
  // last byte). An unfinished BEGIN ATOMIC body keeps its trailing ';', which
  // a one-statement answer would cut off: ATOMIC in any case, shifted over
  // both sides of each block edge, among a's that are not ATOMIC, must split
  // as the lexer does.
  std::vector<SqlPiece> fast, lexer;
  for (const char* atomic : {"ATOMIC", "atomic", "aTOMIC", "Atomic"}) {
    for (size_t lead = 0; lead < 20; ++lead) {
      for (size_t gap = 1; gap < 20; ++gap) {
        const std::string sql = std::string(lead, ' ') + "CREATE FUNCTION fa() RETURNS int BEGIN" +
                                std::string(gap, ' ') + atomic + " SELECT abalance FROM ta;";
        SplitStatements(sql, &fast);
        dbwarden::pgsql::SplitStatementsByLexer(sql, &lexer);
        INFO(sql);
        REQUIRE(lexer.size() == 1);
        REQUIRE(sql[lexer[0].offset + lexer[0].length - 1] == ';');  // kept in the body
        REQUIRE(fast.size() == 1);
        REQUIRE(fast[0].offset == lexer[0].offset);
        REQUIRE(fast[0].length == lexer[0].length);
      }
    }
  }
}
