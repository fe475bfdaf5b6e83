// SPDX-License-Identifier: Apache-2.0
#include "sql/statement_facts.h"

#include <array>
#include <initializer_list>
#include <string>

#include "sql/char_class.h"

namespace dbwarden::sql {
namespace {

// Object types of more than one word. The last entry of a row may be "*": any
// word (TEXT SEARCH CONFIGURATION/DICTIONARY/PARSER/TEMPLATE).
constexpr std::array<std::array<std::string_view, 3>, 16> kMultiWordTypes = {{
    {"MATERIALIZED", "VIEW", ""},
    {"FOREIGN", "DATA", "WRAPPER"},
    {"FOREIGN", "TABLE", ""},
    {"EVENT", "TRIGGER", ""},
    {"CONSTRAINT", "TRIGGER", ""},
    {"USER", "MAPPING", ""},  // only before FOR / IF: see object_type_words
    {"ACCESS", "METHOD", ""},
    {"DEFAULT", "PRIVILEGES", ""},
    {"TEXT", "SEARCH", "*"},
    {"OPERATOR", "CLASS", ""},
    {"OPERATOR", "FAMILY", ""},
    {"LARGE", "OBJECT", ""},
    {"LOGFILE", "GROUP", ""},
    {"RESOURCE", "GROUP", ""},
    {"SPATIAL", "REFERENCE", "SYSTEM"},
    {"PROCEDURAL", "LANGUAGE", ""},
}};

// Words between the verb and the object type that do not change what kind of
// object it is.
bool is_modifier(std::string_view w) {
  for (std::string_view m :
       {"TEMP", "TEMPORARY", "GLOBAL", "LOCAL", "UNLOGGED", "UNIQUE", "RECURSIVE", "ONLINE",
        "OFFLINE", "IGNORE", "TRUSTED", "FULLTEXT", "SPATIAL"}) {
    if (keyword_equals(w, m)) return true;
  }
  return false;
}

bool keyword_shaped(std::string_view w) {
  if (w.empty() || w.size() > 32) return false;
  for (char c : w) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')) return false;
  }
  return true;
}

class FactReader {
 public:
  FactReader(Dialect dialect, std::string_view text, const std::vector<Token>& tokens, size_t b,
             size_t e)
      : dialect_(dialect), text_(text), tk_(tokens), b_(b), e_(e) {}

  void run(Analysis& out) {
    size_t i = b_;
    while (punct_at(i, '(')) ++i;
    if (i >= e_ || tk_[i].kind != TokenKind::kWord) return;
    const size_t verb = i;
    if (word_at(verb, "TRUNCATE")) {
      if (out.object_type.empty()) out.object_type = "TABLE";
      return;
    }
    if (word_at(verb, "GRANT")) {
      out.grant_to_public = out.grant_to_public || grants_to_public(verb + 1);
      return;
    }
    if (word_at(verb, "COPY")) {
      out.copy_program = out.copy_program || copies_with_program(verb + 1);
      return;
    }
    if (!(word_at(verb, "CREATE") || word_at(verb, "ALTER") || word_at(verb, "DROP") ||
          word_at(verb, "RENAME"))) {
      return;
    }
    std::string type;
    const size_t after = object_type_words(verb + 1, type);
    if (word_at(verb, "ALTER") && type == "TABLE") {
      out.alter_table_drop = out.alter_table_drop || action_list_drops(after);
    }
    if (word_at(verb, "ALTER") && type == "DEFAULT PRIVILEGES") {
      for (size_t k = after; k < e_; ++k) {
        if (word_at(k, "GRANT")) {
          out.grant_to_public = out.grant_to_public || grants_to_public(k + 1);
          break;
        }
      }
    }
    if (out.object_type.empty()) out.object_type = std::move(type);
  }

 private:
  bool word_at(size_t i, std::string_view kw) const {
    return i < e_ && tk_[i].kind == TokenKind::kWord && keyword_equals(tk_[i].text(text_), kw);
  }
  bool punct_at(size_t i, char c) const { return i < e_ && tk_[i].is_punct(text_, c); }
  bool operator_at(size_t i, std::string_view op) const {
    return i < e_ && tk_[i].kind == TokenKind::kOperator && tk_[i].text(text_) == op;
  }
  bool name_at(size_t i) const {
    return i < e_ && (tk_[i].kind == TokenKind::kWord || tk_[i].kind == TokenKind::kQuotedIdent ||
                      tk_[i].kind == TokenKind::kString);
  }

  static void append_upper(std::string_view w, std::string& out) {
    if (!out.empty()) out.push_back(' ');
    for (char c : w)
      out.push_back(static_cast<char>(chars::to_upper(static_cast<unsigned char>(c))));
  }

  // MySQL: DEFINER = user | 'user'@'host' | user@host | CURRENT_USER[()]
  size_t skip_user(size_t i) const {
    if (!name_at(i)) return i;
    ++i;
    if (punct_at(i, '(') && punct_at(i + 1, ')')) return i + 2;
    if (i < e_ && tk_[i].kind == TokenKind::kWord && tk_[i].text(text_).front() == '@')
      return i + 1;
    if (operator_at(i, "@") && name_at(i + 1)) return i + 2;
    return i;
  }

