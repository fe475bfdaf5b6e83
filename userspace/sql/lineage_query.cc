// SPDX-License-Identifier: Apache-2.0
//
// Queries: SELECT with its clauses, set operations (column i of the result
// comes from column i of every arm), VALUES, and WITH (CTEs, recursive ones to
// a fixed point).
#include <string>

#include "sql/lineage_tracer.h"

namespace dbwarden::sql::lineage_detail {
namespace {

// A recursive CTE's sources only grow and are finite, so the fixed point comes
// within a few rounds; more than this means something is wrong.
constexpr int kMaxRecursiveRounds = 64;

bool same_values(const std::vector<Column>& a, const std::vector<Column>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].value.flow != b[i].value.flow ||
        a[i].value.sources.size() != b[i].value.sources.size()) {
      return false;
    }
  }
  return true;
}

void rename(std::vector<Column>& cols, const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size() && i < cols.size(); ++i) cols[i].name = names[i];
}

}  // namespace

std::vector<Column> Tracer::query(const Json& node, const Scope* outer, const CteEnv* ctes) {
  if (failed()) return {};
  DepthGuard guard(*this);
  if (!guard.ok()) return {};
  const std::string_view type = node_type(node);
  if (type == "SelectStmt") return select(node_body(node), outer, ctes);
  if (type == "InsertStmt" || type == "UpdateStmt" || type == "DeleteStmt") {
    return dml(node, outer, ctes);
  }
  fail("a query of kind " + std::string(type.empty() ? "?" : type) + " is not followed");
  return {};
}

void Tracer::with_clause(const Json& with, const Scope* outer, CteEnv& env) {
  const Json* list = field(with, "ctes");
  if (list == nullptr) return;
  const bool recursive = field(with, "recursive") != nullptr;
  for (const Json& c : *list) {
    if (failed()) return;
    if (node_type(c) != "CommonTableExpr") {
      fail("unexpected node in WITH");
      return;
    }
    const Json& cte = node_body(c);
    Cte entry;
    entry.name = string_field(cte, "ctename");
    const std::vector<std::string> names = string_list(field(cte, "aliascolnames"));
    const Json* q = field(cte, "ctequery");
    if (q == nullptr) {
      fail("CTE " + entry.name + " without a query");
      return;
    }
    const Json* arms = node_type(*q) == "SelectStmt" ? &node_body(*q) : nullptr;
    const bool union_arms = recursive && arms != nullptr &&
                            string_field(*arms, "op") != "SETOP_NONE" &&
                            !string_field(*arms, "op").empty() && field(*arms, "larg") != nullptr &&
                            field(*arms, "rarg") != nullptr;
    if (!union_arms) {
      // Also a WITH RECURSIVE member that does not refer to itself.
      entry.cols = query(*q, outer, &env);
      rename(entry.cols, names);
      env.ctes.push_back(std::move(entry));
      continue;
    }
    // WITH RECURSIVE r AS (base UNION [ALL] step): the base arm first, then the
    // step arm (which reads r) again and again until r's sources stop growing.
    entry.cols = select(*field(*arms, "larg"), outer, &env);
    rename(entry.cols, names);
    env.ctes.push_back(entry);
    const size_t at = env.ctes.size() - 1;
    for (int round = 0;; ++round) {
      if (failed()) return;
      if (round == kMaxRecursiveRounds) {
        fail("recursive CTE " + entry.name + " did not settle");
        return;
      }
      std::vector<Column> step = select(*field(*arms, "rarg"), outer, &env);
      if (failed()) return;
      if (step.size() != env.ctes[at].cols.size()) {
        fail("recursive CTE " + entry.name + ": its arms have different column counts");
        return;
      }
      std::vector<Column> next = env.ctes[at].cols;
      for (size_t i = 0; i < next.size(); ++i) merge_value(next[i].value, step[i].value);
      if (same_values(next, env.ctes[at].cols)) break;
      env.ctes[at].cols = std::move(next);
    }
  }
}

