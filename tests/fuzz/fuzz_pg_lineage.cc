// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the PostgreSQL column-lineage tracer (sql/lineage.h) over the unit
// tests' fixed catalog. The input is a statement; after a 0xff byte, the rest
// is the definition of one more view, `public.fz` (columns a, b), so that view
// expansion sees hostile definitions too. Checks what the contract promises:
// a traced answer names only columns the catalog has, reads every column it
// names, and traces the same way twice; an untraced one says why and has no
// columns. pg_named_objects() runs over the same text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../unit/support/lineage_catalog.h"
#include "sql/lineage.h"

namespace {

using dbwarden::sql::ColumnRef;
using dbwarden::sql::Lineage;

class FuzzCatalog : public dbw_test::FixedCatalog {
 public:
  explicit FuzzCatalog(std::string fz) : fz_(std::move(fz)) {}
  std::optional<Relation> relation(std::string_view schema, std::string_view name) override {
    if (name == "fz" && (schema.empty() || schema == "public")) {
      return Relation{"public", "fz", true, {"a", "b"}, fz_};
    }
    return FixedCatalog::relation(schema, name);
  }

 private:
  std::string fz_;
};

bool in_catalog(dbw_test::FixedCatalog& catalog, const ColumnRef& ref) {
  const auto rel = catalog.relation(ref.schema, ref.table);
  if (!rel || rel->is_view) return false;
  for (const std::string& c : rel->columns) {
    if (c == ref.column) return true;
  }
  return false;
}

bool contains(const std::vector<ColumnRef>& set, const ColumnRef& ref) {
  for (const ColumnRef& r : set) {
    if (r == ref) return true;
  }
  return false;
}

bool same(const Lineage& a, const Lineage& b) {
  if (a.traced != b.traced || a.why != b.why || a.columns.size() != b.columns.size()) {
    return false;
  }
  for (size_t i = 0; i < a.columns.size(); ++i) {
    if (a.columns[i].name != b.columns[i].name || a.columns[i].flow != b.columns[i].flow ||
        a.columns[i].sources != b.columns[i].sources) {
      return false;
    }
  }
  return a.predicate_columns == b.predicate_columns && a.read_columns == b.read_columns &&
         a.stored_columns == b.stored_columns;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const size_t cut = all.find('\xff');
  std::string sql(all.substr(0, cut));
  std::string fz = cut == std::string_view::npos ? "SELECT 1, 2" : std::string(all.substr(cut + 1));
  // libpg_query reads up to a NUL: what follows one is not part of the text.
  sql = sql.c_str();
  fz = fz.c_str();
  FuzzCatalog catalog(fz);
  const Lineage l = dbwarden::sql::trace_pg_lineage(sql, catalog);
  // The names walk (the proxy's reach check) reads every text the tracer reads.
  const dbwarden::sql::NamedObjects named = dbwarden::sql::pg_named_objects(sql);
  if (l.traced && !named.parsed) std::abort();
  if (!l.traced) {
    if (l.why.empty() || !l.columns.empty()) std::abort();
    return 0;
  }
  if (!l.why.empty()) std::abort();
  for (const auto& c : l.columns) {
    for (const ColumnRef& r : c.sources) {
      if (!in_catalog(catalog, r) || !contains(l.read_columns, r)) {
        // A column passed through (RETURNING, COPY) is read; so is every source.
        std::abort();
      }
    }
  }
  for (const ColumnRef& r : l.predicate_columns) {
    if (!in_catalog(catalog, r) || !contains(l.read_columns, r)) std::abort();
  }
  for (const ColumnRef& r : l.stored_columns) {
    if (!in_catalog(catalog, r)) std::abort();
  }
  FuzzCatalog again(fz);
  if (!same(l, dbwarden::sql::trace_pg_lineage(sql, again))) std::abort();
  return 0;
}
