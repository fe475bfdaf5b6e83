// SPDX-License-Identifier: Apache-2.0
//
// pg_named_objects(): the names a statement uses, by a plain walk of libpg_query's JSON
// tree. Generic on purpose: any object with a "relname" is a relation (RangeVar, wrapped
// or bare where its field's type is fixed: InsertStmt.relation, IntoClause.rel, ...), any
// with a "funcname" list a function call; over-counting a name only makes the caller more
// careful. Iterative, so a deep tree cannot exhaust the stack.
#include <pg_query.h>

#include <algorithm>

#include "sql/lineage_tracer.h"

namespace dbwarden::sql {

namespace {

using lineage_detail::Json;

void AddOnce(std::vector<QualifiedName>& to, QualifiedName n) {
  if (std::find(to.begin(), to.end(), n) == to.end()) to.push_back(std::move(n));
}

}  // namespace

NamedObjects pg_named_objects(const std::string& sql) {
  NamedObjects out;
  PgQueryParseResult parsed = pg_query_parse(sql.c_str());
  if (parsed.error != nullptr || parsed.parse_tree == nullptr) {
    pg_query_free_parse_result(parsed);
    return out;
  }
  const Json tree = Json::parse(parsed.parse_tree, nullptr, false);
  pg_query_free_parse_result(parsed);
  const Json* stmts = lineage_detail::field(tree, "stmts");
  if (tree.is_discarded() || (stmts != nullptr && (!stmts->is_array() || stmts->size() > 1))) {
    return out;
  }
  out.parsed = true;
  if (stmts == nullptr) return out;
  std::vector<const Json*> todo{stmts};
  while (!todo.empty()) {
    const Json& node = *todo.back();
    todo.pop_back();
    if (node.is_array()) {
      for (const Json& item : node) {
        if (item.is_structured()) todo.push_back(&item);
      }
      continue;
    }
    if (!node.is_object()) continue;
    const Json* relname = lineage_detail::field(node, "relname");
    if (relname != nullptr && relname->is_string()) {
      AddOnce(out.relations,
              {lineage_detail::string_field(node, "schemaname"), relname->get<std::string>()});
    }
    const Json* funcname = lineage_detail::field(node, "funcname");
    if (funcname != nullptr && funcname->is_array()) {
      const std::vector<std::string> parts = lineage_detail::string_list(funcname);
      QualifiedName f{parts.size() >= 2 ? parts[parts.size() - 2] : "",
                      parts.empty() ? "" : parts.back()};
      if ((f.schema.empty() || f.schema == "pg_catalog") && lineage_detail::reads_by_name(f.name)) {
        out.runs_elsewhere = true;
      }
      AddOnce(out.functions, std::move(f));
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string& key = it.key();
      if (key == "FetchStmt" || key == "ExecuteStmt" || key == "CallStmt" || key == "DoStmt") {
        out.runs_elsewhere = true;
      }
      if (it->is_structured()) todo.push_back(&*it);
    }
  }
  return out;
}

}  // namespace dbwarden::sql
