// SPDX-License-Identifier: Apache-2.0
//
// PostgreSQL column lineage: which base-table columns each result column of a
// statement comes from, and which columns the statement reads in predicates.
// The enforcement proxy's masking (issue 13) uses it to mask a result column
// whose value comes from a masked column, however the statement dressed it up:
// aliases, casts, functions, sub-queries, CTEs, set operations, `*`, whole-row
// references, views, RETURNING, COPY and cursors.
//
// It parses with libpg_query (PostgreSQL's own grammar) and resolves names the
// way PostgreSQL's parse analysis does (namespace items, join USING merges,
// LATERAL, correlated sub-queries, CTE shadowing), asking a Catalog for tables
// and views. It never guesses: anything it cannot follow makes the whole
// statement untraced, and the caller fails closed. Where a rule is uncertain it
// adds sources rather than dropping one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dbwarden::sql {

// A base-table column, as the catalog names it (lower-case unless quoted).
struct ColumnRef {
  std::string schema, table, column;
  friend bool operator==(const ColumnRef&, const ColumnRef&) = default;
};

// What the tracer needs from the database; the proxy implements it (cached),
// tests with fixed tables.
class Catalog {
 public:
  virtual ~Catalog() = default;
  struct Relation {
    std::string schema, name;  // what it resolved to
    bool is_view = false;
    std::vector<std::string> columns;  // visible columns in attnum order (for *, t.*, whole-row)
    std::string view_definition;       // the view's SELECT (pg_get_viewdef) when is_view
    // A materialized view stores what its query read: report it with is_view
    // and its definition too, so that its columns trace to their sources.
  };
  // `schema` empty: resolve by the session's search_path. nullopt: no such relation.
  virtual std::optional<Relation> relation(std::string_view schema, std::string_view name) = 0;
  // Can function `name` (`schema` empty: by search_path) return data that is not
  // computed from its arguments, i.e. does its body read tables (a SQL or PL
  // function, an extension's C function)? true makes a statement that calls it
  // untraced. The default answers false: a catalog that can tell (pg_proc:
  // prolang not internal, or not in pg_catalog) should. Built-ins that run SQL
  // text or read a table by name (query_to_xml, table_to_xml, ts_stat, dblink,
  // pg_read_file, lo_get, ...) are refused whatever this says.
  virtual bool function_is_opaque(std::string_view /*schema*/, std::string_view /*name*/) {
    return false;
  }
};

enum class Flow : uint8_t {
  kCopy,     // the value IS a source value: column, alias, parentheses, cast,
             // sub-query/CTE/UNION/view passthrough
  kDerived,  // computed from sources: function, operator, concatenation, CASE, aggregate,
             // comparison, whole-row (t::text, row_to_json(t))
};

struct OutputColumn {
  std::string name;  // as RowDescription names it (alias, or PostgreSQL's default)
  std::vector<ColumnRef>
      sources;  // every base column whose value flows into it (empty: a constant)
  Flow flow = Flow::kCopy;
};

struct Lineage {
  bool traced = false;  // false: `why` says what could not be followed; the caller fails closed
  std::string why;
  std::vector<OutputColumn> columns;  // one per result column, in order
  // Read in WHERE, JOIN ON/USING, HAVING, ORDER BY, GROUP BY, DISTINCT ON, window
  // clauses, aggregate FILTER/ORDER BY, LIMIT/OFFSET (of the statement and its
  // sub-queries; a view's own WHERE is the view owner's, not the client's: it
  // counts in read_columns only).
  std::vector<ColumnRef> predicate_columns;
  std::vector<ColumnRef> read_columns;  // every base column read anywhere (incl. sub-queries)
  // Base columns whose values the statement writes somewhere a client can read
  // later without this result's masking: a table (SELECT INTO, CREATE TABLE AS,
  // INSERT ... SELECT, UPDATE ... SET, MERGE) or a server file or program
  // (COPY ... TO 'file'). The laundering path around masking; policy decides.
  std::vector<ColumnRef> stored_columns;
};

// Sources name the relation the statement (or a view) named: rows a partitioned
// or inherited table gets from its children are named after the parent, as
// RowDescription names them, so a rule for such a table names the parent (or a
// glob over parent and children).
//
// One statement (the proxy splits multi-statement Queries first: a text with
// several statements is not traced). A statement with no result set (DDL, SET,
// INSERT without RETURNING, ...) traces to zero columns with traced = true.
// FETCH, EXECUTE, CALL and DO are not traced: their rows come from elsewhere
// (the cursor's DECLARE, the PREPARE, a procedure's body).
Lineage trace_pg_lineage(const std::string& sql, Catalog& catalog);

// Every relation and function a statement names, anywhere in it (sub-queries, CTEs, DML
// targets, COPY), read from the parse tree without a catalog. The proxy asks it of a
// statement the tracer could not follow for want of a relation's columns (inside a
// transaction block, where it cannot look them up): when none of the names can reach a
// masked column, neither can the statement, whatever it does with them.
struct QualifiedName {
  std::string schema, name;  // schema empty: not written (the search_path resolves it)
  friend bool operator==(const QualifiedName&, const QualifiedName&) = default;
};
struct NamedObjects {
  bool parsed = false;  // false: libpg_query rejected it, or it holds several statements
  // Its rows come from elsewhere or by name: FETCH/MOVE, EXECUTE, CALL, DO, or a built-in
  // that reads a table, cursor or query text by name (query_to_xml, ...).
  bool runs_elsewhere = false;
  std::vector<QualifiedName> relations;  // RangeVars, each once; CTE names included
  std::vector<QualifiedName> functions;  // function calls, each once
};
NamedObjects pg_named_objects(const std::string& sql);

}  // namespace dbwarden::sql
