// SPDX-License-Identifier: Apache-2.0
//
// Expressions: where a value comes from, and the names PostgreSQL gives result
// columns. Column names resolve as in PostgreSQL's parse analysis
// (parser/parse_relation.c): an unqualified name is a column of some
// column-visible namespace item, innermost query level first, and only then a
// whole-row reference to a table of that name; `a.b` is column b of the
// relation named a, or field b of column a.
#include <algorithm>
#include <string>

#include "sql/lineage_tracer.h"

namespace dbwarden::sql::lineage_detail {
namespace {

// PostgreSQL's system columns: they exist on every table and hold no user data.
bool system_column(std::string_view name) {
  return name == "ctid" || name == "xmin" || name == "xmax" || name == "cmin" || name == "cmax" ||
         name == "tableoid";
}

// The columns of `item` named `name` (a sub-query may repeat a name).
bool find_column(const NsItem& item, std::string_view name, Value& out) {
  bool found = false;
  for (const Column& c : item.cols) {
    if (c.name != name) continue;
    merge_value(out, c.value);
    found = true;
  }
  if (!found && item.base_table && system_column(name)) return true;
  return found;
}

// Every column of `item`, as one derived value (whole-row reference).
Value whole_row(const NsItem& item) {
  Value v;
  for (const Column& c : item.cols) merge_refs(v.sources, c.value.sources);
  v.flow = Flow::kDerived;
  return v;
}

const NsItem* find_rel(const Scope* s, std::string_view schema, std::string_view name) {
  for (; s != nullptr; s = s->parent) {
    for (const NsItem& item : s->items) {
      if (!item.rel_visible || item.refname != name) continue;
      if (!schema.empty() && item.schema != schema) continue;
      return &item;
    }
  }
  return nullptr;
}

// Unqualified column `name`: the innermost level that has it.
bool find_unqualified(const Scope* s, std::string_view name, Value& out) {
  for (; s != nullptr; s = s->parent) {
    bool found = false;
    for (const NsItem& item : s->items) {
      if (item.cols_visible) found |= find_column(item, name, out);
    }
    if (found) return true;
  }
  return false;
}

bool is_star(const Json& node) { return node_type(node) == "A_Star"; }

// The table whose row `(t).*` expands: A_Indirection's arg is a bare name that
// is no column but a table. nullptr otherwise.
const NsItem* star_of_row(const Json& indirection, const Scope* scope) {
  const Json* arg = field(indirection, "arg");
  const Json* fields =
      arg != nullptr && node_type(*arg) == "ColumnRef" ? field(node_body(*arg), "fields") : nullptr;
  if (fields == nullptr || fields->size() != 1 || node_type((*fields)[0]) != "String") {
    return nullptr;
  }
  const std::string name = string_field(node_body((*fields)[0]), "sval");
  Value ignored;
  if (find_unqualified(scope, name, ignored)) return nullptr;
  return find_rel(scope, "", name);
}

// The integer of an A_Const, if it is one (protobuf JSON leaves out a zero).
std::optional<long long> int_const(const Json& node) {
  if (node_type(node) != "A_Const") return std::nullopt;
  const Json* ival = field(node_body(node), "ival");
  if (ival == nullptr) return std::nullopt;
  const Json* v = field(*ival, "ival");
  if (v == nullptr) return 0;
  if (!v->is_number_integer()) return std::nullopt;
  return v->get<long long>();
}

}  // namespace

// Built-in functions whose result carries data their arguments do not name:
// they run SQL given as text, read a table or cursor by name, or read outside
// the tables (files, large objects, other databases).
bool reads_by_name(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "query_to_xml",
      "query_to_xmlschema",
      "query_to_xml_and_xmlschema",
      "table_to_xml",
      "table_to_xmlschema",
      "table_to_xml_and_xmlschema",
      "schema_to_xml",
      "schema_to_xmlschema",
      "schema_to_xml_and_xmlschema",
      "database_to_xml",
      "database_to_xmlschema",
      "database_to_xml_and_xmlschema",
      "cursor_to_xml",
      "cursor_to_xmlschema",
      "ts_stat",
      "pg_read_file",
      "pg_read_binary_file",
      "lo_get",
      "loread",
      "lo_export",
      "dblink",
      "dblink_fetch",
      "dblink_get_result",
      "dblink_send_query",
  };
  for (std::string_view n : kNames) {
    if (n == name) return true;
  }
  return false;
}

