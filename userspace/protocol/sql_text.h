// SPDX-License-Identifier: Apache-2.0
//
// Pieces the per-protocol statement splitters (pgsql/split.h, mysql/split.h)
// share. Which quotes exist and whether backslash escapes apply differ per
// server; how a quoted run ends does not. Header-only: the splitters run over
// every query string, and protocol/ has no library of its own.
#pragma once

#include <cstddef>
#include <string_view>

namespace dbwarden {

// One statement of a multi-statement query string.
struct SqlPiece {
  size_t offset = 0;  // into the query string; blanks around the piece trimmed
  size_t length = 0;  // excludes the ';'
};

// `open` is the index of the opening `quote`; returns the index after the
// closing one, or s.size() for an unterminated literal. A doubled quote is an
// escaped quote; with `backslash_escapes`, a backslash escapes the next byte.
inline size_t SkipQuoted(std::string_view s, size_t open, char quote, bool backslash_escapes) {
  size_t i = open + 1;
  while (i < s.size()) {
    if (backslash_escapes && s[i] == '\\') {
      i += 2;
    } else if (s[i] == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        i += 2;
      } else {
        return i + 1;
      }
    } else {
      ++i;
    }
  }
  return s.size();
}

}  // namespace dbwarden
