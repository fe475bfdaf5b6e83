// SPDX-License-Identifier: Apache-2.0
#include "sql/mysql_lexer.h"

#include "sql/char_class.h"

namespace dbwarden::sql {
namespace {

using chars::is_digit;
using chars::is_ident_cont;
using chars::is_ident_start;
using chars::is_space;

// '#' starts a comment, '`' quotes identifiers and '?' is a placeholder in
// MySQL, so unlike PostgreSQL none of them is an operator character.
constexpr bool is_op_char(unsigned char c) {
  switch (c) {
    case '~':
    case '!':
    case '@':
    case '^':
    case '&':
    case '|':
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

size_t MysqlLexer::scan_quoted(size_t from, char quote, bool backslash_escapes,
                               bool* unterminated) const {
  size_t i = from;
  const size_t n = sql_.size();
  while (i < n) {
    const char c = sql_[i];
    if (backslash_escapes && c == '\\') {
      i += 2;
      continue;
    }
    if (c == quote) {
      if (i + 1 < n && sql_[i + 1] == quote) {
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

// `from` is just after "/*". MySQL comments do not nest: the first "*/" ends it.
size_t MysqlLexer::scan_block_comment(size_t from, bool* unterminated) const {
  const size_t close = sql_.find("*/", from);
  if (close == std::string_view::npos) {
    *unterminated = true;
    return sql_.size();
  }
  return close + 2;
}

// Same permissive rule as the PostgreSQL lexer: a normaliser only needs to
// know where a literal ends (0x1F, 0b101, 1.5e-3, 1e10).
size_t MysqlLexer::scan_number(size_t from) const {
  const size_t n = sql_.size();
  const bool hex_like = from + 1 < n && sql_[from] == '0' && (sql_[from + 1] | 0x20) != 'e' &&
                        is_ident_start(static_cast<unsigned char>(sql_[from + 1]));
  bool seen_dot = false;
  size_t i = from;
  while (i < n) {
    const auto c = static_cast<unsigned char>(sql_[i]);
    if (is_digit(c) || c == '_' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) {
      ++i;
    } else if (c == '.' && !seen_dot) {
      seen_dot = true;
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

// "--" starts a comment only when followed by whitespace/control or the end.
bool MysqlLexer::dash_comment_at(size_t i) const {
  const size_t n = sql_.size();
  if (i + 1 >= n || sql_[i] != '-' || sql_[i + 1] != '-') return false;
  return i + 2 >= n || static_cast<unsigned char>(sql_[i + 2]) <= ' ';
}

// MySQL has a fixed set of operators, unlike PostgreSQL's user-defined runs:
// the longest of these, else one character ("5--3" is 5 - -3).
size_t MysqlLexer::scan_operator(size_t from) const {
  static constexpr std::string_view kMulti[] = {
      "<=>", "->>", "<=", ">=", "<>", "!=", "<<", ">>", "&&", "||", ":=", "->"};
  const std::string_view rest = sql_.substr(from);
  for (std::string_view op : kMulti) {
    if (rest.substr(0, op.size()) == op) return from + op.size();
  }
  return from + 1;
}

Token MysqlLexer::next() {
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
  const bool escapes = !mode_.no_backslash_escapes;

  if (c == '#' || dash_comment_at(pos_)) {
    t.kind = TokenKind::kComment;
    while (end < n && sql_[end] != '\n' && sql_[end] != '\r') ++end;
  } else if (in_version_comment_ && c == '*' && c1 == '/') {
    t.kind = TokenKind::kComment;  // closes /*! ... */
    in_version_comment_ = false;
    end = pos_ + 2;
  } else if (c == '/' && c1 == '*' &&
             (c2 == '!' || ((c2 | 0x20) == 'm' && pos_ + 3 < n && sql_[pos_ + 3] == '!')) &&
             !in_version_comment_) {
    // Version comment: its content is SQL. Emit the marker (with its version
    // number) as a comment and tokenise what follows.
    t.kind = TokenKind::kComment;
    end = pos_ + (c2 == '!' ? 3 : 4);
    while (end < n && is_digit(static_cast<unsigned char>(sql_[end]))) ++end;
    in_version_comment_ = true;
  } else if (c == '/' && c1 == '*') {
    t.kind = TokenKind::kComment;
    end = scan_block_comment(pos_ + 2, &t.unterminated);
  } else if (c == '\'') {
    t.kind = TokenKind::kString;
    end = scan_quoted(pos_ + 1, '\'', escapes, &t.unterminated);
  } else if (c == '"') {
    t.kind = mode_.ansi_quotes ? TokenKind::kQuotedIdent : TokenKind::kString;
    end = scan_quoted(pos_ + 1, '"', escapes && !mode_.ansi_quotes, &t.unterminated);
  } else if (c == '`') {
    t.kind = TokenKind::kQuotedIdent;
    end = scan_quoted(pos_ + 1, '`', false, &t.unterminated);
  } else if (c1 == '\'' && ((c | 0x20) == 'x' || (c | 0x20) == 'b' || (c | 0x20) == 'n')) {
    t.kind = TokenKind::kString;
    end = scan_quoted(pos_ + 2, '\'', (c | 0x20) == 'n' && escapes, &t.unterminated);
  } else if (is_ident_start(c)) {
    t.kind = TokenKind::kWord;
    while (end < n && is_ident_cont(static_cast<unsigned char>(sql_[end]))) ++end;
  } else if (is_digit(c) || (c == '.' && is_digit(c1))) {
    t.kind = TokenKind::kNumber;
    end = scan_number(pos_);
    // "1abc" is an identifier in MySQL: a run of digits then identifier bytes.
    if (end < n && is_ident_cont(static_cast<unsigned char>(sql_[end]))) {
      t.kind = TokenKind::kWord;
      while (end < n && is_ident_cont(static_cast<unsigned char>(sql_[end]))) ++end;
    }
  } else if (c == '@' && (is_ident_cont(c1) || (c1 == '@' && is_ident_start(c2)))) {
    t.kind = TokenKind::kWord;
    end = pos_ + (c1 == '@' ? 2 : 1);
    while (end < n && (is_ident_cont(static_cast<unsigned char>(sql_[end])) || sql_[end] == '.')) {
      ++end;
    }
  } else if (c == '?') {
    t.kind = TokenKind::kParam;
  } else if (c == ':' && c1 == '=') {
    t.kind = TokenKind::kOperator;
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
  if (end > n) end = n;
  t.end = end;
  pos_ = end;
  return t;
}

Token MysqlLexer::next_significant() {
  Token t = next();
  while (t.kind == TokenKind::kComment) t = next();
  return t;
}

}  // namespace dbwarden::sql