std::optional<Value> Tracer::lookup(const Json& fields, const Scope* scope) {
  std::vector<std::string> names;
  for (const Json& f : fields) {
    if (node_type(f) != "String") return std::nullopt;
    names.push_back(string_field(node_body(f), "sval"));
  }
  Value v;
  switch (names.size()) {
    case 1:
      if (find_unqualified(scope, names[0], v)) return v;
      if (const NsItem* item = find_rel(scope, "", names[0])) return whole_row(*item);
      return std::nullopt;
    case 2:
      if (const NsItem* item = find_rel(scope, "", names[0])) {
        if (find_column(*item, names[1], v)) return v;
        return std::nullopt;
      }
      // (column).field of a composite column: the field is part of the column.
      if (find_unqualified(scope, names[0], v)) {
        v.flow = Flow::kDerived;
        return v;
      }
      return std::nullopt;
    case 3:
    case 4: {
      // [catalog.]schema.table.column, or table.column.field.
      const size_t k = names.size() - 3;
      if (const NsItem* item = find_rel(scope, names[k], names[k + 1])) {
        if (find_column(*item, names[k + 2], v)) return v;
        return std::nullopt;
      }
      if (names.size() == 3) {
        if (const NsItem* item = find_rel(scope, "", names[0])) {
          if (find_column(*item, names[1], v)) {
            v.flow = Flow::kDerived;
            return v;
          }
        }
      }
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

Value Tracer::column_ref(const Json& body, const Scope* scope) {
  const Json* fields = field(body, "fields");
  if (fields == nullptr || !fields->is_array() || fields->empty()) {
    fail("a column reference without a name");
    return {};
  }
  Value v;
  if (is_star(fields->back())) {
    // `t.*` or `*` inside an expression (row_to_json(t.*), count(t.*)): the whole row.
    if (fields->size() == 1) {
      for (const Scope* s = scope; s != nullptr && v.sources.empty(); s = s->parent) {
        for (const NsItem& item : s->items) {
          if (item.cols_visible) merge_value(v, whole_row(item));
        }
      }
    } else {
      const std::string name = string_field(node_body((*fields)[fields->size() - 2]), "sval");
      const std::string schema =
          fields->size() >= 3 ? string_field(node_body((*fields)[fields->size() - 3]), "sval") : "";
      const NsItem* item = find_rel(scope, schema, name);
      if (item == nullptr) {
        fail("no table named \"" + name + "\" for " + name + ".*");
        return {};
      }
      v = whole_row(*item);
    }
    v.flow = Flow::kDerived;
  } else {
    std::optional<Value> found = lookup(*fields, scope);
    if (!found) {
      std::string name;
      for (const Json& f : *fields) {
        if (!name.empty()) name += '.';
        name += string_field(node_body(f), "sval");
      }
      fail("column \"" + name + "\" not found in the statement's tables");
      return {};
    }
    v = std::move(*found);
  }
  record_read(v.sources);
  return v;
}

Value Tracer::sublink(const Json& body, const Scope* scope, const CteEnv* ctes) {
  Value v;
  const Json* sub = field(body, "subselect");
  std::vector<Column> cols;
  if (sub != nullptr) cols = query(*sub, scope, ctes);
  const std::string kind = string_field(body, "subLinkType");
  if (kind == "EXPR_SUBLINK" && cols.size() == 1) {
    v = cols[0].value;  // a scalar sub-query passes its one column through
  } else {
    for (const Column& c : cols) merge_value(v, c.value);
    v.flow = Flow::kDerived;
  }
  if (const Json* test = field(body, "testexpr")) merge_value(v, expr(*test, scope, ctes));
  if (kind != "EXPR_SUBLINK") v.flow = Flow::kDerived;
  return v;
}

Value Tracer::func_call(const Json& body, const Scope* scope, const CteEnv* ctes) {
  const std::vector<std::string> names = string_list(field(body, "funcname"));
  const std::string schema = names.size() >= 2 ? names[names.size() - 2] : "";
  const std::string name = names.empty() ? "" : names.back();
  if ((schema.empty() || schema == "pg_catalog") && reads_by_name(name)) {
    fail("function " + name + "() reads data by name or query text, which is not followed");
    return {};
  }
  if (catalog_.function_is_opaque(schema, name)) {
    fail("function " + (schema.empty() ? name : schema + "." + name) +
         "() may return data its body reads, which is not followed");
    return {};
  }
  Value v;
  if (const Json* args = field(body, "args")) collect(*args, v, scope, ctes);
  // count(*) FILTER (WHERE ssn LIKE '1%') counts by the filtered column: a
  // source of the result and a predicate.
  if (const Json* filter = field(body, "agg_filter")) {
    merge_value(v, predicate(*filter, scope, ctes));
  }
  // An aggregate's ORDER BY and a window's PARTITION BY / ORDER BY order or
  // group the values; they are predicates, not sources.
  if (const Json* order = field(body, "agg_order")) {
    for (const Json& s : *order) {
      if (const Json* n = field(node_body(s), "node")) predicate(*n, scope, ctes);
    }
  }
  if (const Json* over = field(body, "over")) {
    if (const Json* part = field(*over, "partitionClause")) {
      for (const Json& p : *part) predicate(p, scope, ctes);
    }
    if (const Json* order = field(*over, "orderClause")) {
      for (const Json& s : *order) {
        if (const Json* n = field(node_body(s), "node")) predicate(*n, scope, ctes);
      }
    }
    Value frame;
    for (const char* k : {"startOffset", "endOffset"}) {
      if (const Json* off = field(*over, k)) collect(*off, frame, scope, ctes);
    }
  }
  v.flow = Flow::kDerived;
  return v;
}

// Any node this file does not name: every value inside it, derived.
void Tracer::collect(const Json& j, Value& acc, const Scope* scope, const CteEnv* ctes) {
  if (failed()) return;
  DepthGuard guard(*this);
  if (!guard.ok()) return;
  if (!node_type(j).empty()) {
    merge_value(acc, expr(j, scope, ctes));
    acc.flow = Flow::kDerived;
    return;
  }
  if (j.is_object() || j.is_array()) {
    for (const Json& child : j) collect(child, acc, scope, ctes);
  }
}

Value Tracer::expr(const Json& node, const Scope* scope, const CteEnv* ctes) {
  if (failed()) return {};
  DepthGuard guard(*this);
  if (!guard.ok()) return {};
  const std::string_view type = node_type(node);
  if (type.empty()) {
    // A bare list (IN (...), BETWEEN's bounds) or an empty node.
    Value v;
    if (node.is_array() || (node.is_object() && !node.empty())) {
      collect(node, v, scope, ctes);
      if (!v.sources.empty()) v.flow = Flow::kDerived;
    }
    return v;
  }
  const Json& body = node_body(node);
  if (type == "ColumnRef") return column_ref(body, scope);
  if (type == "A_Const" || type == "ParamRef" || type == "SQLValueFunction" ||
      type == "SetToDefault" || type == "String" || type == "Integer" || type == "A_Star") {
    return {};
  }
  if (type == "TypeCast" || type == "CollateClause") {
    const Json* arg = field(body, "arg");
    return arg != nullptr ? expr(*arg, scope, ctes) : Value{};
  }
  if (type == "SubLink") return sublink(body, scope, ctes);
  if (type == "FuncCall") return func_call(body, scope, ctes);
  if (type == "MultiAssignRef") {
    const Json* src = field(body, "source");
    return src != nullptr ? expr(*src, scope, ctes) : Value{};
  }
  if (type == "SelectStmt" || type == "InsertStmt" || type == "UpdateStmt" ||
      type == "DeleteStmt") {
    Value v;
    for (const Column& c : query(node, scope, ctes)) merge_value(v, c.value);
    v.flow = Flow::kDerived;
    return v;
  }
  // Operators, CASE, COALESCE, ROW(), ARRAY[], IS NULL, indirection, ...: computed.
  Value v;
  collect(body, v, scope, ctes);
  v.flow = Flow::kDerived;
  return v;
}

Value Tracer::predicate(const Json& node, const Scope* scope, const CteEnv* ctes) {
  Value v = expr(node, scope, ctes);
  record_predicate(v.sources);
  return v;
}

Value Tracer::sort_item(const Json& node, const std::vector<Column>& outputs, const Scope* scope,
                        const CteEnv* ctes, bool prefer_output) {
  Value v;
  if (std::optional<long long> pos = int_const(node)) {
    // ORDER BY 2: the second result column.
    if (*pos >= 1 && static_cast<size_t>(*pos) <= outputs.size()) {
      v = outputs[static_cast<size_t>(*pos) - 1].value;
    }
    record_predicate(v.sources);
    return v;
  }
  const Json* fields = node_type(node) == "ColumnRef" ? field(node_body(node), "fields") : nullptr;
  if (fields != nullptr && fields->size() == 1 && node_type((*fields)[0]) == "String") {
    // ORDER BY prefers a result column's name, GROUP BY an input column's.
    const std::string name = string_field(node_body((*fields)[0]), "sval");
    auto by_output = [&] {
      bool found = false;
      for (const Column& c : outputs) {
        if (c.name == name) {
          merge_value(v, c.value);
          found = true;
        }
      }
      return found;
    };
    bool found = prefer_output && by_output();
    if (!found) {
      if (std::optional<Value> in = lookup(*fields, scope)) {
        merge_value(v, *in);
        record_read(in->sources);
        found = true;
      }
    }
    if (!found && !prefer_output) found = by_output();
    if (!found) {
      fail("ORDER BY/GROUP BY name \"" + name + "\" not found");
      return {};
    }
    record_predicate(v.sources);
    return v;
  }
  if (node_type(node) == "GroupingSet") {
    if (const Json* content = field(node_body(node), "content")) {
      for (const Json& c : *content) merge_value(v, sort_item(c, outputs, scope, ctes, false));
    }
    return v;
  }
  return predicate(node, scope, ctes);
}

std::vector<Column> Tracer::targets(const Json* list, const Scope* scope, const CteEnv* ctes) {
  std::vector<Column> out;
  if (list == nullptr) return out;
  for (const Json& t : *list) {
    if (failed()) break;
    if (node_type(t) != "ResTarget") {
      fail("unexpected node in a target list");
      break;
    }
    const Json& rt = node_body(t);
    const Json* val = field(rt, "val");
    if (val == nullptr) continue;
    const Json* fields =
        node_type(*val) == "ColumnRef" ? field(node_body(*val), "fields") : nullptr;
    if (fields != nullptr && !fields->empty() && is_star(fields->back())) {
      // `*` and `t.*` in a target list expand to one result column each.
      std::vector<const NsItem*> items;
      if (fields->size() == 1) {
        if (scope != nullptr) {
          for (const NsItem& item : scope->items) {
            if (item.cols_visible) items.push_back(&item);
          }
        }
      } else {
        const std::string name = string_field(node_body((*fields)[fields->size() - 2]), "sval");
        const std::string schema =
            fields->size() >= 3 ? string_field(node_body((*fields)[fields->size() - 3]), "sval")
                                : "";
        const NsItem* item = find_rel(scope, schema, name);
        if (item == nullptr) {
          fail("no table named \"" + name + "\" for " + name + ".*");
          break;
        }
        items.push_back(item);
      }
      for (const NsItem* item : items) {
        for (const Column& c : item->cols) {
          record_read(c.value.sources);
          out.push_back(c);
        }
      }
      continue;
    }
    if (node_type(*val) == "A_Indirection") {
      const Json* ind = field(node_body(*val), "indirection");
      if (ind != nullptr && !ind->empty() && is_star(ind->back())) {
        // `(t).*` expands like `t.*` when t names a table's row; the fields of
        // any other composite value are not known here.
        const NsItem* item = star_of_row(node_body(*val), scope);
        if (item == nullptr) {
          fail("(expression).* over a composite value is not followed");
          break;
        }
        for (const Column& c : item->cols) {
          record_read(c.value.sources);
          out.push_back(c);
        }
        continue;
      }
    }
    Column c;
    c.value = expr(*val, scope, ctes);
    c.name = string_field(rt, "name");
    if (c.name.empty()) c.name = default_name(*val);
    out.push_back(std::move(c));
  }
  return out;
}

namespace {

// FigureColnameInternal (parser/parse_target.c): a name and its strength
// (0: none, 1: a fallback such as a type name, 2: a real name).
int figure(const Json& node, std::string& name) {
  const std::string_view type = node_type(node);
  if (type.empty()) return 0;
  const Json& body = node_body(node);
  auto last_string = [&](const char* key) -> std::string {
    const std::vector<std::string> names = string_list(field(body, key));
    return names.empty() ? std::string() : names.back();
  };
  if (type == "ColumnRef") {
    const Json* fields = field(body, "fields");
    if (fields == nullptr) return 0;
    for (auto it = fields->rbegin(); it != fields->rend(); ++it) {
      if (node_type(*it) == "String") {
        name = string_field(node_body(*it), "sval");
        return 2;
      }
    }
    return 0;
  }
  if (type == "A_Indirection") {
    if (const Json* ind = field(body, "indirection")) {
      for (auto it = ind->rbegin(); it != ind->rend(); ++it) {
        if (node_type(*it) == "String") {
          name = string_field(node_body(*it), "sval");
          return 2;
        }
      }
    }
    const Json* arg = field(body, "arg");
    return arg != nullptr ? figure(*arg, name) : 0;
  }
  if (type == "FuncCall") {
    name = last_string("funcname");
    return 2;
  }
  if (type == "A_Expr") {
    if (string_field(body, "kind") == "AEXPR_NULLIF") {
      name = "nullif";
      return 2;
    }
    return 0;
  }
  if (type == "TypeCast") {
    const Json* arg = field(body, "arg");
    const int s = arg != nullptr ? figure(*arg, name) : 0;
    if (s <= 1) {
      const Json* tn = field(body, "typeName");
      const std::vector<std::string> names = string_list(tn ? field(*tn, "names") : nullptr);
      if (!names.empty()) {
        name = names.back();
        return 1;
      }
    }
    return s;
  }
  if (type == "CollateClause") {
    const Json* arg = field(body, "arg");
    return arg != nullptr ? figure(*arg, name) : 0;
  }
  if (type == "GroupingFunc") {
    name = "grouping";
    return 2;
  }
  if (type == "SubLink") {
    const std::string kind = string_field(body, "subLinkType");
    if (kind == "EXISTS_SUBLINK") {
      name = "exists";
      return 2;
    }
    if (kind == "ARRAY_SUBLINK") {
      name = "array";
      return 2;
    }
    if (kind == "EXPR_SUBLINK") {
      // The sub-query's one result column's name (of its leftmost arm).
      const Json* sub = field(body, "subselect");
      const Json* select =
          sub != nullptr && node_type(*sub) == "SelectStmt" ? &node_body(*sub) : nullptr;
      while (select != nullptr && field(*select, "larg") != nullptr) {
        select = field(*select, "larg");
      }
      const Json* tl = select != nullptr ? field(*select, "targetList") : nullptr;
      if (tl != nullptr && !tl->empty() && node_type((*tl)[0]) == "ResTarget") {
        const Json& rt = node_body((*tl)[0]);
        const std::string alias = string_field(rt, "name");
        if (!alias.empty()) {
          name = alias;
          return 2;
        }
        // The sub-query's column is named by now, "?column?" included.
        const Json* val = field(rt, "val");
        if (val == nullptr || figure(*val, name) == 0) name = "?column?";
        return 2;
      }
    }
    return 0;
  }
  if (type == "CaseExpr") {
    const Json* def = field(body, "defresult");
    const int s = def != nullptr ? figure(*def, name) : 0;
    if (s <= 1) {
      name = "case";
      return 1;
    }
    return s;
  }
  if (type == "A_ArrayExpr") {
    name = "array";
    return 2;
  }
  if (type == "RowExpr") {
    name = "row";
    return 2;
  }
  if (type == "CoalesceExpr") {
    name = "coalesce";
    return 2;
  }
  if (type == "MinMaxExpr") {
    name = string_field(body, "op") == "IS_GREATEST" ? "greatest" : "least";
    return 2;
  }
  if (type == "SQLValueFunction" || type == "XmlExpr") {
    // Named after the operation: CURRENT_USER is "current_user".
    static const std::pair<const char*, const char*> kOps[] = {
        {"SVFOP_CURRENT_DATE", "current_date"},
        {"SVFOP_CURRENT_TIME", "current_time"},
        {"SVFOP_CURRENT_TIME_N", "current_time"},
        {"SVFOP_CURRENT_TIMESTAMP", "current_timestamp"},
        {"SVFOP_CURRENT_TIMESTAMP_N", "current_timestamp"},
        {"SVFOP_LOCALTIME", "localtime"},
        {"SVFOP_LOCALTIME_N", "localtime"},
        {"SVFOP_LOCALTIMESTAMP", "localtimestamp"},
        {"SVFOP_LOCALTIMESTAMP_N", "localtimestamp"},
        {"SVFOP_CURRENT_ROLE", "current_role"},
        {"SVFOP_CURRENT_USER", "current_user"},
        {"SVFOP_USER", "user"},
        {"SVFOP_SESSION_USER", "session_user"},
        {"SVFOP_CURRENT_CATALOG", "current_catalog"},
        {"SVFOP_CURRENT_SCHEMA", "current_schema"},
        {"IS_XMLCONCAT", "xmlconcat"},
        {"IS_XMLELEMENT", "xmlelement"},
        {"IS_XMLFOREST", "xmlforest"},
        {"IS_XMLPARSE", "xmlparse"},
        {"IS_XMLPI", "xmlpi"},
        {"IS_XMLROOT", "xmlroot"},
        {"IS_XMLSERIALIZE", "xmlserialize"},
    };
    const std::string op = string_field(body, "op");
    for (const auto& [k, n] : kOps) {
      if (op == k) {
        name = n;
        return 2;
      }
    }
    return 0;
  }
  if (type == "XmlSerialize") {
    name = "xmlserialize";
    return 2;
  }
  return 0;
}

}  // namespace

std::string Tracer::default_name(const Json& node) {
  std::string name;
  if (figure(node, name) == 0 || name.empty()) name = "?column?";
  return name;
}

}  // namespace dbwarden::sql::lineage_detail
