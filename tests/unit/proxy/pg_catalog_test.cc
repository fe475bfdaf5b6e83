// SPDX-License-Identifier: Apache-2.0
//
// The PostgreSQL relay's catalog (proxy/pg_catalog.h): the lookup query it sends, its
// answer read message by message (relations, columns in attnum order, views, functions,
// the scope), errors keeping nothing, the cache's scopes, TTL, bounds and invalidation,
// and the tracer's view of it.
#include "proxy/pg_catalog.h"

#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "../pgsql/pg_wire.h"

using namespace pgtest;
using dbwarden::proxy::PgCatalogCache;
using dbwarden::proxy::PgCatalogEffects;
using dbwarden::proxy::PgCatalogLookup;
using dbwarden::proxy::PgLookupName;
using dbwarden::proxy::PgScopeCatalog;

namespace {

using Cells = std::vector<std::optional<std::string>>;

std::string Body(const Cells& cells) {
  std::string body = I16(static_cast<uint16_t>(cells.size()));
  for (const auto& c : cells) body += c ? I32(static_cast<uint32_t>(c->size())) + *c : I32(~0u);
  return body;
}

std::string LookupDesc(int columns = 7) {
  std::string body = I16(static_cast<uint16_t>(columns));
  for (int i = 0; i < columns; ++i) {
    body += CStr("?column?") + I32(0) + I16(0) + I32(25) + I16(0xffff) + I32(~0u) + I16(0);
  }
  return body;
}

// Feeds one answer (a list of messages) to `lookup`; the last state.
PgCatalogLookup::State Feed(PgCatalogLookup& lookup,
                            const std::vector<std::pair<char, std::string>>& messages,
                            int* forwarded = nullptr) {
  PgCatalogLookup::State st = PgCatalogLookup::State::kRunning;
  for (const auto& [type, body] : messages) {
    bool forward = false;
    st = lookup.on_message(static_cast<uint8_t>(type),
                           {reinterpret_cast<const uint8_t*>(body.data()), body.size()}, &forward);
    if (forward && forwarded != nullptr) ++*forwarded;
  }
  return st;
}

std::string Text(const std::vector<uint8_t>& m) { return std::string(m.begin(), m.end()); }

}  // namespace

TEST_CASE("pg catalog: the lookup query escapes names and names pg_catalog's objects",
          "[proxy][catalog]") {
  PgCatalogLookup lookup;
  std::vector<uint8_t> message;
  const std::vector<PgLookupName> names = {
      {false, "", "people"},
      {false, "sales", "o'neil\\x"},
      {true, "", "upper"},
      {false, "", std::string(200, 'a')},  // longer than any PostgreSQL name: not asked
  };
  REQUIRE(lookup.query(names, message));
  const std::string q = Text(message);
  REQUIRE(q[0] == 'Q');
  CHECK(q.back() == '\0');
  CHECK(q.find("(0, 'r', E'', E'people')") != std::string::npos);
  CHECK(q.find("(1, 'r', E'sales', E'o\\'neil\\\\x')") != std::string::npos);
  CHECK(q.find("(2, 'f', E'', E'upper')") != std::string::npos);
  CHECK(q.find(std::string(200, 'a')) == std::string::npos);
  // Nothing the client's search_path could shadow.
  CHECK(q.find("pg_catalog.to_regclass(") != std::string::npos);
  CHECK(q.find("pg_catalog.current_schemas(true)") != std::string::npos);
  CHECK(q.find(" = ") == std::string::npos);
  CHECK(q.find("::text") == std::string::npos);
}

