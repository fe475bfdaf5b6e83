// SPDX-License-Identifier: Apache-2.0
#include "sql/operation.h"

#include "sql/lexer.h"

namespace dbwarden::sql {
namespace {

constexpr size_t kMaxKeywordLength = 32;

bool is_keyword_shaped(std::string_view word) {
  if (word.empty() || word.size() > kMaxKeywordLength) return false;
  for (char c : word) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

std::string upper(std::string_view word) {
  std::string out(word);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool is_main_verb(std::string_view word) {
  for (std::string_view verb :
       {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"}) {
    if (keyword_equals(word, verb)) return true;
  }
  return false;
}

// Scans "[RECURSIVE] name [(cols)] AS [NOT] [MATERIALIZED] (body) [SEARCH..] [CYCLE..], ..."
// and returns the first main verb at depth 0. CTE names may be unreserved
// keywords ("WITH update AS (...)"), so the word right after WITH/RECURSIVE or a
// depth-0 comma is a name and never the verb.
std::string_view main_verb_after_with(Lexer& lexer) {
  const std::string_view sql = lexer.text();
  size_t depth = 0;
  bool expect_name = true;
  for (Token t = lexer.next_significant(); t.kind != TokenKind::kEnd;
       t = lexer.next_significant()) {
    if (t.kind == TokenKind::kPunct) {
      if (t.is_punct(sql, '(')) {
        ++depth;
      } else if (t.is_punct(sql, ')')) {
        if (depth == 0) return {};  // closes a parenthesis opened before WITH
        --depth;
      } else if (depth == 0 && t.is_punct(sql, ',')) {
        expect_name = true;
      } else if (depth == 0 && t.is_punct(sql, ';')) {
        return {};
      }
      continue;
    }
    if (depth != 0 || t.kind != TokenKind::kWord) {
      if (depth == 0) expect_name = false;
      continue;
    }
    const std::string_view word = t.text(sql);
    if (expect_name) {
      if (!keyword_equals(word, "RECURSIVE")) expect_name = false;
      continue;
    }
    if (is_main_verb(word)) return word;
  }
  return {};
}

}  // namespace

std::string operation_name(std::string_view sql) {
  Lexer lexer(sql);
  Token t = lexer.next_significant();
  while (t.is_punct(sql, '(')) t = lexer.next_significant();
  if (t.kind != TokenKind::kWord) return {};
  const std::string_view word = t.text(sql);
  if (!is_keyword_shaped(word)) return {};
  if (keyword_equals(word, "WITH")) {
    const std::string_view verb = main_verb_after_with(lexer);
    return verb.empty() ? std::string("WITH") : upper(verb);
  }
  return upper(word);
}

}  // namespace dbwarden::sql
