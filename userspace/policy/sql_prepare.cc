// SPDX-License-Identifier: Apache-2.0
#include "policy/sql_prepare.h"

#include <vector>

#include "sql/lexer.h"
#include "sql/normalize.h"

namespace dbwarden::policy {
namespace {

using sql::keyword_equals;
using sql::Token;
using sql::TokenKind;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// The name at token i as the server keys it; false when no name is there.
bool read_name(sql::Dialect dialect, std::string_view text, const Token& t, std::string& out) {
  const std::string_view s = t.text(text);
  out.clear();
  if (t.kind == TokenKind::kWord) {
    for (char c : s) out.push_back(lower(c));
    return !out.empty();
  }
  if (t.kind != TokenKind::kQuotedIdent || t.unterminated || s.size() < 2) return false;
  // "a""b" (PostgreSQL, MySQL's ANSI_QUOTES) or `a``b` (MySQL): a doubled quote is one.
  const char q = s.front();
  if (q != '"' && q != '`') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    out.push_back(dialect == sql::Dialect::kMysql ? lower(s[i]) : s[i]);
    if (s[i] == q) ++i;
  }
  return !out.empty();
}

// MySQL: the value of a '...' or "..." literal as the server reads it (false for any
// other form: N'..', X'..', B'..', a charset introducer's string).
bool unquote_mysql(std::string_view s, bool backslash_escapes, std::string& out) {
  if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front()) {
    return false;
  }
  const char q = s.front();
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    const char c = s[i];
    if (c == q) {  // doubled: one quote
      out.push_back(q);
      ++i;
      continue;
    }
    if (c != '\\' || !backslash_escapes || i + 2 >= s.size()) {
      out.push_back(c);
      continue;
    }
    const char e = s[++i];
    switch (e) {
      case '0':
        out.push_back('\0');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'Z':
        out.push_back('\x1a');
        break;
      case '%':
      case '_':
        // Kept with their backslash: LIKE patterns read them.
        out.push_back('\\');
        out.push_back(e);
        break;
      default:
        out.push_back(e);
    }
  }
  return true;
}

// MySQL: the statement in tokens [from, end), adjacent literals concatenated; unknown for
// anything else (a user variable, an expression, a literal form not read here).
void read_literal(std::string_view text, const std::vector<Token>& tk, size_t from, size_t end,
                  bool backslash_escapes, SqlPrepare& out) {
  bool ok = end > from;
  for (size_t i = from; ok && i < end; ++i) {
    ok = tk[i].kind == TokenKind::kString && !tk[i].unterminated &&
         unquote_mysql(tk[i].text(text), backslash_escapes, out.text);
  }
  out.text_known = ok;
  if (!ok) out.text.clear();
}

}  // namespace

bool may_be_sql_prepare(std::string_view operation) {
  if (operation.empty()) return false;
  switch (operation[0]) {
    case 'P':
      return operation.starts_with("PREPARE");
    case 'E':
      return operation.starts_with("EXECUTE");
    case 'D':
      return operation.starts_with("DEALLOCATE") || operation.starts_with("DROP") ||
             operation.starts_with("DISCARD");
    case 'C':
      return operation.starts_with("CREATE");  // PostgreSQL CREATE TABLE ... AS EXECUTE
    default:
      return false;
  }
}

