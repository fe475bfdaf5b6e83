// SPDX-License-Identifier: Apache-2.0
#include "policy/inner_statement.h"

#include <vector>

#include "sql/lexer.h"
#include "sql/normalize.h"

namespace dbwarden::policy {
namespace {

using sql::keyword_equals;
using sql::Token;
using sql::TokenKind;

class Reader {
 public:
  Reader(std::string_view text, const std::vector<Token>& tk) : text_(text), tk_(tk) {}

  bool word(size_t i, std::string_view kw) const {
    return i < tk_.size() && tk_[i].kind == TokenKind::kWord &&
           keyword_equals(tk_[i].text(text_), kw);
  }
  bool punct(size_t i, char c) const { return i < tk_.size() && tk_[i].is_punct(text_, c); }
  bool op(size_t i, std::string_view o) const {
    return i < tk_.size() && tk_[i].kind == TokenKind::kOperator && tk_[i].text(text_) == o;
  }
  std::string_view from(size_t i) const {
    return i < tk_.size() ? text_.substr(tk_[i].begin) : std::string_view();
  }
  // FORMAT = name (MySQL/MariaDB)
  size_t skip_format(size_t i) const {
    if (word(i, "FORMAT") && op(i + 1, "=") && i + 2 < tk_.size()) return i + 3;
    return i;
  }
  // Whether what starts at i is a statement ANALYZE/EXPLAIN ANALYZE would run.
  bool runnable(size_t i) const {
    for (std::string_view v : {"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "WITH",
                               "VALUES", "TABLE", "EXECUTE", "CREATE", "DECLARE"}) {
      if (word(i, v)) return true;
    }
    return punct(i, '(');
  }

 private:
  std::string_view text_;
  const std::vector<Token>& tk_;
};

}  // namespace

std::string_view executed_statement(sql::Dialect dialect, std::string_view text) {
  std::vector<Token> tokens;
  sql::tokenize(dialect, sql::MysqlMode{}, text, tokens);
  const Reader r(text, tokens);
  size_t i = 0;
  if (r.word(0, "EXPLAIN") ||
      (dialect == sql::Dialect::kMysql && (r.word(0, "DESCRIBE") || r.word(0, "DESC")))) {
    i = 1;
    if (r.punct(i, '(')) {
      // PostgreSQL: EXPLAIN (option [value], ...) statement
      bool analyze = false;
      size_t depth = 0;
      for (; i < tokens.size(); ++i) {
        if (r.punct(i, '(')) ++depth;
        if (r.punct(i, ')') && --depth == 0) break;
        if (depth == 1 && (r.word(i, "ANALYZE") || r.word(i, "ANALYSE"))) {
          const bool off = r.word(i + 1, "FALSE") || r.word(i + 1, "OFF") ||
                           (i + 1 < tokens.size() && tokens[i + 1].kind == TokenKind::kNumber &&
                            tokens[i + 1].text(text) == "0");
          analyze = !off;
        }
      }
      return analyze && i < tokens.size() && r.runnable(i + 1) ? r.from(i + 1) : std::string_view();
    }
    if (!(r.word(i, "ANALYZE") || r.word(i, "ANALYSE"))) return {};
    ++i;
    if (r.word(i, "VERBOSE")) ++i;
    i = r.skip_format(i);
    return r.runnable(i) ? r.from(i) : std::string_view();
  }
  if (dialect == sql::Dialect::kMysql && r.word(0, "ANALYZE")) {
    // MariaDB: ANALYZE [FORMAT=JSON] statement runs it; ANALYZE TABLE does not.
    i = r.skip_format(1);
    return r.runnable(i) && !r.word(i, "TABLE") ? r.from(i) : std::string_view();
  }
  return {};
}

void modifying_ctes(std::string_view text, std::vector<std::string_view>& out) {
  std::vector<Token> tokens;
  sql::tokenize(sql::Dialect::kPostgresql, sql::MysqlMode{}, text, tokens);
  const Reader r(text, tokens);
  if (!r.word(0, "WITH")) return;
  size_t depth = 0;
  for (size_t i = 1; i < tokens.size(); ++i) {
    if (r.punct(i, ')')) {
      if (depth > 0) --depth;
      continue;
    }
    if (!r.punct(i, '(')) continue;
    ++depth;
    if (depth != 1 || !(r.word(i - 1, "AS") || r.word(i - 1, "MATERIALIZED"))) continue;
    // A CTE body: find its closing parenthesis.
    size_t k = i + 1, d = 1;
    for (; k < tokens.size(); ++k) {
      if (r.punct(k, '(')) ++d;
      if (r.punct(k, ')') && --d == 0) break;
    }
    if (r.word(i + 1, "INSERT") || r.word(i + 1, "UPDATE") || r.word(i + 1, "DELETE") ||
        r.word(i + 1, "MERGE")) {
      const size_t begin = tokens[i + 1].begin;
      const size_t end = k < tokens.size() ? tokens[k].begin : text.size();
      out.push_back(text.substr(begin, end - begin));
    }
    i = k;  // the body's own parentheses are not the WITH list's
    depth = 0;
  }
}

bool may_have_modifying_cte(std::string_view normalized) {
  if (normalized.substr(0, 5) != "WITH ") return false;
  for (std::string_view verb : {"(DELETE ", "(UPDATE ", "(INSERT ", "(MERGE "}) {
    if (normalized.find(verb) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace dbwarden::policy
