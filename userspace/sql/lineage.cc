// SPDX-License-Identifier: Apache-2.0
//
// trace_pg_lineage(): parse, then follow the statement by kind. Statements
// that return rows: SELECT (not INTO), VALUES, INSERT/UPDATE/DELETE ...
// RETURNING, COPY ... TO STDOUT, DECLARE CURSOR (the cursor's rows, which FETCH
// returns later), EXPLAIN and SHOW (no data columns). Statements that write what
// they read into a table or a server file list it in stored_columns.
#include <pg_query.h>

#include <algorithm>
#include <string>

#include "sql/lineage_tracer.h"

namespace dbwarden::sql::lineage_detail {
namespace {

// JSON levels (nodes and lists) the walk follows before it gives up: deep
// enough for any real statement, shallow enough for the stack.
constexpr size_t kMaxDepth = 600;

}  // namespace

const Json* field(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string_view node_type(const Json& node) {
  if (!node.is_object() || node.size() != 1) return {};
  const std::string& k = node.begin().key();
  if (k.empty() || k[0] < 'A' || k[0] > 'Z' || !node.begin()->is_object()) return {};
  return k;
}

const Json& node_body(const Json& node) {
  static const Json kEmpty = Json::object();
  if (node_type(node).empty()) return kEmpty;
  return *node.begin();
}

std::string string_field(const Json& obj, const char* key) {
  const Json* f = field(obj, key);
  return f != nullptr && f->is_string() ? f->get<std::string>() : std::string();
}

std::vector<std::string> string_list(const Json* list) {
  std::vector<std::string> out;
  if (list == nullptr || !list->is_array()) return out;
  for (const Json& n : *list) {
    if (node_type(n) == "String") out.push_back(string_field(node_body(n), "sval"));
  }
  return out;
}

void merge_refs(std::vector<ColumnRef>& to, const std::vector<ColumnRef>& from) {
  for (const ColumnRef& r : from) {
    if (std::find(to.begin(), to.end(), r) == to.end()) to.push_back(r);
  }
}

void merge_value(Value& to, const Value& from) {
  merge_refs(to.sources, from.sources);
  if (from.flow == Flow::kDerived) to.flow = Flow::kDerived;
}

const Cte* CteEnv::find(std::string_view name) const {
  for (const CteEnv* e = this; e != nullptr; e = e->parent) {
    // The latest CTE of a name wins within one WITH (PostgreSQL refuses duplicates).
    for (auto it = e->ctes.rbegin(); it != e->ctes.rend(); ++it) {
      if (it->name == name) return &*it;
    }
  }
  return nullptr;
}

void Tracer::fail(std::string why) {
  if (why_.empty()) why_ = std::move(why);
}

void Tracer::record_predicate(const std::vector<ColumnRef>& refs) {
  record_read(refs);
  // A view's own WHERE is its owner's choice, not an inference by the client.
  if (view_depth_ == 0) merge_refs(out_.predicate_columns, refs);
}

bool Tracer::enter() {
  if (++depth_ > kMaxDepth) {
    fail("statement nested deeper than " + std::to_string(kMaxDepth) + " levels");
    return false;
  }
  return true;
}

std::vector<Column> Tracer::dml(const Json& node, const Scope* /*outer*/, const CteEnv* ctes) {
  const std::string_view type = node_type(node);
  const Json& body = node_body(node);
  if (type == "InsertStmt") return insert(body, ctes);
  if (type == "UpdateStmt") return update(body, ctes);
  return remove(body, ctes);
}

// The part every data-changing statement shares: its WITH, its target table
// (first item of `scope`), the extra tables of UPDATE ... FROM / DELETE ...
// USING (`from_key`), and its WHERE. False when something was not followed.
bool Tracer::dml_target(const Json& body, const char* from_key, CteEnv& env, Scope& scope) {
  if (const Json* with = field(body, "withClause")) with_clause(*with, nullptr, env);
  const Json* rel = field(body, "relation");
  if (failed() || rel == nullptr) return false;
  range_var(*rel, scope, &env);
  if (const Json* from = from_key != nullptr ? field(body, from_key) : nullptr) {
    for (const Json& item : *from) from_item(item, scope, &env);
  }
  if (failed()) return false;
  if (const Json* where = field(body, "whereClause")) predicate(*where, &scope, &env);
  return !failed();
}

namespace {

// SET name = v: the target's column now holds v as well.
void assign(NsItem& target, const std::string& name, const Value& v) {
  for (Column& c : target.cols) {
    if (c.name == name) merge_value(c.value, v);
  }
}

}  // namespace

// INSERT INTO t [AS a] [(cols)] {VALUES | SELECT} [ON CONFLICT ...] [RETURNING ...]:
// RETURNING's columns are the row as stored, so each carries both the table's
// column and what was written into it.
std::vector<Column> Tracer::insert(const Json& body, const CteEnv* ctes) {
  CteEnv env;
  env.parent = ctes;
  Scope scope;
  if (!dml_target(body, nullptr, env, scope)) return {};
  NsItem& target = scope.items.back();
  std::vector<std::string> names;
  if (const Json* cols = field(body, "cols")) {
    for (const Json& c : *cols) names.push_back(string_field(node_body(c), "name"));
  } else {
    for (const Column& c : target.cols) names.push_back(c.name);
  }
  if (const Json* sel = field(body, "selectStmt")) {
    const std::vector<Column> in = query(*sel, nullptr, &env);
    for (size_t i = 0; i < in.size() && i < names.size(); ++i) {
      record_stored(in[i].value.sources);
      assign(target, names[i], in[i].value);
    }
  }
  if (const Json* oc = field(body, "onConflictClause")) {
    // DO UPDATE SET col = expr sees the target and `excluded` (the proposed row).
    Scope conflict;
    conflict.items.push_back(target);
    NsItem excluded = target;
    excluded.refname = "excluded";
    excluded.schema.clear();
    conflict.items.push_back(std::move(excluded));
    if (const Json* infer = field(*oc, "infer")) {
      if (const Json* w = field(*infer, "whereClause")) predicate(*w, &conflict, &env);
    }
    if (const Json* w = field(*oc, "whereClause")) predicate(*w, &conflict, &env);
    if (const Json* set = field(*oc, "targetList")) {
      for (const Json& t : *set) {
        const Json& rt = node_body(t);
        const Json* val = field(rt, "val");
        if (val == nullptr) continue;
        const Value v = expr(*val, &conflict, &env);
        record_stored(v.sources);
        assign(target, string_field(rt, "name"), v);
      }
    }
  }
  return targets(field(body, "returningList"), &scope, &env);
}

std::vector<Column> Tracer::update(const Json& body, const CteEnv* ctes) {
  CteEnv env;
  env.parent = ctes;
  Scope scope;
  if (!dml_target(body, "fromClause", env, scope)) return {};
  // SET col = expr: evaluated against the old rows, then stored in the target.
  std::vector<std::pair<std::string, Value>> set;
  if (const Json* list = field(body, "targetList")) {
    for (const Json& t : *list) {
      const Json& rt = node_body(t);
      const Json* val = field(rt, "val");
      if (val == nullptr) continue;
      Value v = expr(*val, &scope, &env);
      // SET col[1] = x, SET col.f = x: only part of the column is replaced.
      if (field(rt, "indirection") != nullptr) v.flow = Flow::kDerived;
      record_stored(v.sources);
      set.emplace_back(string_field(rt, "name"), std::move(v));
    }
  }
  for (const auto& [name, v] : set) assign(scope.items.front(), name, v);
  return targets(field(body, "returningList"), &scope, &env);
}

std::vector<Column> Tracer::remove(const Json& body, const CteEnv* ctes) {
  CteEnv env;
  env.parent = ctes;
  Scope scope;
  if (!dml_target(body, "usingClause", env, scope)) return {};
  return targets(field(body, "returningList"), &scope, &env);
}

// MERGE INTO t USING s ON cond WHEN [NOT] MATCHED [AND cond] THEN ...: no rows
// to the client (PostgreSQL 15), but predicates and stored values.
void Tracer::merge_stmt(const Json& body, const CteEnv* ctes) {
  CteEnv env;
  env.parent = ctes;
  Scope scope;
  const Json* src = field(body, "sourceRelation");
  if (src == nullptr || !dml_target(body, nullptr, env, scope)) return;
  from_item(*src, scope, &env);
  if (failed()) return;
  if (const Json* on = field(body, "joinCondition")) predicate(*on, &scope, &env);
  if (const Json* whens = field(body, "mergeWhenClauses")) {
    for (const Json& w : *whens) {
      const Json& when = node_body(w);
      if (const Json* cond = field(when, "condition")) predicate(*cond, &scope, &env);
      if (const Json* list = field(when, "targetList")) {
        for (const Json& t : *list) {
          if (const Json* val = field(node_body(t), "val")) {
            record_stored(expr(*val, &scope, &env).sources);
          }
        }
      }
      if (const Json* vals = field(when, "values")) {
        for (const Json& v : *vals) record_stored(expr(v, &scope, &env).sources);
      }
    }
  }
}

// COPY (query) TO STDOUT, COPY t [(cols)] TO STDOUT; COPY ... FROM sends no rows.
std::vector<Column> Tracer::copy(const Json& body) {
  if (field(body, "is_from") != nullptr) return {};
  std::vector<Column> cols;
  if (const Json* q = field(body, "query")) {
    cols = query(*q, nullptr, nullptr);
  } else if (const Json* rel = field(body, "relation")) {
    Scope scope;
    std::vector<Column> all = range_var(*rel, scope, nullptr);
    const std::vector<std::string> attlist = string_list(field(body, "attlist"));
    if (attlist.empty()) {
      cols = std::move(all);
    } else {
      for (const std::string& name : attlist) {
        auto it =
            std::find_if(all.begin(), all.end(), [&](const Column& c) { return c.name == name; });
        if (it == all.end()) {
          fail("COPY column \"" + name + "\" not found");
          return {};
        }
        cols.push_back(*it);
      }
    }
    for (const Column& c : cols) record_read(c.value.sources);
  }
  if (field(body, "filename") != nullptr || field(body, "is_program") != nullptr) {
    // To a server file or program: nothing reaches the client.
    for (const Column& c : cols) record_stored(c.value.sources);
    return {};
  }
  return cols;
}

void Tracer::statement(const Json& node) {
  const std::string_view type = node_type(node);
  const Json& body = node_body(node);
  std::vector<Column> cols;
  if (type == "SelectStmt") {
    cols = select(body, nullptr, nullptr);
    // SELECT ... INTO sits on the leftmost arm of a set operation.
    const Json* leftmost = &body;
    while (const Json* larg = field(*leftmost, "larg")) leftmost = larg;
    if (field(*leftmost, "intoClause") != nullptr) {
      // SELECT ... INTO t: the rows go into a new table.
      for (const Column& c : cols) record_stored(c.value.sources);
      cols.clear();
    }
  } else if (type == "InsertStmt" || type == "UpdateStmt" || type == "DeleteStmt") {
    cols = dml(node, nullptr, nullptr);
  } else if (type == "MergeStmt") {
    merge_stmt(body, nullptr);
  } else if (type == "CopyStmt") {
    cols = copy(body);
  } else if (type == "DeclareCursorStmt") {
    const Json* q = field(body, "query");
    if (q != nullptr) cols = query(*q, nullptr, nullptr);
  } else if (type == "CreateTableAsStmt") {
    // CREATE TABLE / MATERIALIZED VIEW ... AS: no rows to the client.
    const Json* q = field(body, "query");
    if (q != nullptr && node_type(*q) == "ExecuteStmt") {
      fail("CREATE TABLE AS EXECUTE runs a prepared statement: trace its PREPARE");
    } else if (q != nullptr) {
      for (const Column& c : query(*q, nullptr, nullptr)) record_stored(c.value.sources);
    }
  } else if (type == "ExplainStmt") {
    // The plan holds no table data, but EXPLAIN ANALYZE runs the statement:
    // its predicates and stores count.
    if (const Json* q = field(body, "query")) statement(*q);
    cols.push_back(Column{"QUERY PLAN", {}});
  } else if (type == "VariableShowStmt") {
    const std::string name = string_field(body, "name");
    if (name == "all") {
      for (const char* n : {"name", "setting", "description"}) cols.push_back(Column{n, {}});
    } else {
      cols.push_back(Column{name, {}});
    }
  } else if (type == "FetchStmt") {
    if (field(body, "ismove") == nullptr) {
      fail("FETCH returns the rows of cursor " + string_field(body, "portalname") +
           ": use the lineage of its DECLARE");
    }
  } else if (type == "ExecuteStmt") {
    fail("EXECUTE runs prepared statement " + string_field(body, "name") +
         ": use the lineage of its PREPARE");
  } else if (type == "CallStmt") {
    fail("CALL returns what a procedure's body computes, which is not followed");
  } else if (type == "DoStmt") {
    fail("a DO block runs code that is not followed");
  }
  // Every other statement (DDL, SET, transaction control, PREPARE, ...) sends no rows.
  if (failed()) return;
  out_.columns.clear();
  for (Column& c : cols) {
    out_.columns.push_back(
        OutputColumn{std::move(c.name), std::move(c.value.sources), c.value.flow});
  }
}

Lineage Tracer::take() {
  if (failed()) {
    Lineage l;
    l.why = why_;
    return l;
  }
  out_.traced = true;
  return std::move(out_);
}

}  // namespace dbwarden::sql::lineage_detail

namespace dbwarden::sql {

Lineage trace_pg_lineage(const std::string& sql, Catalog& catalog) {
  using lineage_detail::Json;
  Lineage out;
  PgQueryParseResult parsed = pg_query_parse(sql.c_str());
  if (parsed.error != nullptr || parsed.parse_tree == nullptr) {
    out.why = std::string("does not parse as PostgreSQL") +
              (parsed.error != nullptr ? std::string(": ") + parsed.error->message : "");
    pg_query_free_parse_result(parsed);
    return out;
  }
  const Json tree = Json::parse(parsed.parse_tree, nullptr, false);
  pg_query_free_parse_result(parsed);
  const Json* stmts = lineage_detail::field(tree, "stmts");
  if (tree.is_discarded() || (stmts != nullptr && !stmts->is_array())) {
    out.why = "libpg_query's tree did not read back";
    return out;
  }
  if (stmts == nullptr || stmts->empty()) {
    out.traced = true;  // only comments or semicolons
    return out;
  }
  if (stmts->size() > 1) {
    out.why = std::to_string(stmts->size()) + " statements in one text: trace them one by one";
    return out;
  }
  const Json* stmt = lineage_detail::field((*stmts)[0], "stmt");
  if (stmt == nullptr) {
    out.traced = true;
    return out;
  }
  lineage_detail::Tracer tracer(catalog);
  tracer.statement(*stmt);
  return tracer.take();
}

}  // namespace dbwarden::sql
