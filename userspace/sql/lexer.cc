// SPDX-License-Identifier: Apache-2.0
#include "sql/lexer.h"

#include "sql/char_class.h"

namespace dbwarden::sql {
namespace {

using chars::is_digit;
using chars::is_ident_cont;
using chars::is_ident_start;
using chars::is_space;
using chars::to_upper;

// Dollar-quote tags may not contain '$' (scan.l dolq_cont).
constexpr bool is_tag_cont(unsigned char c) { return is_ident_start(c) || is_digit(c); }
constexpr bool is_op_char(unsigned char c) {
  switch (c) {
    case '~':
    case '!':
    case '@':
    case '#':
    case '^':
    case '&':
    case '|':
    case '`':
    case '?':
    case '+':
    case '-':
    case '*':
    case '/':
    case '%':
    case '<':
    case '>':
    case '=':
      return true;
    default:
      return false;
  }
}

}  // namespace

bool keyword_equals(std::string_view word, std::string_view upper_keyword) {
  if (word.size() != upper_keyword.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (to_upper(static_cast<unsigned char>(word[i])) !=
        static_cast<unsigned char>(upper_keyword[i])) {
      return false;
    }
  }
  return true;
}

// `from` is the index just after the opening quote. Returns the index just
// after the closing quote, or the text size if there is none.
size_t Lexer::scan_quoted(size_t from, char quote, bool backslash_escapes,
                          bool* unterminated) const {
  size_t i = from;
  const size_t n = sql_.size();
  while (i < n) {
    const char c = sql_[i];
    if (backslash_escapes && c == '\\') {
      i += 2;  // the escaped byte, whatever it is (may step past the end: clamped below)
      continue;
    }
    if (c == quote) {
      if (i + 1 < n && sql_[i + 1] == quote) {  // doubled quote stands for itself
        i += 2;
        continue;
      }
      return i + 1;
    }
    ++i;
  }
  *unterminated = true;
  return n;
}

// `from` is the index just after the opening "/*".
size_t Lexer::scan_block_comment(size_t from, bool* unterminated) const {
  size_t depth = 1;
  size_t i = from;
  const size_t n = sql_.size();
  while (i + 1 < n) {
    if (sql_[i] == '/' && sql_[i + 1] == '*') {
      ++depth;
      i += 2;
    } else if (sql_[i] == '*' && sql_[i + 1] == '/') {
      i += 2;
      if (--depth == 0) return i;
    } else {
      ++i;
    }
  }
  *unterminated = true;
  return n;
}

// Deliberately permissive: digits, '_', letters (hex, exponent, and the
// "trailing junk" PostgreSQL would reject) one '.', and a sign right after an
// exponent 'e'. A normaliser only needs to know where a literal ends.
size_t Lexer::scan_number(size_t from) const {
  const size_t n = sql_.size();
  const bool hex_like = from + 1 < n && sql_[from] == '0' && sql_[from + 1] != '.' &&
                        !is_digit(static_cast<unsigned char>(sql_[from + 1])) &&
                        is_ident_start(static_cast<unsigned char>(sql_[from + 1]));
  bool seen_dot = false;
  size_t i = from;
  while (i < n) {
    const auto c = static_cast<unsigned char>(sql_[i]);
    if (is_digit(c) || c == '_' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) {
      ++i;
    } else if (c == '.' && !seen_dot && !(i + 1 < n && sql_[i + 1] == '.')) {
      seen_dot = true;  // "1..5" is 1 then the ".." of an array slice
      ++i;
    } else if ((c == '+' || c == '-') && !hex_like && i > from && (sql_[i - 1] | 0x20) == 'e' &&
               i + 1 < n && is_digit(static_cast<unsigned char>(sql_[i + 1]))) {
      ++i;
    } else {
      break;
    }
  }
  return i;
}

// An operator is a run of operator characters that stops before "--" or "/*",
// which start a comment even inside an operator (scan.l, {operator} rule).
size_t Lexer::scan_operator(size_t from) const {
  const size_t n = sql_.size();
  size_t i = from;
  while (i < n && is_op_char(static_cast<unsigned char>(sql_[i]))) {
    if (i > from && i + 1 < n &&
        ((sql_[i] == '-' && sql_[i + 1] == '-') || (sql_[i] == '/' && sql_[i + 1] == '*'))) {
      break;
    }
    ++i;
  }
  return i;
}

size_t Lexer::dollar_delimiter_length(size_t from) const {
  const size_t n = sql_.size();
  size_t i = from + 1;
  if (i < n && is_ident_start(static_cast<unsigned char>(sql_[i]))) {
    ++i;
    while (i < n && is_tag_cont(static_cast<unsigned char>(sql_[i]))) ++i;
  }
  if (i < n && sql_[i] == '$') return i + 1 - from;
  return 0;
}

Token Lexer::next() {
  const size_t n = sql_.size();
  while (pos_ < n && is_space(static_cast<unsigned char>(sql_[pos_]))) ++pos_;
  Token t;
  t.begin = pos_;
  if (pos_ >= n) {
    t.end = n;
    return t;
  }
  const auto c = static_cast<unsigned char>(sql_[pos_]);
  const unsigned char c1 = pos_ + 1 < n ? static_cast<unsigned char>(sql_[pos_ + 1]) : 0;
  const unsigned char c2 = pos_ + 2 < n ? static_cast<unsigned char>(sql_[pos_ + 2]) : 0;
  size_t end = pos_ + 1;

  if (c == '-' && c1 == '-') {
    t.kind = TokenKind::kComment;
    end = pos_ + 2;
    while (end < n && sql_[end] != '\n' && sql_[end] != '\r') ++end;
  } else if (c == '/' && c1 == '*') {
    t.kind = TokenKind::kComment;
    end = scan_block_comment(pos_ + 2, &t.unterminated);
  } else if (c == '\'') {
    t.kind = TokenKind::kString;
    end = scan_quoted(pos_ + 1, '\'', false, &t.unterminated);
  } else if (c == '"') {
    t.kind = TokenKind::kQuotedIdent;
    end = scan_quoted(pos_ + 1, '"', false, &t.unterminated);
  } else if ((c | 0x20) == 'u' && c1 == '&' && (c2 == '\'' || c2 == '"')) {
    t.kind = c2 == '\'' ? TokenKind::kString : TokenKind::kQuotedIdent;
    end = scan_quoted(pos_ + 3, static_cast<char>(c2), false, &t.unterminated);
  } else if (c1 == '\'' &&
             ((c | 0x20) == 'e' || (c | 0x20) == 'b' || (c | 0x20) == 'x' || (c | 0x20) == 'n')) {
    t.kind = TokenKind::kString;
    end = scan_quoted(pos_ + 2, '\'', (c | 0x20) == 'e', &t.unterminated);
  } else if (is_ident_start(c)) {
    t.kind = TokenKind::kWord;
    while (end < n && is_ident_cont(static_cast<unsigned char>(sql_[end]))) ++end;
  } else if (is_digit(c) || (c == '.' && is_digit(c1))) {
    t.kind = TokenKind::kNumber;
    end = scan_number(pos_);
  } else if (c == '$') {
    if (is_digit(c1)) {
      t.kind = TokenKind::kParam;
      while (end < n && is_digit(static_cast<unsigned char>(sql_[end]))) ++end;
    } else if (const size_t delim = dollar_delimiter_length(pos_); delim != 0) {
      t.kind = TokenKind::kDollarString;
      const size_t close = sql_.find(sql_.substr(pos_, delim), pos_ + delim);
      if (close == std::string_view::npos) {
        t.unterminated = true;
        end = n;
      } else {
        end = close + delim;
      }
    } else {
      t.kind = TokenKind::kOther;
    }
  } else if (c == ':' && c1 == ':') {
    t.kind = TokenKind::kPunct;
    end = pos_ + 2;
  } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',' || c == ';' || c == '.' ||
             c == ':') {
    t.kind = TokenKind::kPunct;
  } else if (is_op_char(c)) {
    t.kind = TokenKind::kOperator;
    end = scan_operator(pos_);
  } else {
    t.kind = TokenKind::kOther;
  }
  if (end > n) end = n;  // an escape backslash as the very last byte
  t.end = end;
  pos_ = end;
  return t;
}

Token Lexer::next_significant() {
  Token t = next();
  while (t.kind == TokenKind::kComment) t = next();
  return t;
}

}  // namespace dbwarden::sql
