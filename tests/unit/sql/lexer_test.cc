// SPDX-License-Identifier: Apache-2.0
#include "sql/lexer.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using dbwarden::sql::Lexer;
using dbwarden::sql::Token;
using dbwarden::sql::TokenKind;

struct Lexed {
  TokenKind kind;
  std::string text;
  bool unterminated;
  bool operator==(const Lexed& o) const {
    return kind == o.kind && text == o.text && unterminated == o.unterminated;
  }
};

std::ostream& operator<<(std::ostream& os, const Lexed& l) {
  return os << "{" << static_cast<int>(l.kind) << ", \"" << l.text << "\", " << l.unterminated
            << "}";
}

std::vector<Lexed> lex(std::string_view sql) {
  std::vector<Lexed> out;
  Lexer lexer(sql);
  for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
    REQUIRE(t.begin < t.end);  // progress, always
    REQUIRE(t.end <= sql.size());
    out.push_back({t.kind, std::string(t.text(sql)), t.unterminated});
  }
  return out;
}

constexpr auto W = TokenKind::kWord;
constexpr auto Q = TokenKind::kQuotedIdent;
constexpr auto S = TokenKind::kString;
constexpr auto D = TokenKind::kDollarString;
constexpr auto N = TokenKind::kNumber;
constexpr auto P = TokenKind::kParam;
constexpr auto O = TokenKind::kOperator;
constexpr auto U = TokenKind::kPunct;
constexpr auto C = TokenKind::kComment;
constexpr auto X = TokenKind::kOther;

}  // namespace

TEST_CASE("lexer: plain statement", "[sql][lexer]") {
  CHECK(lex("SELECT a, b FROM t WHERE id = $1;") == std::vector<Lexed>{{W, "SELECT", false},
                                                                       {W, "a", false},
                                                                       {U, ",", false},
                                                                       {W, "b", false},
                                                                       {W, "FROM", false},
                                                                       {W, "t", false},
                                                                       {W, "WHERE", false},
                                                                       {W, "id", false},
                                                                       {O, "=", false},
                                                                       {P, "$1", false},
                                                                       {U, ";", false}});
}

TEST_CASE("lexer: empty and whitespace-only text", "[sql][lexer]") {
  CHECK(lex("").empty());
  CHECK(lex(" \t\r\n\f\v").empty());
  Lexer lexer("");
  CHECK(lexer.next().kind == TokenKind::kEnd);
  CHECK(lexer.next().kind == TokenKind::kEnd);  // stays at the end
}

TEST_CASE("lexer: standard strings with doubled quotes", "[sql][lexer]") {
  CHECK(lex("'it''s' x") == std::vector<Lexed>{{S, "'it''s'", false}, {W, "x", false}});
  CHECK(lex("''") == std::vector<Lexed>{{S, "''", false}});
  CHECK(lex("''''") == std::vector<Lexed>{{S, "''''", false}});
  // Backslash is an ordinary character in a standard string.
  CHECK(lex(R"('a\' b)") == std::vector<Lexed>{{S, R"('a\')", false}, {W, "b", false}});
  CHECK(lex("'-- not a comment' /* c */") ==
        std::vector<Lexed>{{S, "'-- not a comment'", false}, {C, "/* c */", false}});
}

TEST_CASE("lexer: escape strings", "[sql][lexer]") {
  CHECK(lex(R"(E'a\'b' x)") == std::vector<Lexed>{{S, R"(E'a\'b')", false}, {W, "x", false}});
  CHECK(lex(R"(e'a\\' x)") == std::vector<Lexed>{{S, R"(e'a\\')", false}, {W, "x", false}});
  CHECK(lex(R"(E'a''b')") == std::vector<Lexed>{{S, R"(E'a''b')", false}});
  // A backslash as the very last byte must not step past the end.
  CHECK(lex(R"(E'abc\)") == std::vector<Lexed>{{S, R"(E'abc\)", true}});
  CHECK(lex(R"(E'\)") == std::vector<Lexed>{{S, R"(E'\)", true}});
  // Only a lone E is a prefix: "nameE'x'" is an identifier then a string.
  CHECK(lex("abE'x'") == std::vector<Lexed>{{W, "abE", false}, {S, "'x'", false}});
}

