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

// Eight bytes folded at once must fold each byte as to_lower does, whatever
// its neighbours (no carry between bytes): each byte value at each position,
// among random neighbours (fixed seed).
TEST_CASE("char classes: fold_lower8 folds every byte at every position as to_lower",
          "[sql][lexer]") {
  uint64_t state = 0x243f6a8885a308d3ULL;  // xorshift64, replayable
  const auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  size_t wrong = 0;
  for (int round = 0; round < 64; ++round) {
    for (int pos = 0; pos < 8; ++pos) {
      for (int v = 0; v < 256; ++v) {
        uint64_t w = round == 0 ? 0 : round == 1 ? ~uint64_t{0} : next();
        w = (w & ~(uint64_t{0xff} << (8 * pos))) | (uint64_t(v) << (8 * pos));
        const uint64_t got = chars::fold_lower8(w);
        for (int b = 0; b < 8; ++b) {
          const auto in = static_cast<unsigned char>(w >> (8 * b));
          const auto out = static_cast<unsigned char>(got >> (8 * b));
          if (out != chars::to_lower(in)) ++wrong;
        }
      }
    }
  }
  CHECK(wrong == 0);
}