TEST_CASE("pg catalog: an answer fills the scope: tables, views, columns, functions",
          "[proxy][catalog]") {
  PgCatalogLookup lookup;
  std::vector<uint8_t> message;
  const std::vector<PgLookupName> names = {{false, "", "people"},
                                           {false, "", "people_v"},
                                           {false, "", "nosuch"},
                                           {true, "", "upper"},
                                           {true, "", "get_ssn"}};
  REQUIRE(lookup.query(names, message));
  int forwarded = 0;
  const auto st =
      Feed(lookup,
           {{'T', LookupDesc()},
            {'D', Body({"s", "-1", "shop", "\"$user\",public,pg_catalog", {}, {}, {}})},
            {'D', Body({"r", "0", "16400", "public", "people", "r", {}})},
            // Columns in any order: kept in attnum order (a dropped column leaves a gap).
            {'D', Body({"c", "0", "3", "ssn", {}, {}, {}})},
            {'D', Body({"c", "0", "1", "id", {}, {}, {}})},
            {'S', ParamStatus("TimeZone", "UTC").substr(5)},
            {'D', Body({"r", "1", "16410", "public", "people_v", "v",
                        " SELECT people.ssn AS s\n FROM people;"})},
            {'D', Body({"c", "1", "1", "s", {}, {}, {}})},
            {'D', Body({"r", "2", {}, {}, {}, {}, {}})},
            {'D', Body({"f", "3", "f", {}, {}, {}, {}})},
            {'D', Body({"f", "4", "t", {}, {}, {}, {}})},
            {'C', CStr("SELECT 9")},
            {'Z', "I"}},
           &forwarded);
  REQUIRE(st == PgCatalogLookup::State::kDone);
  CHECK(forwarded == 1);  // the ParameterStatus is the client's
  CHECK(lookup.scope_key() == "shop/\"$user\",public,pg_catalog");
  PgCatalogCache cache;
  PgCatalogCache::Scope& scope = cache.get(lookup.scope_key(), 1);
  lookup.fill(scope, 1 << 20);

  PgScopeCatalog catalog(&scope);
  const auto people = catalog.relation("", "people");
  REQUIRE(people.has_value());
  CHECK(people->schema == "public");
  CHECK_FALSE(people->is_view);
  CHECK(people->columns == std::vector<std::string>{"id", "ssn"});
  const auto view = catalog.relation("", "people_v");
  REQUIRE(view.has_value());
  CHECK(view->is_view);
  CHECK(view->view_definition.find("FROM people") != std::string::npos);
  CHECK_FALSE(catalog.relation("", "nosuch").has_value());
  CHECK_FALSE(catalog.function_is_opaque("", "upper"));
  CHECK(catalog.function_is_opaque("", "get_ssn"));
  CHECK(catalog.missing().empty());  // every name was answered, "none" included
  // By OID, with attribute numbers, for RowDescription.
  const auto* byoid = scope.by_oid(16400);
  REQUIRE(byoid != nullptr);
  CHECK(byoid->attnums == std::vector<int16_t>{1, 3});
  // Names not asked are missing: a relation fails the trace, a function lets it go on.
  CHECK_FALSE(catalog.relation("other", "people").has_value());
  CHECK_FALSE(catalog.function_is_opaque("", "lower"));
  REQUIRE(catalog.missing().size() == 2);
  CHECK(catalog.missing()[0] == PgLookupName{false, "other", "people"});
  CHECK(catalog.missing()[1] == PgLookupName{true, "", "lower"});
}

TEST_CASE("pg catalog: an error, a wrong shape or a cut row keeps nothing", "[proxy][catalog]") {
  PgCatalogLookup lookup;
  std::vector<uint8_t> message;
  const std::vector<PgLookupName> names = {{false, "", "people"}};
  const std::string scope_row = Body({"s", "-1", "db", "public", {}, {}, {}});
  const std::string people_row = Body({"r", "0", "1", "public", "people", "r", {}});
  std::vector<std::pair<char, std::string>> answer;
  SECTION("error") {
    answer = {{'E', CStr("SERROR") + CStr("C42501") + CStr("Mdenied") + std::string(1, '\0')},
              {'Z', "I"}};
  }
  SECTION("shape") {
    answer = {{'T', LookupDesc(6)}, {'D', scope_row}, {'C', CStr("SELECT 1")}, {'Z', "I"}};
  }
  SECTION("cut row") {
    answer = {{'T', LookupDesc()},
              {'D', scope_row},
              {'D', people_row.substr(0, people_row.size() - 3)},
              {'Z', "I"}};
  }
  SECTION("no scope row") {
    answer = {{'T', LookupDesc()}, {'D', people_row}, {'C', CStr("SELECT 1")}, {'Z', "I"}};
  }
  REQUIRE(lookup.query(names, message));
  CHECK(Feed(lookup, answer) == PgCatalogLookup::State::kFailed);
  PgCatalogCache cache;
  PgCatalogCache::Scope& scope = cache.get("db/public", 1);
  lookup.fill(scope, 1 << 20);
  CHECK(scope.relation("", "people") == nullptr);
}