TEST_CASE("lexer: prefixed strings and identifiers", "[sql][lexer]") {
  CHECK(lex("B'101' X'ff' N'nat' U&'\\0041'") == std::vector<Lexed>{{S, "B'101'", false},
                                                                    {S, "X'ff'", false},
                                                                    {S, "N'nat'", false},
                                                                    {S, "U&'\\0041'", false}});
  CHECK(lex("U&\"d\\0061t\"") == std::vector<Lexed>{{Q, "U&\"d\\0061t\"", false}});
  CHECK(lex("u & x") == std::vector<Lexed>{{W, "u", false}, {O, "&", false}, {W, "x", false}});
}

TEST_CASE("lexer: quoted identifiers", "[sql][lexer]") {
  CHECK(lex(R"("a ""b""" . "c")") ==
        std::vector<Lexed>{{Q, R"("a ""b""")", false}, {U, ".", false}, {Q, R"("c")", false}});
  CHECK(lex(R"("abc)") == std::vector<Lexed>{{Q, R"("abc)", true}});
  CHECK(lex(R"("")") == std::vector<Lexed>{{Q, R"("")", false}});
}

TEST_CASE("lexer: dollar quotes", "[sql][lexer]") {
  CHECK(lex("$$it's $x$ \"q\"$$ y") ==
        std::vector<Lexed>{{D, "$$it's $x$ \"q\"$$", false}, {W, "y", false}});
  CHECK(lex("$fn$ a $$ b $fn$;") ==
        std::vector<Lexed>{{D, "$fn$ a $$ b $fn$", false}, {U, ";", false}});
  // Tags are case-sensitive.
  CHECK(lex("$a$ x $A$") == std::vector<Lexed>{{D, "$a$ x $A$", true}});
  CHECK(lex("$tag$ never closed") == std::vector<Lexed>{{D, "$tag$ never closed", true}});
  CHECK(lex("$$") == std::vector<Lexed>{{D, "$$", true}});
  CHECK(lex("$_t1$ $_t1$") == std::vector<Lexed>{{D, "$_t1$ $_t1$", false}});
  // A '$' inside an identifier belongs to it and does not open a quote.
  CHECK(lex("a$b$ c") == std::vector<Lexed>{{W, "a$b$", false}, {W, "c", false}});
  // "$1x$" is a parameter then a word; a tag cannot start with a digit.
  CHECK(lex("$12 $") == std::vector<Lexed>{{P, "$12", false}, {X, "$", false}});
  CHECK(lex("$a b$") == std::vector<Lexed>{{X, "$", false}, {W, "a", false}, {W, "b$", false}});
}

TEST_CASE("lexer: comments", "[sql][lexer]") {
  CHECK(lex("-- c\nSELECT") == std::vector<Lexed>{{C, "-- c", false}, {W, "SELECT", false}});
  CHECK(lex("--") == std::vector<Lexed>{{C, "--", false}});
  CHECK(lex("-- c\r\nx") == std::vector<Lexed>{{C, "-- c", false}, {W, "x", false}});
  CHECK(lex("/* a /* b */ c */ x") ==
        std::vector<Lexed>{{C, "/* a /* b */ c */", false}, {W, "x", false}});
  CHECK(lex("/* a /* b */ c") == std::vector<Lexed>{{C, "/* a /* b */ c", true}});
  CHECK(lex("/*/ x") == std::vector<Lexed>{{C, "/*/ x", true}});
  CHECK(lex("/**/x") == std::vector<Lexed>{{C, "/**/", false}, {W, "x", false}});
  CHECK(lex("/*") == std::vector<Lexed>{{C, "/*", true}});
  CHECK(lex("/* '*/ 'x'") == std::vector<Lexed>{{C, "/* '*/", false}, {S, "'x'", false}});
}

