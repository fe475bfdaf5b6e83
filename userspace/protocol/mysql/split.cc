// SPDX-License-Identifier: Apache-2.0
#include "protocol/mysql/split.h"

namespace dbwarden::mysql {
namespace {

bool IsBlank(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t SkipLine(std::string_view s, size_t i) {
  while (i < s.size() && s[i] != '\n') ++i;
  return i;
}

// A comment or blank run starting at i: returns its end, or i if none.
size_t SkipNonSql(std::string_view s, size_t i) {
  const unsigned char c = s[i];
  if (IsBlank(c)) return i + 1;
  if (c == '#') return SkipLine(s, i);
  if (c == '-' && i + 1 < s.size() && s[i + 1] == '-' &&
      (i + 2 == s.size() || static_cast<unsigned char>(s[i + 2]) <= ' ')) {
    return SkipLine(s, i);
  }
  if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
    const size_t end = s.find("*/", i + 2);
    return end == std::string_view::npos ? s.size() : end + 2;
  }
  return i;
}

void AddPiece(std::string_view s, size_t begin, size_t end, std::vector<SqlPiece>* out) {
  // Trim blanks and comments at the front, blanks at the back; drop pieces
  // that hold no SQL at all.
  while (begin < end) {
    const size_t next = SkipNonSql(s.substr(0, end), begin);
    if (next == begin) break;
    begin = next;
  }
  while (end > begin && IsBlank(static_cast<unsigned char>(s[end - 1]))) --end;
  if (begin < end) out->push_back({begin, end - begin});
}

}  // namespace

void SplitStatements(std::string_view s, bool backslash_escapes, std::vector<SqlPiece>* out) {
  out->clear();
  size_t start = 0;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\'' || c == '"') {
      i = SkipQuoted(s, i, c, backslash_escapes);
    } else if (c == '`') {
      i = SkipQuoted(s, i, '`', false);
    } else if (c == ';') {
      AddPiece(s, start, i, out);
      start = ++i;
    } else {
      const size_t next = SkipNonSql(s, i);
      i = next == i ? i + 1 : next;
    }
  }
  AddPiece(s, start, s.size(), out);
}

std::optional<std::string> UseSchema(std::string_view p) {
  if (p.size() < 5) return std::nullopt;
  for (size_t i = 0; i < 3; ++i) {
    if ((p[i] & ~0x20) != "USE"[i]) return std::nullopt;
  }
  size_t i = 3;
  if (!IsBlank(static_cast<unsigned char>(p[i])) && p[i] != '`') return std::nullopt;
  while (i < p.size() && IsBlank(static_cast<unsigned char>(p[i]))) ++i;
  std::string name;
  if (i < p.size() && p[i] == '`') {
    for (++i; i < p.size(); ++i) {
      if (p[i] != '`') {
        name.push_back(p[i]);
      } else if (i + 1 < p.size() && p[i + 1] == '`') {
        name.push_back('`');
        ++i;
      } else {
        break;
      }
    }
    if (i >= p.size()) return std::nullopt;  // unterminated
    ++i;
  } else {
    while (i < p.size() && !IsBlank(static_cast<unsigned char>(p[i])) && p[i] != ';') {
      name.push_back(p[i++]);
    }
  }
  while (i < p.size() && IsBlank(static_cast<unsigned char>(p[i]))) ++i;
  if (name.empty() || i != p.size()) return std::nullopt;
  return name;
}

bool IsCall(std::string_view p) {
  if (p.size() < 4) return false;
  for (size_t i = 0; i < 4; ++i) {
    char c = p[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != "CALL"[i]) return false;
  }
  if (p.size() == 4) return true;
  const unsigned char n = p[4];
  return IsBlank(n) || n == '(' || n == '`' || n == '/';
}

}  // namespace dbwarden::mysql