TEST_CASE("pg catalog: a view definition too long to keep is not followed", "[proxy][catalog]") {
  PgCatalogLookup lookup;
  std::vector<uint8_t> message;
  const std::vector<PgLookupName> names = {{false, "", "v"}};
  REQUIRE(lookup.query(names, message));
  REQUIRE(Feed(lookup, {{'T', LookupDesc()},
                        {'D', Body({"s", "-1", "db", "public", {}, {}, {}})},
                        {'D', Body({"r", "0", "5", "public", "v", "v", std::string(100, 'x')})},
                        {'C', CStr("SELECT 2")},
                        {'Z', "I"}}) == PgCatalogLookup::State::kDone);
  PgCatalogCache cache;
  PgCatalogCache::Scope& scope = cache.get(lookup.scope_key(), 1);
  lookup.fill(scope, 50);
  PgScopeCatalog catalog(&scope);
  const auto v = catalog.relation("", "v");
  REQUIRE(v.has_value());
  CHECK(v->is_view);
  CHECK(v->view_definition.empty());
  // The tracer then refuses to follow it: the statement is untraced.
  const auto lineage = dbwarden::sql::trace_pg_lineage("SELECT * FROM v", catalog);
  CHECK_FALSE(lineage.traced);
}

TEST_CASE("pg catalog: scopes expire, are bounded and forgotten on DDL", "[proxy][catalog]") {
  PgCatalogCache::Limits limits;
  limits.max_scopes = 2;
  limits.ttl_ns = 1000;
  limits.max_names_per_scope = 3;
  limits.max_fingerprints_per_scope = 2;
  PgCatalogCache cache(limits);
  const uint64_t g0 = cache.generation();
  PgCatalogCache::Scope& a = cache.get("db/a", 10);
  a.add_relation("", "t1", nullptr);
  CHECK(cache.find("db/a", 500) == &a);
  CHECK(cache.find("db/a", 1010) == nullptr);  // the TTL
  CHECK(cache.generation() != g0);             // relays drop their pointers
  cache.get("db/a", 2000);
  cache.get("db/b", 2100);
  cache.get("db/c", 2200);  // the oldest goes
  CHECK(cache.scopes() == 2);
  CHECK(cache.find("db/a", 2300) == nullptr);
  CHECK(cache.find("db/b", 2300) != nullptr);
  const uint64_t g1 = cache.generation();
  cache.invalidate();
  CHECK(cache.scopes() == 0);
  CHECK(cache.generation() != g1);
  // Per scope: names and fingerprints bounded.
  PgCatalogCache::Scope& s = cache.get("db/s", 3000);
  for (int i = 0; i < 5; ++i) s.add_relation("", "t" + std::to_string(i), nullptr);
  s.add_function("", "f", true);
  CHECK(s.relation("", "t2") != nullptr);
  CHECK(s.relation("", "t3") == nullptr);
  CHECK(s.function_opaque("", "f") == nullptr);
  s.set_untouched(1);
  s.set_untouched(2);
  s.set_untouched(3);  // full: starts over
  CHECK(s.untouched(3));
  CHECK_FALSE(s.untouched(1));
}

TEST_CASE("pg catalog: which statements change the catalog or the scope", "[proxy][catalog]") {
  using dbwarden::proxy::kPgCatalogChange;
  using dbwarden::proxy::kPgScopeChange;
  using dbwarden::proxy::kPgTransactionEnd;
  CHECK(PgCatalogEffects("CREATE VIEW v AS SELECT 1") == kPgCatalogChange);
  CHECK(PgCatalogEffects("  /* x */ -- y\n drop table t") == kPgCatalogChange);
  CHECK(PgCatalogEffects("ALTER TABLE t RENAME TO u") == kPgCatalogChange);
  CHECK(PgCatalogEffects("SELECT * INTO t2 FROM t") == kPgCatalogChange);
  CHECK(PgCatalogEffects("DO $$ BEGIN END $$") == kPgCatalogChange);
  CHECK(PgCatalogEffects("SET search_path = evil, public") == kPgScopeChange);
  CHECK(PgCatalogEffects("reset all") == kPgScopeChange);
  CHECK(PgCatalogEffects("SELECT set_config('search_path', 'x', false)") == kPgScopeChange);
  CHECK(PgCatalogEffects("COMMIT") == kPgTransactionEnd);
  CHECK(PgCatalogEffects("SELECT abalance FROM pgbench_accounts WHERE aid = 1") == 0);
  CHECK(PgCatalogEffects("INSERT INTO t VALUES (1)") == 0);
  CHECK(PgCatalogEffects("") == 0);
}
