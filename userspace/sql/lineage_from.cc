// SPDX-License-Identifier: Apache-2.0
//
// FROM items: tables, views (expanded from their definitions), CTE
// references, sub-queries, joins and functions, each becoming namespace items
// the way PostgreSQL's transformFromClauseItem (parser/parse_clause.c) makes them.
#include <pg_query.h>

#include <algorithm>
#include <array>
#include <string>

#include "sql/lineage_tracer.h"

namespace dbwarden::sql::lineage_detail {
namespace {

// Views nested deeper than this are not followed (PostgreSQL has no limit of
// its own, but a real schema is never this deep and a cycle must end).
constexpr size_t kMaxViewDepth = 16;

// Renames the first columns after an alias's column list: `AS t(a, b)`.
void apply_alias_columns(const Json* alias, std::vector<Column>& cols) {
  if (alias == nullptr) return;
  const std::vector<std::string> names = string_list(field(*alias, "colnames"));
  for (size_t i = 0; i < names.size() && i < cols.size(); ++i) cols[i].name = names[i];
}

NsItem make_item(std::string refname, const Json* alias, std::vector<Column> cols) {
  NsItem item;
  item.refname = alias != nullptr ? string_field(*alias, "aliasname") : std::move(refname);
  apply_alias_columns(alias, cols);
  item.cols = std::move(cols);
  return item;
}

// Set-returning functions of PostgreSQL's catalog whose result columns are
// known: their values come from their arguments. Empty: one column, named
// after the alias or the function.
struct KnownFunction {
  const char* name;
  std::array<const char*, 3> columns;
};
constexpr KnownFunction kKnownFunctions[] = {
    {"unnest", {}},
    {"generate_series", {}},
    {"generate_subscripts", {}},
    {"regexp_matches", {}},
    {"regexp_split_to_table", {}},
    {"string_to_table", {}},
    {"json_array_elements", {"value"}},
    {"jsonb_array_elements", {"value"}},
    {"json_array_elements_text", {"value"}},
    {"jsonb_array_elements_text", {"value"}},
    {"json_object_keys", {}},
    {"jsonb_object_keys", {}},
    {"json_each", {"key", "value"}},
    {"jsonb_each", {"key", "value"}},
    {"json_each_text", {"key", "value"}},
    {"jsonb_each_text", {"key", "value"}},
    {"jsonb_path_query", {}},
    {"json_to_record", {}},
    {"jsonb_to_record", {}},
    {"json_to_recordset", {}},
    {"jsonb_to_recordset", {}},
};

const KnownFunction* known_function(const Json& func_call) {
  const std::vector<std::string> names = string_list(field(node_body(func_call), "funcname"));
  if (names.empty() || names.size() > 2) return nullptr;
  if (names.size() == 2 && names[0] != "pg_catalog") return nullptr;
  for (const KnownFunction& f : kKnownFunctions) {
    if (names.back() == f.name) return &f;
  }
  return nullptr;
}

}  // namespace

std::vector<Column> Tracer::view(const Catalog::Relation& rel) {
  const std::string key = rel.schema + "." + rel.name;
  if (auto it = views_.find(key); it != views_.end()) return it->second;
  if (std::find(views_open_.begin(), views_open_.end(), key) != views_open_.end()) {
    fail("view " + key + " refers to itself");
    return {};
  }
  if (view_depth_ >= kMaxViewDepth) {
    fail("views nested deeper than " + std::to_string(kMaxViewDepth) + " at " + key);
    return {};
  }
  PgQueryParseResult parsed = pg_query_parse(rel.view_definition.c_str());
  if (parsed.error != nullptr || parsed.parse_tree == nullptr) {
    fail("view " + key + ": its definition does not parse" +
         (parsed.error != nullptr ? std::string(": ") + parsed.error->message : std::string()));
    pg_query_free_parse_result(parsed);
    return {};
  }
  const Json tree = Json::parse(parsed.parse_tree, nullptr, false);
  pg_query_free_parse_result(parsed);
  const Json* stmts = tree.is_object() ? field(tree, "stmts") : nullptr;
  const Json* stmt = stmts != nullptr && stmts->size() == 1 ? field((*stmts)[0], "stmt") : nullptr;
  if (stmt == nullptr) {
    fail("view " + key + ": its definition is not one query");
    return {};
  }
  views_open_.push_back(key);
  ++view_depth_;
  std::vector<Column> cols = query(*stmt, nullptr, nullptr);
  --view_depth_;
  views_open_.pop_back();
  if (failed()) return {};
  if (cols.size() != rel.columns.size()) {
    fail("view " + key + ": its definition yields " + std::to_string(cols.size()) +
         " columns, the catalog lists " + std::to_string(rel.columns.size()));
    return {};
  }
  // CREATE VIEW v (a, b) AS ...: the catalog's names are the view's.
  for (size_t i = 0; i < cols.size(); ++i) cols[i].name = rel.columns[i];
  views_[key] = cols;
  return cols;
}

std::vector<Column> Tracer::range_var(const Json& rv, Scope& scope, const CteEnv* ctes) {
  const std::string schema = string_field(rv, "schemaname");
  const std::string name = string_field(rv, "relname");
  const Json* alias = field(rv, "alias");
  if (schema.empty() && ctes != nullptr) {
    if (const Cte* cte = ctes->find(name)) {
      NsItem item = make_item(name, alias, cte->cols);
      std::vector<Column> cols = item.cols;
      scope.items.push_back(std::move(item));
      return cols;
    }
  }
  std::optional<Catalog::Relation> rel = catalog_.relation(schema, name);
  if (!rel) {
    fail("relation " + (schema.empty() ? name : schema + "." + name) + " is not in the catalog");
    return {};
  }
  std::vector<Column> cols;
  if (rel->is_view) {
    cols = view(*rel);
    if (failed()) return {};
  } else {
    cols.reserve(rel->columns.size());
    for (const std::string& c : rel->columns) {
      cols.push_back(Column{c, Value{{ColumnRef{rel->schema, rel->name, c}}, Flow::kCopy}});
    }
  }
  NsItem item = make_item(name, alias, std::move(cols));
  item.base_table = !rel->is_view;
  // An unaliased `s.t` also answers to `s.t.column`.
  if (alias == nullptr) item.schema = rel->schema;
  cols = item.cols;
  scope.items.push_back(std::move(item));
  return cols;
}

std::vector<Column> Tracer::range_function(const Json& body, Scope& scope, const CteEnv* ctes) {
  // Function arguments may refer to earlier FROM items (implicitly LATERAL).
  std::vector<Column> cols;
  const Json* alias = field(body, "alias");
  const std::string alias_name = alias != nullptr ? string_field(*alias, "aliasname") : "";
  const Json* functions = field(body, "functions");
  if (functions == nullptr) {
    fail("a function in FROM without a function");
    return {};
  }
  const bool single = functions->size() == 1;
  for (const Json& f : *functions) {
    const Json* items = node_type(f) == "List" ? field(node_body(f), "items") : nullptr;
    if (items == nullptr || items->empty()) {
      fail("unexpected function item in FROM");
      return {};
    }
    const Json& call = (*items)[0];
    const Json* coldefs = items->size() > 1 && node_type((*items)[1]) == "List"
                              ? field(node_body((*items)[1]), "items")
                              : nullptr;
    if (node_type(call) != "FuncCall") {
      // XMLTABLE-like or SQL value functions: the value comes from the expression.
      if (node_type(call) != "SQLValueFunction") {
        fail("a FROM item of kind " + std::string(node_type(call)) + " is not followed");
        return {};
      }
    }
    const KnownFunction* known = node_type(call) == "FuncCall" ? known_function(call) : nullptr;
    if (node_type(call) == "FuncCall" && known == nullptr) {
      const std::vector<std::string> n = string_list(field(node_body(call), "funcname"));
      std::string shown;
      for (const std::string& part : n) shown += (shown.empty() ? "" : ".") + part;
      fail("function " + shown + "() in FROM returns rows this tracer cannot follow");
      return {};
    }
    Value v = expr(call, &scope, ctes);
    v.flow = Flow::kDerived;
    if (coldefs != nullptr) {
      for (const Json& cd : *coldefs) {
        cols.push_back(Column{string_field(node_body(cd), "colname"), v});
      }
    } else if (known != nullptr && known->columns[0] != nullptr) {
      for (const char* c : known->columns) {
        if (c != nullptr) cols.push_back(Column{c, v});
      }
    } else {
      // One column: named after the alias when there is one function.
      std::string name = single && !alias_name.empty() ? alias_name : default_name(call);
      cols.push_back(Column{std::move(name), v});
    }
  }
  if (failed()) return {};
  if (field(body, "ordinality") != nullptr) cols.push_back(Column{"ordinality", Value{}});
  // The alias's column list renames; a coldeflist in the alias position
  // (`AS t(a int, b text)`) names them too.
  if (const Json* coldefs = field(body, "coldeflist")) {
    for (size_t i = 0; i < coldefs->size() && i < cols.size(); ++i) {
      cols[i].name = string_field(node_body((*coldefs)[i]), "colname");
    }
  }
  NsItem item = make_item(cols.empty() ? "" : cols[0].name, alias, std::move(cols));
  if (alias == nullptr && functions->size() == 1) {
    item.refname = default_name((*field(node_body((*functions)[0]), "items"))[0]);
  }
  cols = item.cols;
  scope.items.push_back(std::move(item));
  return cols;
}

std::vector<Column> Tracer::join(const Json& body, Scope& scope, const CteEnv* ctes) {
  const size_t begin = scope.items.size();
  const Json* larg = field(body, "larg");
  const Json* rarg = field(body, "rarg");
  if (larg == nullptr || rarg == nullptr) {
    fail("a join without two sides");
    return {};
  }
  std::vector<Column> left = from_item(*larg, scope, ctes);
  std::vector<Column> right = from_item(*rarg, scope, ctes);
  if (failed()) return {};
  // ON sees the join's two sides only (and enclosing query levels).
  if (const Json* quals = field(body, "quals")) {
    Scope on;
    on.items.assign(scope.items.begin() + static_cast<std::ptrdiff_t>(begin), scope.items.end());
    on.parent = scope.parent;
    predicate(*quals, &on, ctes);
  }
  // USING (a, b) / NATURAL: one merged column per name, first.
  std::vector<std::string> merged = string_list(field(body, "usingClause"));
  if (field(body, "isNatural") != nullptr) {
    for (const Column& l : left) {
      for (const Column& r : right) {
        if (l.name == r.name && std::find(merged.begin(), merged.end(), l.name) == merged.end()) {
          merged.push_back(l.name);
        }
      }
    }
  }
  std::vector<Column> cols;
  for (const std::string& name : merged) {
    Column m{name, {}};
    bool in_left = false;
    bool in_right = false;
    for (const Column& l : left) {
      if (l.name == name) {
        merge_value(m.value, l.value);
        in_left = true;
      }
    }
    for (const Column& r : right) {
      if (r.name == name) {
        merge_value(m.value, r.value);
        in_right = true;
      }
    }
    if (!in_left || !in_right) {
      fail("USING column \"" + name + "\" is not on both sides of the join");
      return {};
    }
    // Equality of the two sides is a predicate on both.
    record_read(m.value.sources);
    record_predicate(m.value.sources);
    cols.push_back(std::move(m));
  }
  auto is_merged = [&](const Column& c) {
    return std::find(merged.begin(), merged.end(), c.name) != merged.end();
  };
  for (const Column& l : left) {
    if (!is_merged(l)) cols.push_back(l);
  }
  for (const Column& r : right) {
    if (!is_merged(r)) cols.push_back(r);
  }
  const Json* alias = field(body, "alias");
  // With an alias the join hides its inputs; without one they stay visible as
  // table names but not for unqualified columns (the join item answers those).
  if (alias != nullptr) {
    scope.items.erase(scope.items.begin() + static_cast<std::ptrdiff_t>(begin), scope.items.end());
  } else {
    for (size_t i = begin; i < scope.items.size(); ++i) scope.items[i].cols_visible = false;
  }
  NsItem item = make_item("", alias, std::move(cols));
  item.rel_visible = alias != nullptr;
  cols = item.cols;
  scope.items.push_back(std::move(item));
  return cols;
}

std::vector<Column> Tracer::from_item(const Json& node, Scope& scope, const CteEnv* ctes) {
  if (failed()) return {};
  DepthGuard guard(*this);
  if (!guard.ok()) return {};
  const std::string_view type = node_type(node);
  const Json& body = node_body(node);
  if (type == "RangeVar") return range_var(body, scope, ctes);
  if (type == "JoinExpr") return join(body, scope, ctes);
  if (type == "RangeSubselect") {
    const Json* sub = field(body, "subquery");
    if (sub == nullptr) {
      fail("a sub-query in FROM without a query");
      return {};
    }
    // LATERAL sees the FROM items before it; otherwise only enclosing levels.
    const Scope* outer = field(body, "lateral") != nullptr ? &scope : scope.parent;
    std::vector<Column> cols = query(*sub, outer, ctes);
    if (failed()) return {};
    NsItem item = make_item("", field(body, "alias"), std::move(cols));
    item.rel_visible = !item.refname.empty();
    cols = item.cols;
    scope.items.push_back(std::move(item));
    return cols;
  }
  if (type == "RangeFunction") return range_function(body, scope, ctes);
  if (type == "RangeTableSample") {
    const Json* rel = field(body, "relation");
    if (rel == nullptr) {
      fail("TABLESAMPLE without a table");
      return {};
    }
    std::vector<Column> cols = from_item(*rel, scope, ctes);
    if (const Json* args = field(body, "args")) {
      for (const Json& a : *args) expr(a, &scope, ctes);
    }
    return cols;
  }
  fail("a FROM item of kind " + std::string(type.empty() ? "?" : type) + " is not followed");
  return {};
}

}  // namespace dbwarden::sql::lineage_detail
