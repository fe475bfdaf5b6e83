// SPDX-License-Identifier: Apache-2.0
#include "protocol/pgsql/split.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <array>

namespace dbwarden::pgsql {
namespace {

bool IsSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
// Identifiers start with a letter, '_' or any non-ASCII byte; later bytes may
// also be digits or '$'.
bool IsIdentStart(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
bool IsIdentChar(unsigned char c) { return IsIdentStart(c) || IsDigit(c) || c == '$'; }

bool EqualsNoCase(std::string_view word, std::string_view upper) {
  if (word.size() != upper.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    char c = word[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != upper[i]) return false;
  }
  return true;
}

size_t SkipBlockComment(std::string_view s, size_t i) {
  int depth = 0;  // comments nest in PostgreSQL, unlike the SQL standard
  while (i < s.size()) {
    if (s[i] == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      ++depth;
      i += 2;
    } else if (s[i] == '*' && i + 1 < s.size() && s[i + 1] == '/') {
      i += 2;
      if (--depth == 0) return i;
    } else {
      ++i;
    }
  }
  return s.size();
}

// Tracks the words of the current statement that decide whether ';' ends it:
// CREATE FUNCTION/PROCEDURE ... BEGIN ATOMIC ... END holds ';' inside, with
// CASE ... END nesting within.
struct AtomicTracker {
  size_t words = 0;
  bool create = false;
  bool after_begin = false;
  int depth = 0;

  void word(std::string_view w) {
    if (words++ == 0) create = EqualsNoCase(w, "CREATE");
    // Only CREATE ... BEGIN ATOMIC bodies matter: skip the keyword tests for
    // every other statement (the common case, on the hot path).
    if (!create) return;
    if (depth > 0) {
      if (EqualsNoCase(w, "CASE") || EqualsNoCase(w, "BEGIN")) ++depth;
      if (EqualsNoCase(w, "END")) --depth;
    } else if (create && after_begin && EqualsNoCase(w, "ATOMIC")) {
      depth = 1;
    }
    after_begin = EqualsNoCase(w, "BEGIN");
  }
  void other_token() { after_begin = false; }
};

// Bytes that may change how ';' splits a text: ';' itself, quote and dollar
// quote openers (they may hide a ';'), comment openers, and the 'a' of ATOMIC
// (a BEGIN ATOMIC body keeps its ';'; the 16-byte search below only stops at
// an 'a' followed by a 't').
constexpr std::array<bool, 256> kSplitSensitive = [] {
  std::array<bool, 256> t{};
  for (unsigned char c : {';', '\'', '"', '$', '-', '/', 'a', 'A'}) t[c] = true;
  return t;
}();

// Index of the first split-sensitive byte in [i, end), or `end`. Sixteen
// bytes at a time where SSE2 is there (every x86-64): this pass runs over
// every query string, and most of their bytes are plain.
size_t NextSensitive(std::string_view sql, size_t i, size_t end) {
#if defined(__SSE2__)
  const auto eq = [](__m128i v, char c) { return _mm_cmpeq_epi8(v, _mm_set1_epi8(c)); };
  while (i + 16 <= end) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sql.data() + i));
    // OR 0x20 maps exactly 'a' and 'A' onto 'a', 't' and 'T' onto 't'.
    const __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
    const auto a = static_cast<unsigned>(_mm_movemask_epi8(eq(folded, 'a')));
    const auto t = static_cast<unsigned>(_mm_movemask_epi8(eq(folded, 't')));
    // An 'a' only matters as the start of ATOMIC: before a 't', or in the
    // block's last byte (its next byte is in the next block). Identifiers
    // are full of other a's (pgbench_accounts, abalance, aid), and each one
    // found was a trip out of this loop and back.
    const unsigned at = a & ((t >> 1) | 0x8000u);
    const __m128i quotes = _mm_or_si128(_mm_or_si128(eq(v, '\''), eq(v, '"')), eq(v, '$'));
    const __m128i others = _mm_or_si128(_mm_or_si128(eq(v, ';'), eq(v, '-')), eq(v, '/'));
    const unsigned mask =
        at | static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(quotes, others)));
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(mask));
    i += 16;
  }
#endif
  while (i < end && !kSplitSensitive[static_cast<unsigned char>(sql[i])]) ++i;
  return i;
}