std::vector<Column> Tracer::values(const Json& lists, const Scope* outer, const CteEnv* ctes) {
  std::vector<Column> cols;
  for (const Json& row : lists) {
    const Json* items = node_type(row) == "List" ? field(node_body(row), "items") : nullptr;
    if (items == nullptr) continue;
    if (cols.empty()) {
      for (size_t i = 0; i < items->size(); ++i) {
        cols.push_back(Column{"column" + std::to_string(i + 1), {}});
      }
    } else if (items->size() != cols.size()) {
      fail("VALUES lists of different lengths");
      return {};
    }
    for (size_t i = 0; i < items->size(); ++i) {
      merge_value(cols[i].value, expr((*items)[i], outer, ctes));
    }
  }
  return cols;
}

std::vector<Column> Tracer::select(const Json& body, const Scope* outer, const CteEnv* ctes) {
  if (failed()) return {};
  DepthGuard guard(*this);
  if (!guard.ok()) return {};
  CteEnv env;
  env.parent = ctes;
  if (const Json* with = field(body, "withClause")) {
    with_clause(*with, outer, env);
    if (failed()) return {};
  }
  std::vector<Column> out;
  Scope scope;
  scope.parent = outer;
  const std::string op = string_field(body, "op");
  if (!op.empty() && op != "SETOP_NONE") {
    // UNION / INTERSECT / EXCEPT: names from the left arm, sources from all.
    const Json* larg = field(body, "larg");
    const Json* rarg = field(body, "rarg");
    if (larg == nullptr || rarg == nullptr) {
      fail("a set operation without two arms");
      return {};
    }
    out = select(*larg, outer, &env);
    const std::vector<Column> right = select(*rarg, outer, &env);
    if (failed()) return {};
    if (out.size() != right.size()) {
      fail("set operation arms have different column counts");
      return {};
    }
    for (size_t i = 0; i < out.size(); ++i) merge_value(out[i].value, right[i].value);
    // INTERSECT / EXCEPT compare whole rows: every column is a predicate.
    if (op != "SETOP_UNION") {
      for (const Column& c : out) record_predicate(c.value.sources);
    }
  } else if (const Json* lists = field(body, "valuesLists")) {
    out = values(*lists, outer, &env);
  } else {
    if (const Json* from = field(body, "fromClause")) {
      for (const Json& item : *from) {
        from_item(item, scope, &env);
        if (failed()) return {};
      }
    }
    if (const Json* where = field(body, "whereClause")) predicate(*where, &scope, &env);
    out = targets(field(body, "targetList"), &scope, &env);
    if (const Json* group = field(body, "groupClause")) {
      for (const Json& g : *group) sort_item(g, out, &scope, &env, false);
    }
    if (const Json* having = field(body, "havingClause")) predicate(*having, &scope, &env);
    if (const Json* windows = field(body, "windowClause")) {
      for (const Json& w : *windows) {
        const Json& def = node_body(w);
        if (const Json* part = field(def, "partitionClause")) {
          for (const Json& p : *part) predicate(p, &scope, &env);
        }
        if (const Json* order = field(def, "orderClause")) {
          for (const Json& s : *order) {
            if (const Json* n = field(node_body(s), "node")) predicate(*n, &scope, &env);
          }
        }
      }
    }
    // DISTINCT ON (exprs); plain DISTINCT is a list holding one empty node.
    if (const Json* distinct = field(body, "distinctClause")) {
      for (const Json& d : *distinct) {
        if (!node_type(d).empty()) sort_item(d, out, &scope, &env, true);
      }
    }
  }
  if (const Json* sort = field(body, "sortClause")) {
    for (const Json& s : *sort) {
      if (const Json* n = field(node_body(s), "node")) sort_item(*n, out, &scope, &env, true);
    }
  }
  for (const char* k : {"limitOffset", "limitCount"}) {
    if (const Json* e = field(body, k)) predicate(*e, &scope, &env);
  }
  if (failed()) return {};
  return out;
}

}  // namespace dbwarden::sql::lineage_detail