TEST_CASE("lexer: operators stop before comments", "[sql][lexer]") {
  CHECK(lex("a<=b") == std::vector<Lexed>{{W, "a", false}, {O, "<=", false}, {W, "b", false}});
  CHECK(lex("a+-- c\nb") ==
        std::vector<Lexed>{{W, "a", false}, {O, "+", false}, {C, "-- c", false}, {W, "b", false}});
  CHECK(lex("a*/*c*/b") ==
        std::vector<Lexed>{{W, "a", false}, {O, "*", false}, {C, "/*c*/", false}, {W, "b", false}});
  CHECK(lex("x::int") == std::vector<Lexed>{{W, "x", false}, {U, "::", false}, {W, "int", false}});
  CHECK(lex("a[1:2]") == std::vector<Lexed>{{W, "a", false},
                                            {U, "[", false},
                                            {N, "1", false},
                                            {U, ":", false},
                                            {N, "2", false},
                                            {U, "]", false}});
}

TEST_CASE("lexer: numbers", "[sql][lexer]") {
  CHECK(lex("1 3.14 .5 1e10 2.5E-3 0x1F 1_000 5.") == std::vector<Lexed>{{N, "1", false},
                                                                         {N, "3.14", false},
                                                                         {N, ".5", false},
                                                                         {N, "1e10", false},
                                                                         {N, "2.5E-3", false},
                                                                         {N, "0x1F", false},
                                                                         {N, "1_000", false},
                                                                         {N, "5.", false}});
  CHECK(lex("1-2") == std::vector<Lexed>{{N, "1", false}, {O, "-", false}, {N, "2", false}});
  CHECK(lex("1e-2") == std::vector<Lexed>{{N, "1e-2", false}});
  CHECK(lex("a.b") == std::vector<Lexed>{{W, "a", false}, {U, ".", false}, {W, "b", false}});
}

TEST_CASE("lexer: non-ASCII identifiers and stray bytes", "[sql][lexer]") {
  CHECK(lex("SELECT \xc3\xa9t\xc3\xa9") ==
        std::vector<Lexed>{{W, "SELECT", false}, {W, "\xc3\xa9t\xc3\xa9", false}});
  const std::string with_nul("a\0b", 3);
  CHECK(lex(with_nul) ==
        std::vector<Lexed>{{W, "a", false}, {X, std::string(1, '\0'), false}, {W, "b", false}});
  CHECK(lex("\\dt") == std::vector<Lexed>{{X, "\\", false}, {W, "dt", false}});
}

TEST_CASE("lexer: next_significant skips comments", "[sql][lexer]") {
  const std::string_view sql = "/* a */ -- b\n SELECT /* c */ 1";
  Lexer lexer(sql);
  Token t = lexer.next_significant();
  CHECK(t.text(sql) == "SELECT");
  t = lexer.next_significant();
  CHECK(t.text(sql) == "1");
  CHECK(lexer.next_significant().kind == TokenKind::kEnd);
}

TEST_CASE("lexer: every prefix of hostile text scans without over-read", "[sql][lexer]") {
  // Under ASan a read past a prefix's end would be caught: each prefix is
  // copied into its own exactly-sized heap buffer.
  const std::string hostile =
      "E'a\\'b' $t$ x $t$ \"q\"\"q\" /* /* */ */ -- c\n U&'x' $$ $1 0x1e-5 'it''s' ::";
  for (size_t len = 0; len <= hostile.size(); ++len) {
    const std::unique_ptr<char[]> buf(new char[len == 0 ? 1 : len]);
    std::memcpy(buf.get(), hostile.data(), len);
    const std::string_view sql(buf.get(), len);
    Lexer lexer(sql);
    size_t last_end = 0;
    for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
      REQUIRE(t.begin >= last_end);
      REQUIRE(t.end > t.begin);
      REQUIRE(t.end <= len);
      last_end = t.end;
    }
  }
}
