// SPDX-License-Identifier: Apache-2.0
#include "protocol/mysql/split.h"

#include <catch2/catch.hpp>

using dbwarden::mysql::IsCall;
using dbwarden::mysql::SplitStatements;
using dbwarden::mysql::SqlPiece;

namespace {
std::vector<std::string> Split(std::string_view sql, bool backslash = true) {
  std::vector<SqlPiece> pieces;
  SplitStatements(sql, backslash, &pieces);
  std::vector<std::string> out;
  for (const SqlPiece& p : pieces) out.emplace_back(sql.substr(p.offset, p.length));
  return out;
}
using V = std::vector<std::string>;
}  // namespace

TEST_CASE("mysql split: quotes, identifiers, comments", "[mysql]") {
  CHECK(Split("SELECT 1; SELECT 2") == V{"SELECT 1", "SELECT 2"});
  CHECK(Split("SELECT 'a;b', \"c;d\", `e;f`") == V{"SELECT 'a;b', \"c;d\", `e;f`"});
  CHECK(Split("SELECT 'it''s;'; SELECT 2") == V{"SELECT 'it''s;'", "SELECT 2"});
  CHECK(Split("SELECT 'a\\';b'; SELECT 2") == V{"SELECT 'a\\';b'", "SELECT 2"});
  // NO_BACKSLASH_ESCAPES: the backslash is an ordinary byte.
  CHECK(Split("SELECT 'a\\'; SELECT 2", false) == V{"SELECT 'a\\'", "SELECT 2"});
  CHECK(Split("SELECT `a``;b`; X") == V{"SELECT `a``;b`", "X"});
  CHECK(Split("SELECT 1 -- c;\n; SELECT 2") == V{"SELECT 1 -- c;", "SELECT 2"});
  CHECK(Split("SELECT 1 --c; SELECT 2") == V{"SELECT 1 --c", "SELECT 2"});  // not a comment
  CHECK(Split("SELECT 1 # c;\n; SELECT 2") == V{"SELECT 1 # c;", "SELECT 2"});
  CHECK(Split("/* ; */ SELECT 1 /* ; /* ; */; SELECT 2") == V{"SELECT 1 /* ; /* ; */", "SELECT 2"});
  CHECK(Split(" ;; -- only\n ; /* c */ ").empty());
  CHECK(Split("SELECT 'unterminated; x") == V{"SELECT 'unterminated; x"});
  CHECK(Split("") == V{});
}

TEST_CASE("mysql split: CALL detection", "[mysql]") {
  CHECK(IsCall("CALL p()"));
  CHECK(IsCall("call\tp"));
  CHECK(IsCall("CALL`p`"));
  CHECK_FALSE(IsCall("CALLER()"));
  CHECK_FALSE(IsCall("SELECT 1"));
}
