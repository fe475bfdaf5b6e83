// SPDX-License-Identifier: Apache-2.0
#include "proxy/mysql_statement_scan.h"

#include <algorithm>
#include <cctype>

#include "sql/mysql_lexer.h"

namespace dbwarden::proxy {

namespace {

// Names kept per statement: a statement naming more is judged on the first ones only,
// which a rule then sees as fewer predicates; the bound keeps a pathological text cheap.
constexpr size_t kMaxNames = 512;

std::string Name(std::string_view token, bool quoted) {
  if (quoted && token.size() >= 2) {
    const char q = token.front();
    token = token.substr(1, token.size() - 2);
    std::string out;
    for (size_t i = 0; i < token.size(); ++i) {
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(token[i]))));
      if (token[i] == q && i + 1 < token.size() && token[i + 1] == q) ++i;  // `a``b`
    }
    return out;
  }
  std::string out(token);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool Is(std::string_view sql, const sql::Token& t, std::string_view word) {
  if (t.kind != sql::TokenKind::kWord || t.end - t.begin != word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(sql[t.begin + i])) != word[i]) return false;
  }
  return true;
}

void AddOnce(std::vector<std::string>& to, std::string name) {
  if (to.size() >= kMaxNames) return;
  if (std::find(to.begin(), to.end(), name) == to.end()) to.push_back(std::move(name));
}

}  // namespace

void ScanMysqlStatement(std::string_view sql, bool backslash_escapes, MysqlStatementScan& out) {
  out = {};
  sql::MysqlMode mode;
  mode.no_backslash_escapes = !backslash_escapes;
  sql::MysqlLexer lexer(sql, mode);
  // A condition, sort or grouping runs from its keyword to the next clause at its own
  // parenthesis depth, or to the parenthesis that closes around it; everything inside it,
  // sub-queries included, counts (WHERE '1' IN (SELECT ssn ...) infers as much).
  int depth = 0;
  int predicate_depth = -1;  // -1: not inside one
  bool with = false;         // inside a leading WITH list
  sql::Token prev;
  bool first = true;
  for (sql::Token t = lexer.next_significant(); t.kind != sql::TokenKind::kEnd;
       t = lexer.next_significant()) {
    const bool ident = t.kind == sql::TokenKind::kWord || t.kind == sql::TokenKind::kQuotedIdent;
    if (t.is_punct(sql, '(')) ++depth;
    if (t.is_punct(sql, ')')) {
      --depth;
      if (depth < predicate_depth) predicate_depth = -1;
    }
    if (first && Is(sql, t, "WITH")) with = true;
    if (first && (Is(sql, t, "EXECUTE") || Is(sql, t, "CALL"))) out.runs_other = true;
    first = false;
    if (t.kind == sql::TokenKind::kWord && t.end - t.begin > 1 && sql[t.begin] == '@' &&
        sql[t.begin + 1] != '@') {
      out.user_variables = true;
    }
    if ((Is(sql, t, "OUTFILE") || Is(sql, t, "DUMPFILE")) && Is(sql, prev, "INTO")) {
      out.into_file = true;
    }
    // WITH [RECURSIVE] name [(cols)] AS (   and   , name [(cols)] AS (   at the WITH level.
    if (with && depth == 0 && ident && !Is(sql, t, "RECURSIVE") &&
        (Is(sql, prev, "WITH") || Is(sql, prev, "RECURSIVE") || prev.is_punct(sql, ','))) {
      AddOnce(out.cte_names, Name(t.text(sql), t.kind == sql::TokenKind::kQuotedIdent));
    }
    if (depth == 0 && Is(sql, t, "SELECT")) with = false;
    if (predicate_depth >= 0 && depth == predicate_depth &&
        (Is(sql, t, "SELECT") || Is(sql, t, "FROM") || Is(sql, t, "JOIN") || Is(sql, t, "UNION") ||
         Is(sql, t, "LIMIT") || Is(sql, t, "INTO") || Is(sql, t, "WINDOW"))) {
      predicate_depth = -1;
    }
    if (predicate_depth < 0 && (Is(sql, t, "WHERE") || Is(sql, t, "ON") || Is(sql, t, "USING") ||
                                Is(sql, t, "HAVING") || Is(sql, t, "BY"))) {
      predicate_depth = depth;
    } else if (predicate_depth >= 0 && ident) {
      AddOnce(out.predicate_names, Name(t.text(sql), t.kind == sql::TokenKind::kQuotedIdent));
    }
    prev = t;
  }
}

bool IsMysqlDdl(std::string_view sql, bool backslash_escapes) {
  sql::MysqlMode mode;
  mode.no_backslash_escapes = !backslash_escapes;
  sql::MysqlLexer lexer(sql, mode);
  const sql::Token t = lexer.next_significant();
  return Is(sql, t, "CREATE") || Is(sql, t, "ALTER") || Is(sql, t, "DROP") || Is(sql, t, "RENAME");
}

bool ParseMysqlKill(std::string_view sql, bool backslash_escapes, MysqlKill* out) {
  sql::MysqlMode mode;
  mode.no_backslash_escapes = !backslash_escapes;
  sql::MysqlLexer lexer(sql, mode);
  sql::Token t = lexer.next_significant();
  if (!Is(sql, t, "KILL")) return false;
  t = lexer.next_significant();
  if (Is(sql, t, "HARD") || Is(sql, t, "SOFT")) t = lexer.next_significant();
  MysqlKill k;
  if (Is(sql, t, "CONNECTION")) {
    t = lexer.next_significant();
  } else if (Is(sql, t, "QUERY")) {
    k.connection = false;
    t = lexer.next_significant();
  }
  if (t.kind != sql::TokenKind::kNumber) return false;
  const std::string_view digits = t.text(sql);
  uint64_t id = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    id = id * 10 + static_cast<uint64_t>(c - '0');
    if (id > UINT32_MAX) return false;
  }
  t = lexer.next_significant();
  if (t.is_punct(sql, ';')) t = lexer.next_significant();
  if (t.kind != sql::TokenKind::kEnd) return false;
  k.thread_id = static_cast<uint32_t>(id);
  *out = k;
  return true;
}

}  // namespace dbwarden::proxy