  // Reads the object type starting at i (after the verb) into `type`; returns
  // the index after it.
  size_t object_type_words(size_t i, std::string& type) const {
    while (i < e_) {
      if (size_t n = multi_word_type_at(i); n != 0) {
        for (size_t k = i; k < i + n; ++k) append_upper(tk_[k].text(text_), type);
        return i + n;
      }
      if (word_at(i, "OR") && (word_at(i + 1, "REPLACE") || word_at(i + 1, "ALTER"))) {
        i += 2;
      } else if (word_at(i, "DEFINER") && operator_at(i + 1, "=")) {
        const size_t next = skip_user(i + 2);
        if (next == i + 2) break;
        i = next;
      } else if (word_at(i, "ALGORITHM") && operator_at(i + 1, "=") && name_at(i + 2)) {
        i += 3;
      } else if (word_at(i, "SQL") && word_at(i + 1, "SECURITY") && name_at(i + 2)) {
        i += 3;
      } else if (i < e_ && tk_[i].kind == TokenKind::kWord && is_modifier(tk_[i].text(text_))) {
        ++i;
      } else {
        break;
      }
    }
    if (i < e_ && tk_[i].kind == TokenKind::kWord && keyword_shaped(tk_[i].text(text_))) {
      // MySQL reads DROP TABLES and RENAME TABLES as DROP/RENAME TABLE.
      append_upper(word_at(i, "TABLES") ? std::string_view("TABLE") : tk_[i].text(text_), type);
      return i + 1;
    }
    return i;
  }

  size_t multi_word_type_at(size_t i) const {
    for (const auto& row : kMultiWordTypes) {
      size_t n = 0;
      while (n < row.size() && !row[n].empty()) {
        const bool any = row[n] == "*";
        if (!(any ? (i + n < e_ && tk_[i + n].kind == TokenKind::kWord) : word_at(i + n, row[n]))) {
          n = 0;
          break;
        }
        ++n;
      }
      if (n == 0) continue;
      // PostgreSQL's USER MAPPING is always followed by FOR or IF; MySQL's
      // CREATE USER mapping names a user called "mapping".
      if (row[1] == "MAPPING" && !word_at(i + n, "FOR") && !word_at(i + n, "IF")) continue;
      return n;
    }
    return 0;
  }

  // ALTER TABLE [IF EXISTS] [ONLY] name [*] action [, action ...]
  bool action_list_drops(size_t i) const {
    if (word_at(i, "IF") && word_at(i + 1, "EXISTS")) i += 2;
    if (word_at(i, "ONLY")) ++i;
    if (!name_at(i)) return false;
    ++i;
    for (int parts = 1; parts < 3 && punct_at(i, '.') && name_at(i + 1); ++parts) i += 2;
    if (operator_at(i, "*")) ++i;
    size_t depth = 0;
    bool action_start = true;
    for (; i < e_; ++i) {
      if (punct_at(i, '(')) {
        ++depth;
        action_start = false;
        continue;
      }
      if (punct_at(i, ')')) {
        if (depth > 0) --depth;
        continue;
      }
      if (depth != 0) continue;
      if (punct_at(i, ',')) {
        action_start = true;
        continue;
      }
      if (action_start && word_at(i, "DROP")) return true;
      action_start = false;
    }
    return false;
  }

  bool is_public(size_t i) const {
    if (word_at(i, "PUBLIC")) return true;
    // PostgreSQL's grammar reads the role name "public" as PUBLIC however it is written.
    return dialect_ == Dialect::kPostgresql && i < e_ && tk_[i].kind == TokenKind::kQuotedIdent &&
           tk_[i].text(text_) == "\"public\"";
  }

  // GRANT privileges ON objects TO grantee [, grantee ...] [WITH ...] [GRANTED BY ...]
  bool grants_to_public(size_t i) const {
    size_t depth = 0;
    for (; i < e_; ++i) {
      if (punct_at(i, '(')) ++depth;
      if (punct_at(i, ')') && depth > 0) --depth;
      if (depth == 0 && word_at(i, "TO")) break;
    }
    bool grantee_start = true;
    for (++i; i < e_; ++i) {
      if (punct_at(i, '(')) ++depth;
      if (punct_at(i, ')') && depth > 0) --depth;
      if (depth != 0) continue;
      if (punct_at(i, ',')) {
        grantee_start = true;
        continue;
      }
      if (word_at(i, "WITH") || word_at(i, "GRANTED")) return false;
      if (grantee_start) {
        if (word_at(i, "GROUP")) ++i;
        if (is_public(i)) return true;
      }
      grantee_start = false;
    }
    return false;
  }

  // COPY ... { TO | FROM } PROGRAM 'command'
  bool copies_with_program(size_t i) const {
    size_t depth = 0;
    for (; i < e_; ++i) {
      if (punct_at(i, '(')) ++depth;
      if (punct_at(i, ')') && depth > 0) --depth;
      if (depth == 0 && word_at(i, "PROGRAM") && (word_at(i - 1, "TO") || word_at(i - 1, "FROM"))) {
        return true;
      }
    }
    return false;
  }

  Dialect dialect_;
  std::string_view text_;
  const std::vector<Token>& tk_;
  size_t b_, e_;
};

}  // namespace

void add_statement_facts(Dialect dialect, std::string_view text, const std::vector<Token>& tokens,
                         size_t begin, size_t end, Analysis& out) {
  FactReader(dialect, text, tokens, begin, end).run(out);
}

}  // namespace dbwarden::sql