SqlPrepare read_sql_prepare(sql::Dialect dialect, std::string_view text, bool backslash_escapes) {
  SqlPrepare out;
  std::vector<Token> tk;
  sql::MysqlMode mode;
  mode.no_backslash_escapes = !backslash_escapes;
  sql::tokenize(dialect, mode, text, tk);
  // A trailing ';' (a piece may keep it) is not part of the statement.
  while (!tk.empty() && tk.back().is_punct(text, ';')) tk.pop_back();
  const auto word = [&](size_t i, std::string_view kw) {
    return i < tk.size() && tk[i].kind == TokenKind::kWord && keyword_equals(tk[i].text(text), kw);
  };
  const bool mysql = dialect == sql::Dialect::kMysql;
  if (word(0, "PREPARE")) {
    if (tk.size() < 2 || !read_name(dialect, text, tk[1], out.name)) return out;
    if (word(1, "TRANSACTION") && !mysql) return out;  // PostgreSQL two-phase commit
    if (mysql) {
      if (!word(2, "FROM")) return out;
      out.kind = SqlPrepareKind::kPrepare;
      read_literal(text, tk, 3, tk.size(), backslash_escapes, out);
      return out;
    }
    // PostgreSQL: PREPARE name [ (type, ...) ] AS statement
    size_t i = 2;
    if (i < tk.size() && tk[i].is_punct(text, '(')) {
      size_t depth = 0;
      for (; i < tk.size(); ++i) {
        if (tk[i].is_punct(text, '(')) ++depth;
        if (tk[i].is_punct(text, ')') && --depth == 0) break;
      }
      ++i;
    }
    if (!word(i, "AS") || i + 1 >= tk.size()) return out;
    out.kind = SqlPrepareKind::kPrepare;
    const size_t begin = tk[i + 1].begin;
    out.text.assign(text.substr(begin, tk.back().end - begin));
    out.text_known = true;
    return out;
  }
  if (mysql && word(0, "EXECUTE") && word(1, "IMMEDIATE")) {
    // MariaDB: EXECUTE IMMEDIATE '<statement>' [USING ...]
    size_t end = 2;
    while (end < tk.size() && !word(end, "USING")) ++end;
    out.kind = SqlPrepareKind::kExecuteImmediate;
    read_literal(text, tk, 2, end, backslash_escapes, out);
    return out;
  }
  if (word(0, "EXECUTE")) {
    if (tk.size() < 2 || !read_name(dialect, text, tk[1], out.name)) return out;
    // MySQL: EXECUTE s [USING @a, ...]; PostgreSQL: EXECUTE p [(args)]. Anything else
    // (PL/pgSQL's EXECUTE 'text' is not SQL) is not one.
    const bool rest_ok = tk.size() == 2 || (mysql ? word(2, "USING") : tk[2].is_punct(text, '('));
    if (rest_ok) out.kind = SqlPrepareKind::kExecute;
    return out;
  }
  if (word(0, "DEALLOCATE") || (mysql && word(0, "DROP"))) {
    size_t i = 1;
    if (word(i, "PREPARE")) {
      ++i;
    } else if (mysql) {
      return out;  // MySQL needs the PREPARE: DROP TABLE and the like are not it
    }
    if (!mysql && word(i, "ALL") && i + 1 == tk.size()) {
      out.kind = SqlPrepareKind::kDeallocateAll;
      return out;
    }
    if (i + 1 == tk.size() && read_name(dialect, text, tk[i], out.name)) {
      out.kind = SqlPrepareKind::kDeallocate;
    }
    return out;
  }
  if (!mysql && word(0, "CREATE")) {
    // PostgreSQL: CREATE [...] TABLE name [(columns)] AS EXECUTE p [(args)] [WITH ...]
    // runs p. Only outside parentheses: a column list or a subquery holds no EXECUTE.
    size_t depth = 0;
    for (size_t i = 1; i + 2 < tk.size(); ++i) {
      if (tk[i].is_punct(text, '(')) ++depth;
      if (tk[i].is_punct(text, ')') && depth > 0) --depth;
      if (depth == 0 && word(i, "AS") && word(i + 1, "EXECUTE") &&
          read_name(dialect, text, tk[i + 2], out.name)) {
        out.kind = SqlPrepareKind::kExecute;
        return out;
      }
    }
    out.name.clear();
    return out;
  }
  if (!mysql && word(0, "DISCARD") && word(1, "ALL") && tk.size() == 2) {
    out.kind = SqlPrepareKind::kDeallocateAll;
  }
  return out;
}

}  // namespace dbwarden::policy
