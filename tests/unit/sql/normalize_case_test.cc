// SPDX-License-Identifier: Apache-2.0
//
// The normaliser's case folding: keywords come out as the keyword list spells
// them, PostgreSQL identifiers in lower case (eight bytes at a time, the last
// eight overlapping), MySQL identifiers as written. Every word length from 1
// to 40, with letters of both cases, digits, '_', '$' and UTF-8 bytes at
// every position, must fold as a byte-by-byte reference does.
#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "sql/keywords.h"
#include "sql/normalize.h"

namespace {

using dbwarden::sql::Dialect;
using dbwarden::sql::normalize;

std::string lower_reference(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace

TEST_CASE("normalize: identifiers of every length fold to lower case byte for byte",
          "[sql][normalize]") {
  std::mt19937 rng(20261126);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$\xc3\xa9\xe2\x82\xac";
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  size_t wrong = 0;
  for (size_t length = 1; length <= 40; ++length) {
    for (int n = 0; n < 200; ++n) {
      std::string word = "Q";  // a letter first: one identifier token
      while (word.size() < length) word += alphabet[pick(rng)];
      if (dbwarden::sql::is_keyword(word)) continue;
      const std::string text = "select " + word + " FROM T" + word;
      const std::string got = normalize(Dialect::kPostgresql, text);
      const std::string want =
          "SELECT " + lower_reference(word) + " FROM t" + lower_reference(word);
      if (got != want) {
        ++wrong;
        UNSCOPED_INFO(text << " -> " << got);
      }
      // MySQL keeps identifiers as written; keywords still fold.
      CHECK(normalize(Dialect::kMysql, text) == "SELECT " + word + " FROM T" + word);
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("normalize: keywords come out in the list's spelling, IN/VALUES/ARRAY still collapse",
          "[sql][normalize]") {
  CHECK(normalize(Dialect::kPostgresql, "sElEcT a FrOm t wHeRe b iN (1, 2, 3)") ==
        "SELECT a FROM t WHERE b IN (?)");
  CHECK(normalize(Dialect::kPostgresql, "insert into t values (1, 'x'), (2, 'y')") ==
        "INSERT INTO t VALUES (?, ?)");
  CHECK(normalize(Dialect::kPostgresql, "select array[1,2]") == "SELECT ARRAY[?]");
}
