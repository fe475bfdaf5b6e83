// SPDX-License-Identifier: Apache-2.0
//
// is_keyword and keyword_upper are a perfect hash over the keyword list: they
// must answer (membership, and the entry in its upper-case spelling) exactly
// as a plain case-insensitive search of that list, on every keyword and on
// the words closest to them (one byte changed, dropped or added, prefixes,
// other bytes that fold alike under the hash's OR 0x20).
#include "sql/keywords.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <string_view>

namespace {

using dbwarden::sql::is_keyword;
using dbwarden::sql::keyword_list;
using dbwarden::sql::keyword_upper;

// The reference: the list searched one entry at a time; the entry found, or
// an empty view.
std::string_view listed(std::string_view word) {
  const auto list = keyword_list();
  const auto it = std::find_if(list.begin(), list.end(), [&](std::string_view k) {
    if (k.size() != word.size()) return false;
    for (size_t i = 0; i < k.size(); ++i) {
      char c = word[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      if (c != k[i]) return false;
    }
    return true;
  });
  return it == list.end() ? std::string_view() : *it;
}

size_t mismatches = 0;
size_t checked = 0;

void agree(const std::string& word) {
  ++checked;
  const std::string_view expected = listed(word);
  if (is_keyword(word) != !expected.empty() || keyword_upper(word) != expected) {
    ++mismatches;
    UNSCOPED_INFO("disagree on \"" << word << "\"");
  }
}

}  // namespace

TEST_CASE("keywords: the list is sorted, upper case and within the length bounds", "[sql]") {
  const auto list = keyword_list();
  REQUIRE(list.size() > 100);
  CHECK(std::is_sorted(list.begin(), list.end()));
  for (std::string_view k : list) {
    CHECK(k.size() >= 2);
    CHECK(k.size() <= 19);
    for (char c : k) CHECK(((c >= 'A' && c <= 'Z') || c == '_'));
  }
}

TEST_CASE("keywords: the perfect hash agrees with a search of the list", "[sql]") {
  mismatches = 0;
  checked = 0;
  // Bytes a neighbour may differ by: letters of both cases, and the bytes
  // that OR 0x20 folds onto letters or '_' ('@', '[', '\x7f', ...).
  std::string alphabet = "_$0123456789@[\\]^`{|}~\x7f\x80\xc3";
  for (char c = 'A'; c <= 'Z'; ++c) alphabet += {c, static_cast<char>(c + 32)};
  for (std::string_view k : keyword_list()) {
    std::string upper(k);
    std::string lower = upper;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
    CHECK(is_keyword(upper));
    CHECK(is_keyword(lower));
    agree(upper);
    agree(lower);
    for (size_t i = 0; i < upper.size(); ++i) {
      // Each byte replaced by each other byte of the alphabet.
      for (char c : alphabet) {
        std::string w = lower;
        w[i] = c;
        agree(w);
      }
      // One byte dropped; a prefix.
      agree(lower.substr(0, i) + lower.substr(i + 1));
      agree(upper.substr(0, i));
    }
    for (char c : alphabet) {
      agree(lower + c);
      agree(c + lower);
    }
  }
  // Random words of keyword lengths (fixed seed: replayable).
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> length(0, 21);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  for (int n = 0; n < 200'000; ++n) {
    std::string w(length(rng), ' ');
    for (char& c : w) c = alphabet[pick(rng)];
    agree(w);
  }
  INFO(checked << " words checked");
  CHECK(mismatches == 0);
}
