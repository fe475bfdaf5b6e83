// SPDX-License-Identifier: Apache-2.0
#include "sql/classify.h"

#include <string>

#include "sql/char_class.h"
#include "sql/keywords.h"
#include "sql/statement_facts.h"

namespace dbwarden::sql {
namespace {

constexpr size_t kMaxKeywordLength = 32;

bool keyword_shaped(std::string_view w) {
  if (w.empty() || w.size() > kMaxKeywordLength) return false;
  for (char c : w) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

void assign_upper(std::string_view w, std::string& out) {
  out.assign(w);
  for (char& c : out) c = static_cast<char>(chars::to_upper(static_cast<unsigned char>(c)));
}

bool is_main_verb(std::string_view w) {
  for (std::string_view verb :
       {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"}) {
    if (keyword_equals(w, verb)) return true;
  }
  return false;
}

struct Table {
  std::string name;
  size_t index;  // token index of the clause keyword that named it
  size_t depth;
};

// Classifies tokens[b, e) (one statement, no depth-0 ';').
class StatementClassifier {
 public:
  StatementClassifier(Dialect dialect, std::string_view text, const std::vector<Token>& tokens,
                      size_t b, size_t e)
      : dialect_(dialect), text_(text), tk_(tokens), b_(b), e_(e) {}

  std::string operation;
  std::vector<Table> tables;
  size_t main_table = SIZE_MAX;  // index into tables
  bool unbounded = false;
  bool has_where() const { return has_where_; }

  void run() {
    find_operation();
    if (operation.empty() || operation == "SHOW") return;
    walk();
    for (size_t i = 0; i < tables.size(); ++i) {
      if (tables[i].depth == verb_depth_ && tables[i].index >= verb_idx_) {
        main_table = i;
        break;
      }
    }
    if (main_table == SIZE_MAX && !tables.empty()) main_table = 0;
    if ((operation == "UPDATE" || operation == "DELETE") && !has_where_) unbounded = true;
  }

 private:
  bool word_at(size_t i, std::string_view kw) const {
    return i < e_ && tk_[i].kind == TokenKind::kWord && keyword_equals(tk_[i].text(text_), kw);
  }
  bool punct_at(size_t i, char c) const { return i < e_ && tk_[i].is_punct(text_, c); }
  std::string_view sv(size_t i) const { return tk_[i].text(text_); }

  void find_operation() {
    size_t i = b_;
    while (punct_at(i, '(')) ++i;
    if (i >= e_ || tk_[i].kind != TokenKind::kWord || !keyword_shaped(sv(i))) return;
    verb_idx_ = i;
    verb_depth_ = i - b_;
    assign_upper(sv(i), operation);
    if (operation == "WITH") scan_ctes(i + 1);
  }

  // "[RECURSIVE] name [(cols)] AS [NOT] [MATERIALIZED] (body), ..." then the
  // main verb: names right after WITH/RECURSIVE or a ',' are CTE names.
  void scan_ctes(size_t i) {
    size_t depth = 0;
    bool expect_name = true;
    for (; i < e_; ++i) {
      const Token& t = tk_[i];
      if (t.kind == TokenKind::kPunct) {
        if (t.is_punct(text_, '(')) {
          ++depth;
        } else if (t.is_punct(text_, ')')) {
          if (depth == 0) return;
          --depth;
        } else if (depth == 0 && t.is_punct(text_, ',')) {
          expect_name = true;
        }
        continue;
      }
      if (depth != 0) continue;
      if (expect_name && (t.kind == TokenKind::kWord || t.kind == TokenKind::kQuotedIdent)) {
        if (t.kind == TokenKind::kWord && keyword_equals(sv(i), "RECURSIVE")) continue;
        std::string name;
        append_identifier(dialect_, t, text_, name);
        ctes_.push_back(std::move(name));
        expect_name = false;
        continue;
      }
      expect_name = false;
      if (t.kind == TokenKind::kWord && is_main_verb(sv(i))) {
        verb_idx_ = i;
        assign_upper(sv(i), operation);
        return;
      }
    }
  }

  bool is_function_paren(size_t open) const {
    if (open == b_) return false;
    const Token& p = tk_[open - 1];
    if (p.kind == TokenKind::kQuotedIdent) return true;
    if (p.kind != TokenKind::kWord) return false;
    const std::string_view w = p.text(text_);
    if (!is_keyword(w)) return true;
    for (std::string_view f : {"EXTRACT", "SUBSTRING", "TRIM", "POSITION", "OVERLAY", "CAST"}) {
      if (keyword_equals(w, f)) return true;
    }
    return false;
  }

  void walk() {
    size_t depth = verb_depth_;
    // Function-call parentheses per depth (only the innermost matters).
    std::vector<bool> function_group;
    for (size_t i = b_ + verb_depth_; i < e_; ++i) {
      const Token& t = tk_[i];
      if (t.is_punct(text_, '(')) {
        function_group.push_back(is_function_paren(i));
        ++depth;
        continue;
      }
      if (t.is_punct(text_, ')')) {
        if (!function_group.empty()) function_group.pop_back();
        if (depth > 0) --depth;
        continue;
      }
      if (t.kind != TokenKind::kWord) continue;
      if (!function_group.empty() && function_group.back()) continue;
      const std::string_view w = sv(i);
      if (keyword_equals(w, "FROM") || keyword_equals(w, "USING")) {
        read_list(i + 1, i, depth, true);
      } else if (keyword_equals(w, "JOIN") || keyword_equals(w, "STRAIGHT_JOIN")) {
        read_one(i + 1, i, depth, true);
      } else if (keyword_equals(w, "INTO")) {
        read_one(i + 1, i, depth, false);
      } else if (keyword_equals(w, "TABLE") || keyword_equals(w, "TABLES")) {
        size_t k = i + 1;
        if (word_at(k, "IF")) {
          ++k;
          if (word_at(k, "NOT")) ++k;
          if (word_at(k, "EXISTS")) ++k;
        }
        read_list(k, i, depth, false);
      } else if (i == verb_idx_ && (keyword_equals(w, "UPDATE") || keyword_equals(w, "TRUNCATE"))) {
        size_t k = i + 1;
        while (word_at(k, "LOW_PRIORITY") || word_at(k, "IGNORE")) ++k;
        if (!word_at(k, "TABLE")) read_list(k, i, depth, false);
      } else if (i == verb_idx_ && (keyword_equals(w, "INSERT") || keyword_equals(w, "REPLACE"))) {
        // MySQL: INTO is optional.
        size_t k = i + 1;
        while (word_at(k, "LOW_PRIORITY") || word_at(k, "DELAYED") || word_at(k, "HIGH_PRIORITY") ||
               word_at(k, "IGNORE")) {
          ++k;
        }
        if (!word_at(k, "INTO")) read_one(k, i, depth, false);
      } else if (i == verb_idx_ && dialect_ == Dialect::kMysql &&
                 (keyword_equals(w, "DESCRIBE") || keyword_equals(w, "DESC"))) {
        read_one(i + 1, i, depth, false);
      } else if (keyword_equals(w, "WHERE") && depth == verb_depth_ && i > verb_idx_) {
        has_where_ = true;
      }
    }
  }

  bool name_part(size_t i) const {
    if (i >= e_) return false;
    const Token& t = tk_[i];
    if (t.kind == TokenKind::kQuotedIdent) return true;
    if (t.kind != TokenKind::kWord) return false;
    const std::string_view w = t.text(text_);
    return w[0] != '@' && !is_keyword(w);
  }

  // Reads [ONLY] name[.name[.name]] at i; returns the index after it, or i
  // when there is no name there. `relation`: a following '(' makes it a call.
  size_t read_one(size_t i, size_t clause, size_t depth, bool relation) {
    if (word_at(i, "ONLY")) ++i;
    if (!name_part(i)) return i;
    std::string name;
    append_identifier(dialect_, tk_[i], text_, name);
    size_t k = i + 1;
    for (int parts = 1;
         parts < 3 && punct_at(k, '.') && k + 1 < e_ &&
         (tk_[k + 1].kind == TokenKind::kWord || tk_[k + 1].kind == TokenKind::kQuotedIdent);
         ++parts) {
      name.push_back('.');
      append_identifier(dialect_, tk_[k + 1], text_, name);
      k += 2;
    }
    if (relation && punct_at(k, '(')) return i;  // FROM generate_series(...)
    if (punct_at(k, '.')) return k;              // a.b.c.d: not a table name we know
    record(std::move(name), clause, depth);
    if (k < e_ && tk_[k].kind == TokenKind::kOperator && sv(k) == "*") ++k;  // FROM ONLY-less t *
    return k;
  }

  void read_list(size_t i, size_t clause, size_t depth, bool relation) {
    while (i < e_) {
      if (word_at(i, "LATERAL")) ++i;
      if (punct_at(i, '(')) {
        i = skip_parens(i);  // a subquery: the walk reads its own clauses
      } else {
        const size_t next = read_one(i, clause, depth, relation);
        if (next == i) return;
        i = next;
      }
      if (word_at(i, "AS")) ++i;
      if (name_part(i)) ++i;                     // alias
      if (punct_at(i, '(')) i = skip_parens(i);  // alias column list
      if (!punct_at(i, ',')) return;
      ++i;
    }
  }

  size_t skip_parens(size_t i) const {
    size_t depth = 0;
    for (; i < e_; ++i) {
      if (punct_at(i, '(')) {
        ++depth;
      } else if (punct_at(i, ')') && --depth == 0) {
        return i + 1;
      }
    }
    return e_;
  }

  void record(std::string name, size_t clause, size_t depth) {
    if (name.find('.') == std::string::npos) {
      for (const std::string& cte : ctes_) {
        if (cte == name) return;
      }
    }
    tables.push_back(Table{std::move(name), clause, depth});
  }

  Dialect dialect_;
  std::string_view text_;
  const std::vector<Token>& tk_;
  size_t b_, e_;
  size_t verb_idx_ = 0;
  size_t verb_depth_ = 0;
  bool has_where_ = false;
  std::vector<std::string> ctes_;
};

void add_unique(std::vector<std::string>& list, const std::string& name) {
  for (const std::string& have : list) {
    if (have == name) return;
  }
  list.push_back(name);
}

}  // namespace

void append_identifier(Dialect dialect, const Token& t, std::string_view text, std::string& out) {
  const std::string_view s = t.text(text);
  if (t.kind != TokenKind::kQuotedIdent) {
    if (dialect == Dialect::kMysql) {
      out.append(s);
    } else {
      for (char c : s)
        out.push_back(static_cast<char>(chars::to_lower(static_cast<unsigned char>(c))));
    }
    return;
  }
  size_t i = (s.size() >= 2 && (s[0] == 'U' || s[0] == 'u') && s[1] == '&') ? 2 : 0;
  if (i >= s.size()) return;
  const char quote = s[i++];
  size_t end = s.size();
  if (!t.unterminated && end > i) --end;  // closing quote
  for (; i < end; ++i) {
    out.push_back(s[i]);
    if (s[i] == quote && i + 1 < end && s[i + 1] == quote) ++i;
  }
}

void classify_tokens(Dialect dialect, std::string_view text, const std::vector<Token>& tokens,
                     Analysis& out) {
  out.operation.clear();
  out.collections.clear();
  out.unbounded_write = false;
  out.has_where = false;
  out.object_type.clear();
  out.alter_table_drop = false;
  out.grant_to_public = false;
  out.copy_program = false;
  out.statements = 0;
  std::string main_table;
  bool have_main = false;
  std::vector<std::string> others;
  size_t depth = 0;
  size_t begin = 0;
  for (size_t i = 0; i <= tokens.size(); ++i) {
    if (i < tokens.size()) {
      if (tokens[i].is_punct(text, '(')) ++depth;
      if (tokens[i].is_punct(text, ')') && depth > 0) --depth;
      if (!(depth == 0 && tokens[i].is_punct(text, ';'))) continue;
    }
    if (i > begin) {
      StatementClassifier c(dialect, text, tokens, begin, i);
      c.run();
      out.has_where = (out.statements == 0 || out.has_where) && c.has_where();
      ++out.statements;
      add_statement_facts(dialect, text, tokens, begin, i, out);
      const bool first = out.operation.empty() && !c.operation.empty();
      if (first) out.operation = c.operation;
      for (size_t k = 0; k < c.tables.size(); ++k) {
        if (first && k == c.main_table) {
          main_table = c.tables[k].name;
          have_main = true;
        } else {
          add_unique(others, c.tables[k].name);
        }
      }
      out.unbounded_write = out.unbounded_write || c.unbounded;
    }
    begin = i + 1;
  }
  if (have_main) out.collections.push_back(main_table);
  for (const std::string& t : others) add_unique(out.collections, t);
  set_summary(out);
}

void set_summary(Analysis& a) {
  a.summary = a.operation;
  if (!a.operation.empty() && !a.collections.empty()) {
    a.summary.push_back(' ');
    a.summary.append(a.collections.front());
  }
}

}  // namespace dbwarden::sql
