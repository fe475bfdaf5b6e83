// SPDX-License-Identifier: Apache-2.0
//
// The column-lineage tracer's insides (private to userspace/sql: the public
// header is sql/lineage.h). One Tracer follows one statement; its methods are
// split by job: lineage_query.cc (SELECT, set operations, VALUES, CTEs),
// lineage_from.cc (FROM items, joins, views, functions), lineage_expr.cc
// (expressions, names, default column names), lineage.cc (statements).
//
// The tree is libpg_query's JSON (PostgreSQL 15 node names): a node is
// {"TypeName": {fields}} where a field holds any Node, the bare struct where the
// field's type is fixed (SelectStmt.larg, InsertStmt.relation, Alias). JSON,
// not pg_query_parse_protobuf and its protobuf-c structs: those need
// protobuf-c's headers (libprotobuf-c-dev, not a dependency, and they must match
// the protobuf-c copy inside libpg_query.a), and producing the protobuf alone
// measured ~43 us against ~13 us for the JSON (bench/README.md, "SQL
// analysis"). The walk needs random access (names resolve against FROM before
// the select list is read), so the JSON is read into an nlohmann tree.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sql/lineage.h"

namespace dbwarden::sql::lineage_detail {

using Json = nlohmann::json;

// Where a value comes from.
struct Value {
  std::vector<ColumnRef> sources;
  Flow flow = Flow::kCopy;
};

// Adds `from` to `to`, each ColumnRef once.
void merge_refs(std::vector<ColumnRef>& to, const std::vector<ColumnRef>& from);
// `to` takes `from`'s sources; it stays a copy only if both are copies.
void merge_value(Value& to, const Value& from);

struct Column {
  std::string name;
  Value value;
};

// One entry of a query level's namespace (PostgreSQL's ParseNamespaceItem): a
// table, view, sub-query, CTE, function or join, with the names it answers to.
struct NsItem {
  std::string refname;       // alias, or the relation's name; "" for a join without alias
  std::string schema;        // an unaliased relation's schema, for `schema.table.column`
  bool rel_visible = true;   // `refname.column` and `refname.*` find it
  bool cols_visible = true;  // unqualified column names find it (and `*` expands it)
  bool base_table = false;   // has system columns (ctid, xmin, ...)
  std::vector<Column> cols;
};

// One query level; `parent` is the enclosing level (correlated references).
struct Scope {
  std::vector<NsItem> items;
  const Scope* parent = nullptr;
};

struct Cte {
  std::string name;
  std::vector<Column> cols;
};

// The CTEs visible at a point, innermost WITH first.
struct CteEnv {
  std::vector<Cte> ctes;
  const CteEnv* parent = nullptr;
  const Cte* find(std::string_view name) const;
};

// libpg_query JSON access.
const Json* field(const Json& obj, const char* key);         // nullptr when absent
std::string_view node_type(const Json& node);                // "" when not a wrapped node
const Json& node_body(const Json& node);                     // the wrapped node's fields
std::string string_field(const Json& obj, const char* key);  // "" when absent
std::vector<std::string> string_list(const Json* list);      // a list of String nodes
// A built-in (pg_catalog) function that reads data by name or query text (lineage_expr.cc).
bool reads_by_name(std::string_view name);

class Tracer {
 public:
  explicit Tracer(Catalog& catalog) : catalog_(catalog) {}

  // Top-level statement (the "stmt" node); fills the result.
  void statement(const Json& node);
  Lineage take();

  // --- queries (lineage_query.cc) ---
  // A node that yields rows: SelectStmt, or INSERT/UPDATE/DELETE ... RETURNING.
  std::vector<Column> query(const Json& node, const Scope* outer, const CteEnv* ctes);
  std::vector<Column> select(const Json& body, const Scope* outer, const CteEnv* ctes);

  // --- FROM (lineage_from.cc) ---
  // Appends the namespace items of one FROM item to `scope`; returns its columns
  // in the order `*` expands them.
  std::vector<Column> from_item(const Json& node, Scope& scope, const CteEnv* ctes);
  // A named table, view or CTE.
  std::vector<Column> range_var(const Json& rv, Scope& scope, const CteEnv* ctes);

  // --- expressions (lineage_expr.cc) ---
  Value expr(const Json& node, const Scope* scope, const CteEnv* ctes);
  // expr() whose sources also count as predicate columns.
  Value predicate(const Json& node, const Scope* scope, const CteEnv* ctes);
  // An ORDER BY / GROUP BY / DISTINCT ON item: an output position or name, or an expression.
  Value sort_item(const Json& node, const std::vector<Column>& outputs, const Scope* scope,
                  const CteEnv* ctes, bool prefer_output);
  // A target list (select list, RETURNING) into result columns; `*` expands.
  std::vector<Column> targets(const Json* list, const Scope* scope, const CteEnv* ctes);
  // PostgreSQL's default name for an unnamed result column (FigureColname).
  static std::string default_name(const Json& node);

  bool failed() const { return !why_.empty(); }
  void fail(std::string why);
  void record_read(const std::vector<ColumnRef>& refs) { merge_refs(out_.read_columns, refs); }
  void record_predicate(const std::vector<ColumnRef>& refs);
  void record_stored(const std::vector<ColumnRef>& refs) { merge_refs(out_.stored_columns, refs); }

  // Depth guard for every recursive step: false (and failed) when too deep.
  bool enter();
  void leave() { --depth_; }

 private:
  bool dml_target(const Json& body, const char* from_key, CteEnv& env, Scope& scope);
  std::vector<Column> dml(const Json& node, const Scope* outer, const CteEnv* ctes);
  std::vector<Column> insert(const Json& body, const CteEnv* ctes);
  std::vector<Column> update(const Json& body, const CteEnv* ctes);
  std::vector<Column> remove(const Json& body, const CteEnv* ctes);
  void merge_stmt(const Json& body, const CteEnv* ctes);
  std::vector<Column> copy(const Json& body);
  void with_clause(const Json& with, const Scope* outer, CteEnv& env);
  std::vector<Column> view(const Catalog::Relation& rel);
  std::vector<Column> range_function(const Json& body, Scope& scope, const CteEnv* ctes);
  std::vector<Column> join(const Json& body, Scope& scope, const CteEnv* ctes);
  std::vector<Column> values(const Json& lists, const Scope* outer, const CteEnv* ctes);
  std::optional<Value> lookup(const Json& fields, const Scope* scope);
  Value column_ref(const Json& body, const Scope* scope);
  Value func_call(const Json& body, const Scope* scope, const CteEnv* ctes);
  Value sublink(const Json& body, const Scope* scope, const CteEnv* ctes);
  void collect(const Json& j, Value& acc, const Scope* scope, const CteEnv* ctes);

  Catalog& catalog_;
  Lineage out_;
  std::string why_;
  size_t depth_ = 0;
  size_t view_depth_ = 0;                             // > 0: inside a view's definition
  std::vector<std::string> views_open_;               // "schema.name" being expanded
  std::map<std::string, std::vector<Column>> views_;  // expanded views, by "schema.name"
};

// RAII for Tracer::enter()/leave().
class DepthGuard {
 public:
  explicit DepthGuard(Tracer& t) : t_(t), ok_(t.enter()) {}
  ~DepthGuard() { t_.leave(); }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
  bool ok() const { return ok_; }

 private:
  Tracer& t_;
  bool ok_;
};

}  // namespace dbwarden::sql::lineage_detail
