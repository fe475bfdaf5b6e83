// SPDX-License-Identifier: Apache-2.0
#include "sql/certainty.h"

#include <initializer_list>


namespace dbwarden::sql {
namespace {

bool one_of(std::string_view word, std::initializer_list<std::string_view> upper_keywords) {
  for (std::string_view k : upper_keywords) {
    if (word.size() == k.size() && keyword_equals(word, k)) return true;
  }
  return false;
}

bool is_dml(std::string_view op) { return one_of(op, {"SELECT", "INSERT", "UPDATE", "DELETE"}); }

// Commands that never name a table (their arguments are settings, names of
// savepoints or channels, transaction modes).
bool is_tableless(std::string_view op) {
  return one_of(op, {"BEGIN", "COMMIT", "ROLLBACK", "END", "START", "ABORT", "SAVEPOINT",
                     "RELEASE", "SET", "SHOW", "RESET", "DISCARD", "LISTEN", "UNLISTEN", "NOTIFY",
                     "DEALLOCATE", "CHECKPOINT"});
}

// Words after which the token classifier's reading may differ from the grammar.
bool is_complex_word(std::string_view w, bool select) {
  if (one_of(w, {"WITH", "UNION", "INTERSECT", "EXCEPT", "LATERAL", "ONLY", "TABLESAMPLE",
                 "CONFLICT", "OF", "ROWS", "RECURSIVE"})) {
    return true;
  }
  return select && one_of(w, {"INTO"});  // SELECT ... INTO creates a table
}

// Clause words that end a FROM/JOIN/USING list.
bool ends_relation_list(std::string_view w) {
  return one_of(w, {"WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "FETCH", "WINDOW",
                    "RETURNING", "ON", "SET", "VALUES", "SELECT"});
}

bool is_sub_statement_word(std::string_view w) {
  return one_of(w, {"SELECT", "WITH", "VALUES", "TABLE"});
}

bool dangling_end(std::string_view text, const Token& last) {
  switch (last.kind) {
    case TokenKind::kOperator:
    case TokenKind::kOther:
      return true;
    case TokenKind::kPunct:
      return !last.is_punct(text, ')');
    case TokenKind::kWord:
      // A clause or operator word needs something after it; value words
      // (TRUE, NULL, DEFAULT, DESC, ...) and names end statements fine.
      return one_of(last.text(text),
                    {"WHERE", "SET", "FROM", "JOIN", "AND", "OR", "NOT", "ON", "BY", "VALUES",
                     "INTO", "SELECT", "UPDATE", "DELETE", "INSERT", "IN", "IS", "LIKE", "ILIKE",
                     "BETWEEN", "AS", "USING", "LIMIT", "OFFSET", "HAVING", "GROUP", "ORDER",
                     "RETURNING", "WHEN", "THEN", "ELSE", "CASE", "DISTINCT", "ALL", "ANY"});
    default:
      return false;
  }
}

}  // namespace

bool token_classification_certain(std::string_view text, const std::vector<Token>& tokens,
                                  const Analysis& a) {
  if (a.unterminated || a.statements != 1 || a.operation.empty()) return false;
  if (is_tableless(a.operation)) return a.collections.empty();
  if (!is_dml(a.operation)) return false;

  size_t end = tokens.size();
  while (end > 0 && tokens[end - 1].is_punct(text, ';')) --end;
  if (end == 0 || dangling_end(text, tokens[end - 1])) return false;

  const bool select = a.operation == "SELECT";
  bool in_relation_list = false;
  for (size_t i = 0; i < end; ++i) {
    const Token& t = tokens[i];
    if (t.kind == TokenKind::kOther) return false;
    if (t.is_punct(text, '(')) {
      if (in_relation_list) return false;
      if (i + 1 < end && tokens[i + 1].kind == TokenKind::kWord &&
          is_sub_statement_word(tokens[i + 1].text(text))) {
        return false;
      }
      continue;
    }
    if (t.kind != TokenKind::kWord) continue;
    const std::string_view w = t.text(text);
    if (is_complex_word(w, select)) return false;
    // Row locks (FOR UPDATE/SHARE/NO KEY UPDATE/KEY SHARE, then NOWAIT or
    // SKIP LOCKED) name no table unless followed by OF, refused above; any
    // other FOR is not plain DML.
    if (one_of(w, {"FOR"}) &&
        !(i + 1 < end && tokens[i + 1].kind == TokenKind::kWord &&
          one_of(tokens[i + 1].text(text), {"UPDATE", "SHARE", "NO", "KEY"}))) {
      return false;
    }
    if (one_of(w, {"FROM", "JOIN", "USING"})) {
      in_relation_list = true;
    } else if (ends_relation_list(w)) {
      in_relation_list = false;
    }
  }
  return true;
}

}  // namespace dbwarden::sql
