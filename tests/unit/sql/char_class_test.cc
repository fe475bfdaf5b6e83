// SPDX-License-Identifier: Apache-2.0
//
// The byte classes are a table: each must answer, for all 256 bytes, as the
// rule it encodes spelled out.
#include "sql/char_class.h"

#include <catch2/catch.hpp>

namespace chars = dbwarden::sql::chars;

TEST_CASE("char classes: the table agrees with the rules on every byte", "[sql][lexer]") {
  for (int i = 0; i < 256; ++i) {
    const auto c = static_cast<unsigned char>(i);
    INFO("byte " << i);
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    const bool digit = c >= '0' && c <= '9';
    const bool start = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
    CHECK(chars::is_space(c) == space);
    CHECK(chars::is_digit(c) == digit);
    CHECK(chars::is_ident_start(c) == start);
    CHECK(chars::is_ident_cont(c) == (start || digit || c == '$'));
  }
}
