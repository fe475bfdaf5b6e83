// SPDX-License-Identifier: Apache-2.0
#include "sql/pg_parse.h"

#include <pg_query.h>

#include <nlohmann/json.hpp>
#include <string_view>

namespace dbwarden::sql {
namespace {

// The order that matters is kept by the tree's arrays (the main table of a
// SELECT is the first relation of its fromClause array; a JoinExpr's "larg"
// sorts before its "rarg"), so objects may use nlohmann's sorted map: reading
// libpg_query's JSON into it costs ~26 us for a 1.4 KB tree against ~63 us for
// the insertion-ordered json (measured here; bench/README.md, SQL analysis).
using Json = nlohmann::json;

// libpg_query's JSON (PostgreSQL 15 node names): a node is {"TypeName": {...}}
// where a field holds any Node, and the bare struct where the field's type is
// fixed (UpdateStmt.relation is a RangeVar). A RangeVar is recognised by its
// "relname" either way.
bool range_var_name(const Json& obj, std::string& out) {
  const auto rel = obj.find("relname");
  if (rel == obj.end() || !rel->is_string()) return false;
  out.clear();
  for (const char* key : {"catalogname", "schemaname"}) {
    const auto part = obj.find(key);
    if (part != obj.end() && part->is_string() && !part->get_ref<const std::string&>().empty()) {
      out += part->get_ref<const std::string&>();
      out += '.';
    }
  }
  out += rel->get_ref<const std::string&>();
  return true;
}

class TreeReader {
 public:
  explicit TreeReader(ParsedStatement& out) : out_(out) {}

  void statement(const Json& stmt) {
    ctes_.clear();
    collect_ctes(stmt);
    if (!stmt.is_object() || stmt.empty()) return;
    const std::string& type = stmt.begin().key();
    const Json& node = stmt.begin().value();
    if (type == "UpdateStmt" || type == "DeleteStmt") {
      if (!node.contains("whereClause")) out_.unbounded_write = true;
    }
    if (type == "DropStmt") drop_objects(node);
    // The main table: the statement's own relation, else the first in its
    // FROM (through set operations), else the first anywhere.
    std::string name;
    const auto rel = node.find("relation");
    if (rel != node.end() && range_var_name(*rel, name)) {
      add_main(name);
    } else if (type == "SelectStmt") {
      select_main(node);
    }
    walk(node);
  }

 private:
  void collect_ctes(const Json& j) {
    if (j.is_object()) {
      const auto cte = j.find("CommonTableExpr");
      if (cte != j.end() && cte->is_object()) {
        const auto name = cte->find("ctename");
        if (name != cte->end() && name->is_string()) ctes_.push_back(name->get<std::string>());
      }
      for (const auto& [key, value] : j.items()) collect_ctes(value);
    } else if (j.is_array()) {
      for (const auto& v : j) collect_ctes(v);
    }
  }

  void select_main(const Json& select) {
    const auto from = select.find("fromClause");
    if (from != select.end()) {
      first_in(*from);
      return;
    }
    const auto larg = select.find("larg");
    if (larg != select.end()) select_main(*larg);
  }

  void first_in(const Json& j) {
    if (found_main_) return;
    if (j.is_object()) {
      std::string name;
      if (range_var_name(j, name) && !is_cte(j, name)) {
        add_main(name);
        return;
      }
      for (const auto& [key, value] : j.items()) first_in(value);
    } else if (j.is_array()) {
      for (const auto& v : j) first_in(v);
    }
  }

  void walk(const Json& j) {
    if (j.is_object()) {
      std::string name;
      if (range_var_name(j, name)) {
        if (!is_cte(j, name)) add(name);
        return;
      }
      for (const auto& [key, value] : j.items()) walk(value);
    } else if (j.is_array()) {
      for (const auto& v : j) walk(v);
    }
  }

  // DROP TABLE/VIEW name lists are lists of String nodes, not RangeVars.
  void drop_objects(const Json& drop) {
    const auto type = drop.find("removeType");
    if (type == drop.end() || !type->is_string()) return;
    const std::string& t = type->get_ref<const std::string&>();
    if (t != "OBJECT_TABLE" && t != "OBJECT_VIEW" && t != "OBJECT_MATVIEW" &&
        t != "OBJECT_FOREIGN_TABLE") {
      return;
    }
    const auto objects = drop.find("objects");
    if (objects == drop.end() || !objects->is_array()) return;
    for (const Json& obj : *objects) {
      if (!obj.is_object()) continue;
      const auto list = obj.find("List");
      if (list == obj.end() || !list->is_object()) continue;
      const auto items = list->find("items");
      if (items == list->end() || !items->is_array()) continue;
      std::string name;
      for (const Json& part : *items) {
        if (!part.is_object()) continue;
        const auto str = part.find("String");
        if (str == part.end() || !str->is_object()) continue;
        const auto sval = str->find("sval");
        if (sval == str->end() || !sval->is_string()) continue;
        if (!name.empty()) name += '.';
        name += sval->get_ref<const std::string&>();
      }
      if (!name.empty()) add(name);
    }
  }

  bool is_cte(const Json& range_var, const std::string& name) const {
    const auto schema = range_var.find("schemaname");
    if (schema != range_var.end()) return false;
    for (const std::string& c : ctes_) {
      if (c == name) return true;
    }
    return false;
  }

  // Only the first statement of a multi-statement text has the main table.
  void add_main(const std::string& name) {
    if (found_main_) {
      add(name);
      return;
    }
    found_main_ = true;
    for (auto it = out_.collections.begin(); it != out_.collections.end(); ++it) {
      if (*it == name) {
        out_.collections.erase(it);
        break;
      }
    }
    out_.collections.insert(out_.collections.begin(), name);
  }

  void add(const std::string& name) {
    for (const std::string& have : out_.collections) {
      if (have == name) return;
    }
    out_.collections.push_back(name);
  }

  ParsedStatement& out_;
  std::vector<std::string> ctes_;
  bool found_main_ = false;
};

}  // namespace

bool pg_parse(const std::string& sql, ParsedStatement& out) {
  out = ParsedStatement{};
  PgQueryParseResult result = pg_query_parse(sql.c_str());
  if (result.error != nullptr || result.parse_tree == nullptr) {
    pg_query_free_parse_result(result);
    return false;
  }
  Json tree = Json::parse(std::string_view(result.parse_tree), nullptr, false);
  pg_query_free_parse_result(result);
  if (tree.is_discarded()) return false;
  const auto stmts = tree.find("stmts");
  if (stmts == tree.end() || !stmts->is_array()) return true;  // empty text or comments only
  TreeReader reader(out);
  for (const Json& raw : *stmts) {
    const auto stmt = raw.find("stmt");
    if (stmt == raw.end()) continue;
    ++out.statements;
    reader.statement(*stmt);
  }
  return true;
}

}  // namespace dbwarden::sql