// True when `sql` is one statement that ends at `end`: nothing but blanks and
// ';' follow `end`, and before it no ';', no comment and, where a ';' follows,
// nothing that could hide or keep that ';' (a quote, dollar quote, ATOMIC).
// Conservative: a false "no" only costs the byte-wise lexer. One table-driven
// pass, where the lexer branches on every byte.
bool IsOneStatement(std::string_view sql, size_t end) {
  const bool semicolon_follows = sql.find(';', end) != std::string_view::npos;
  for (size_t i = NextSensitive(sql, 0, end); i < end; i = NextSensitive(sql, i + 1, end)) {
    const auto c = static_cast<unsigned char>(sql[i]);
    switch (c) {
      case ';':
        return false;
      case '-':
      case '/':
        if (i + 1 < end && sql[i + 1] == (c == '-' ? '-' : '*')) return false;
        break;
      case 'a':
      case 'A':
        if (semicolon_follows && EqualsNoCase(sql.substr(i, 6), "ATOMIC")) return false;
        break;
      default:  // a quote or a dollar
        if (semicolon_follows) return false;
    }
  }
  return true;
}

// The one piece of `sql[0, end)`, trimmed; none if it is blank.
void OnePiece(std::string_view sql, size_t end, std::vector<SqlPiece>* out) {
  size_t b = 0;
  while (b < end && IsSpace(sql[b])) ++b;
  while (end > b && IsSpace(sql[end - 1])) --end;
  if (b < end) out->push_back({b, end - b});
}

}  // namespace

void SplitStatements(std::string_view sql, std::vector<SqlPiece>* out) {
  out->clear();
  // Most queries hold one statement, many of them ending in ';' (pgbench,
  // scripts): when a quick pass proves it, skip the byte-wise lexer.
  size_t body_end = sql.size();
  while (body_end > 0 && (IsSpace(sql[body_end - 1]) || sql[body_end - 1] == ';')) --body_end;
  if (IsOneStatement(sql, body_end)) {
    OnePiece(sql, body_end, out);
    return;
  }
  SplitStatementsByLexer(sql, out);
}

void SplitStatementsByLexer(std::string_view sql, std::vector<SqlPiece>* out) {
  out->clear();
  size_t start = 0;
  bool has_sql = false;
  AtomicTracker atomic;
  auto finish = [&](size_t end) {
    if (has_sql) {
      size_t b = start;
      size_t e = end;
      while (b < e && IsSpace(sql[b])) ++b;
      while (e > b && IsSpace(sql[e - 1])) --e;
      out->push_back({b, e - b});
    }
    has_sql = false;
    atomic = AtomicTracker{};
  };

  size_t i = 0;
  const size_t n = sql.size();
  while (i < n) {
    const unsigned char c = sql[i];
    if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      const size_t eol = sql.find('\n', i);
      i = eol == std::string_view::npos ? n : eol + 1;
      continue;
    }
    if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      i = SkipBlockComment(sql, i);
      continue;
    }
    if (IsSpace(c)) {
      ++i;
      continue;
    }
    if (c == ';') {
      if (atomic.depth <= 0) {
        finish(i);
        start = i + 1;
      }
      ++i;
      continue;
    }
    has_sql = true;
    if (c == '\'') {
      i = SkipQuoted(sql, i, '\'', false);
      atomic.other_token();
    } else if (c == '"') {
      i = SkipQuoted(sql, i, '"', false);
      atomic.other_token();
    } else if (c == '$') {
      // $1 is a parameter; $tag$ (tag empty or an identifier without '$')
      // opens a dollar quote that only the same $tag$ closes.
      size_t j = i + 1;
      if (j < n && IsIdentStart(sql[j])) {
        while (j < n && IsIdentChar(sql[j]) && sql[j] != '$') ++j;
      }
      if (j < n && sql[j] == '$') {
        const std::string_view tag = sql.substr(i, j - i + 1);
        const size_t close = sql.find(tag, j + 1);
        i = close == std::string_view::npos ? n : close + tag.size();
      } else {
        i = i + 1;
        while (i < n && IsDigit(sql[i])) ++i;
      }
      atomic.other_token();
    } else if (IsIdentStart(c)) {
      size_t j = i;
      while (j < n && IsIdentChar(sql[j])) ++j;
      const std::string_view word = sql.substr(i, j - i);
      if ((word == "E" || word == "e") && j < n && sql[j] == '\'') {
        i = SkipQuoted(sql, j, '\'', true);  // E'...': backslash escapes
        atomic.other_token();
      } else {
        atomic.word(word);
        i = j;
      }
    } else {
      ++i;
      // Digits and operators; a number like 1e5 is harmless here.
      if (!IsDigit(c)) atomic.other_token();
    }
  }
  finish(n);
}

}  // namespace dbwarden::pgsql
