// SPDX-License-Identifier: Apache-2.0
#include "policy/glob.h"

#include <cstddef>

namespace dbwarden::policy {
namespace {

char fold(char c, bool casefold) {
  return casefold && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// The class starting at pattern[p] == '['; sets `end` to the index after its
// ']'. Returns whether `c` is in it.
bool in_class(std::string_view pattern, size_t p, char c, bool casefold, size_t& end) {
  size_t i = p + 1;
  bool negate = false;
  if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
    negate = true;
    ++i;
  }
  bool found = false;
  bool first = true;
  const char fc = fold(c, casefold);
  while (i < pattern.size() && (first || pattern[i] != ']')) {
    first = false;
    char lo = pattern[i];
    if (lo == '\\' && i + 1 < pattern.size()) lo = pattern[++i];
    char hi = lo;
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      hi = pattern[i + 2];
      if (hi == '\\' && i + 3 < pattern.size()) {
        hi = pattern[i + 3];
        ++i;
      }
      i += 2;
    }
    if (fold(lo, casefold) <= fc && fc <= fold(hi, casefold)) found = true;
    if (c >= lo && c <= hi) found = true;
    ++i;
  }
  end = i + 1;  // past ']' (glob_error guarantees it is there)
  return found != negate;
}

}  // namespace

std::string glob_error(std::string_view pattern) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (i + 1 == pattern.size()) return "ends with a lone backslash";
      ++i;
    } else if (pattern[i] == '[') {
      size_t k = i + 1;
      if (k < pattern.size() && (pattern[k] == '!' || pattern[k] == '^')) ++k;
      if (k < pattern.size() && pattern[k] == ']') ++k;  // a leading ']' is literal
      while (k < pattern.size() && pattern[k] != ']') {
        if (pattern[k] == '\\') ++k;
        ++k;
      }
      if (k >= pattern.size()) return "has a '[' without its ']'";
      i = k;
    }
  }
  return "";
}

bool glob_match(std::string_view pattern, std::string_view text, bool casefold) {
  size_t p = 0, t = 0;
  size_t star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      const char pc = pattern[p];
      if (pc == '*') {
        star_p = ++p;
        star_t = t;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++t;
        continue;
      }
      if (pc == '[') {
        size_t end = 0;
        if (in_class(pattern, p, text[t], casefold, end)) {
          p = end;
          ++t;
          continue;
        }
      } else {
        size_t q = p;
        if (pc == '\\' && q + 1 < pattern.size()) ++q;
        if (fold(pattern[q], casefold) == fold(text[t], casefold)) {
          p = q + 1;
          ++t;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace dbwarden::policy
