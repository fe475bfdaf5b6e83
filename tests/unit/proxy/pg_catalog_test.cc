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
  // What drivers set on connect cannot move the search_path or the role: the scope stays.
  CHECK(PgCatalogEffects("SET extra_float_digits = 3") == 0);
  CHECK(PgCatalogEffects("SET application_name = 'PostgreSQL JDBC Driver'") == 0);
  CHECK(PgCatalogEffects("set session DateStyle TO 'ISO'") == 0);
  CHECK(PgCatalogEffects("SET LOCAL statement_timeout=0") == 0);
  CHECK(PgCatalogEffects("SET role app") == kPgScopeChange);
  CHECK(PgCatalogEffects("SET SESSION AUTHORIZATION app") == kPgScopeChange);
  CHECK(PgCatalogEffects("SET LOCAL search_path TO evil") == kPgScopeChange);
  CHECK(PgCatalogEffects("SET application_name.x = 1") == kPgScopeChange);
  CHECK(PgCatalogEffects("SET \"search_path\" = evil") == kPgScopeChange);
  CHECK(PgCatalogEffects("COMMIT") == kPgTransactionEnd);
  CHECK(PgCatalogEffects("SELECT abalance FROM pgbench_accounts WHERE aid = 1") == 0);
  CHECK(PgCatalogEffects("INSERT INTO t VALUES (1)") == 0);
  CHECK(PgCatalogEffects("") == 0);
}

// --- the reach set (pg_catalog.h): what a transaction block may trust without a lookup ---

namespace {

using dbwarden::proxy::GlobToLike;
using dbwarden::proxy::PgOutsideReach;
using dbwarden::proxy::ReachPattern;

// An answer with the reach set: people (holds the masked column), people_v over it (and
// over plain_t, which it also reads), hidden.people (same name, not on the path), and the
// functions that may read tables.
std::vector<std::pair<char, std::string>> ReachAnswer(bool with_end = true) {
  std::vector<std::pair<char, std::string>> m = {
      {'T', LookupDesc()},
      {'D', Body({"s", "-1", "shop", "public,pg_catalog", {}, {}, {}})},
      {'D', Body({"R", "1", "16400", "public", "people", "r", {}})},
      {'D', Body({"a", "-1", "16400", "2", "ssn", {}, {}})},
      {'D', Body({"a", "-1", "16400", "1", "name", {}, {}})},
      {'D', Body({"R", "1", "16410", "public", "people_v", "v",
                  " SELECT people.ssn, plain_t.b\n   FROM people, plain_t;"})},
      {'D', Body({"a", "-1", "16410", "1", "ssn", {}, {}})},
      {'D', Body({"a", "-1", "16410", "2", "b", {}, {}})},
      {'D', Body({"R", "0", "16420", "hidden", "people", "r", {}})},
      {'D', Body({"a", "-1", "16420", "1", "ssn", {}, {}})},
      {'D', Body({"U", "1", "16430", "public", "plain_t", "r", {}})},
      {'D', Body({"a", "-1", "16430", "1", "a", {}, {}})},
      {'D', Body({"a", "-1", "16430", "2", "b", {}, {}})},
      {'D', Body({"F", "1", "public", "get_ssn", {}, {}, {}})},
      {'D', Body({"F", "0", "hidden", "leak", {}, {}, {}})},
  };
  if (with_end) m.push_back({'D', Body({"e", "-1", {}, {}, {}, {}, {}})});
  m.push_back({'C', CStr("SELECT 14")});
  m.push_back({'Z', "I"});
  return m;
}

}  // namespace

TEST_CASE("pg catalog: column globs become LIKE patterns that match at least as much",
          "[proxy][catalog][reach]") {
  CHECK(GlobToLike("people") == "people");
  CHECK(GlobToLike("*") == "%");
  CHECK(GlobToLike("ssn_?") == "ssn\\_%");  // a LIKE '_' is literal here
  CHECK(GlobToLike("a[!x-z]b") == "a%b");
  CHECK(GlobToLike("a[]x]b") == "a%b");
  CHECK(GlobToLike("100\\%") == "100\\%");
  CHECK(GlobToLike("back\\\\slash") == "back\\\\slash");
  auto policy = dbwarden::policy::Policy::load_string(R"(
rules:
  - {name: a, action: mask, columns: ["public.people.ssn", "*.cards.*", "public.people.ssn"]}
  - {name: b, action: mask, detectors: [email]}
)",
                                                      "p.yaml");
  REQUIRE(policy.ok());
  const auto patterns = dbwarden::proxy::ReachPatterns(*policy.value());
  REQUIRE(patterns.size() == 2);
  CHECK(patterns[0] == ReachPattern{"public", "people", "ssn"});
  CHECK(patterns[1] == ReachPattern{"%", "cards", "%"});
}

TEST_CASE("pg catalog: a lookup with the reach set asks pg_depend and fills the scope",
          "[proxy][catalog][reach]") {
  PgCatalogLookup lookup;
  std::vector<uint8_t> message;
  const std::vector<ReachPattern> reach = {{"public", "people", "ssn"}, {"%", "o'x", "%"}};
  REQUIRE(lookup.query({}, message, reach));
  const std::string q = Text(message);
  CHECK(q.find("(E'public', E'people', E'ssn'), (E'%', E'o\\'x', E'%')") != std::string::npos);
  CHECK(q.find("pg_catalog.pg_depend") != std::string::npos);
  CHECK(q.find("pg_catalog.pg_table_is_visible(") != std::string::npos);
  CHECK(q.find(" = ") == std::string::npos);
  CHECK(q.find("::text") == std::string::npos);
  REQUIRE(Feed(lookup, ReachAnswer()) == PgCatalogLookup::State::kDone);
  CHECK(lookup.reach_listed());
  PgCatalogCache cache;
  PgCatalogCache::Scope& scope = cache.get(lookup.scope_key(), 1);
  lookup.fill(scope, 1 << 20);
  REQUIRE(scope.reach_known());
  CHECK(scope.in_reach(16400));
  CHECK(scope.in_reach(16410));
  CHECK(scope.in_reach(16420));
  CHECK_FALSE(scope.in_reach(16430));  // read by a view of the set, holds nothing masked

  PgScopeCatalog catalog(&scope);
  // By the bare name where the path finds it, by the qualified name always.
  const auto people = catalog.relation("", "people");
  REQUIRE(people.has_value());
  CHECK(people->schema == "public");
  CHECK(people->columns == std::vector<std::string>{"name", "ssn"});
  REQUIRE(catalog.relation("hidden", "people").has_value());
  REQUIRE(catalog.relation("", "plain_t").has_value());
  // A relation the scope does not know is outside the set, not missing; a temporary
  // schema's name is missing.
  CHECK_FALSE(catalog.relation("", "hold_t").has_value());
  CHECK_FALSE(catalog.relation("pg_temp", "t").has_value());
  REQUIRE(catalog.outside().size() == 1);
  CHECK(catalog.outside()[0] == PgLookupName{false, "", "hold_t"});
  REQUIRE(catalog.missing().size() == 1);
  CHECK(catalog.missing()[0] == PgLookupName{false, "pg_temp", "t"});
  // Functions from the list: by the bare name when their schema is on the path.
  CHECK_FALSE(catalog.function_is_opaque("", "count"));
  CHECK(catalog.function_is_opaque("", "get_ssn"));
  CHECK(catalog.function_is_opaque("public", "get_ssn"));
  CHECK_FALSE(catalog.function_is_opaque("", "leak"));
  CHECK(catalog.function_is_opaque("hidden", "leak"));
  CHECK(catalog.function_is_opaque("pg_temp", "anything"));
  CHECK(catalog.missing().size() == 1);  // functions were all answered
}

TEST_CASE("pg catalog: a reach set cut short or past its bound is not trusted",
          "[proxy][catalog][reach]") {
  PgCatalogLookup lookup;
  std::vector<uint8_t> message;
  const std::vector<ReachPattern> reach = {{"public", "people", "ssn"}};
  SECTION("no end row") {
    REQUIRE(lookup.query({}, message, reach));
    REQUIRE(Feed(lookup, ReachAnswer(false)) == PgCatalogLookup::State::kDone);
  }
  SECTION("not asked") {
    REQUIRE(lookup.query({}, message));
    REQUIRE(Feed(lookup, ReachAnswer()) == PgCatalogLookup::State::kDone);
  }
  SECTION("more functions than the bound") {
    REQUIRE(lookup.query({}, message, reach));
    auto answer = ReachAnswer();
    std::vector<std::pair<char, std::string>> more(answer.begin(), answer.end() - 3);
    for (size_t i = 0; i <= PgCatalogLookup::kMaxReachFunctions; ++i) {
      more.push_back({'D', Body({"F", "1", "public", "f" + std::to_string(i), {}, {}, {}})});
    }
    more.insert(more.end(), answer.end() - 3, answer.end());
    REQUIRE(Feed(lookup, more) == PgCatalogLookup::State::kDone);
  }
  CHECK_FALSE(lookup.reach_listed());
  PgCatalogCache cache;
  PgCatalogCache::Scope& scope = cache.get(lookup.scope_key(), 1);
  lookup.fill(scope, 1 << 20);
  CHECK_FALSE(scope.reach_known());
  PgScopeCatalog catalog(&scope);
  CHECK_FALSE(catalog.relation("", "hold_t").has_value());
  CHECK(catalog.outside().empty());
  CHECK(catalog.missing().size() == 1);  // looked up, or failing closed, as before
}

TEST_CASE("pg catalog: a statement outside the reach set reads no masked column",
          "[proxy][catalog][reach]") {
  PgCatalogLookup lookup;
  std::vector<uint8_t> message;
  const std::vector<ReachPattern> reach = {{"public", "people", "ssn"}};
  REQUIRE(lookup.query({}, message, reach));
  REQUIRE(Feed(lookup, ReachAnswer()) == PgCatalogLookup::State::kDone);
  PgCatalogCache cache;
  PgCatalogCache::Scope& scope = cache.get(lookup.scope_key(), 1);
  PgCatalogCache::Scope unknown_reach;
  CHECK_FALSE(PgOutsideReach("SELECT count(*) FROM hold_t", unknown_reach));
  lookup.fill(scope, 1 << 20);
  for (const char* sql : {
           "SELECT count(*) FROM hold_t",
           "SELECT * FROM hold_t h JOIN other.t o USING (id) WHERE h.x > 1",
           "WITH c AS (SELECT a FROM hold_t) SELECT upper(a) FROM c",
           "SELECT a, b FROM plain_t",              // read by a view of the set, holds nothing
           "SELECT * FROM hidden_schema.people_v",  // not the set's public.people_v
           "INSERT INTO hold_t SELECT * FROM hold_t RETURNING *",
           "SELECT leak()",  // hidden.leak is not on the path
       }) {
    INFO(sql);
    CHECK(PgOutsideReach(sql, scope));
  }
  for (const char* sql : {
           "SELECT count(*) FROM people",
           "SELECT h.x FROM hold_t h WHERE h.id IN (SELECT 1 FROM people_v)",
           "SELECT * FROM hidden.people", "SELECT get_ssn() FROM hold_t",
           "SELECT hidden.leak() FROM hold_t", "SELECT * FROM pg_temp.t",
           "SELECT pg_temp.f() FROM hold_t",
           "SELECT query_to_xml('select ssn from people', true, true, '')", "FETCH ALL FROM c",
           "EXECUTE p", "CALL proc()", "DO $$ BEGIN PERFORM 1; END $$",
           "SELECT FROM WHERE",  // does not parse
       }) {
    INFO(sql);
    CHECK_FALSE(PgOutsideReach(sql, scope));
  }
}

// --- sharing the scope between connections (pg_catalog.h, "Sharing it") ---

namespace {

using dbwarden::proxy::PgScopeHasTemp;
using dbwarden::proxy::PgScopeKey;
using dbwarden::proxy::PgStartKey;
using dbwarden::proxy::ReachTag;

// A StartupMessage with `params` (name, value) in this order.
std::vector<uint8_t> StartupOf(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string body = I32(3u << 16);
  for (const auto& [name, value] : params) body += CStr(name) + CStr(value);
  body += '\0';
  const std::string packet = I32(static_cast<uint32_t>(body.size() + 4)) + body;
  return {packet.begin(), packet.end()};
}

}  // namespace

TEST_CASE("pg catalog: a start key keeps what can move the search_path, in any order",
          "[proxy][catalog][share]") {
  const auto key = [](const std::string& server,
                      const std::vector<std::pair<std::string, std::string>>& params) {
    return PgStartKey(server, StartupOf(params));
  };
  const std::string base = key("tcp 127.0.0.1 5432", {{"user", "app"}, {"database", "shop"}});
  REQUIRE_FALSE(base.empty());
  // Order, and settings that change neither the search_path nor the role, do not count.
  CHECK(key("tcp 127.0.0.1 5432", {{"application_name", "worker-7"},
                                   {"database", "shop"},
                                   {"client_encoding", "UTF8"},
                                   {"DateStyle", "ISO"},
                                   {"user", "app"}}) == base);
  // Everything else does: the user, the database, options, a GUC given directly, the server.
  CHECK(key("tcp 127.0.0.1 5432", {{"user", "other"}, {"database", "shop"}}) != base);
  CHECK(key("tcp 127.0.0.1 5432", {{"user", "app"}, {"database", "stock"}}) != base);
  CHECK(key("tcp 127.0.0.1 5432",
            {{"user", "app"}, {"database", "shop"}, {"options", "-c search_path=evil"}}) != base);
  CHECK(key("tcp 127.0.0.1 5432",
            {{"user", "app"}, {"database", "shop"}, {"search_path", "evil,public"}}) != base);
  CHECK(key("tcp 127.0.0.1 5433", {{"user", "app"}, {"database", "shop"}}) != base);
  // Malformed: no key (the connection then never shares a start).
  std::vector<uint8_t> cut = StartupOf({{"user", "app"}});
  cut.resize(cut.size() - 3);
  CHECK(PgStartKey("s", cut).empty());
  CHECK(PgStartKey("s", std::vector<uint8_t>(4, 0)).empty());
}

TEST_CASE("pg catalog: the scope key names the server, the scope and the reach patterns",
          "[proxy][catalog][share]") {
  const std::vector<ReachPattern> a = {{"public", "people", "ssn"}};
  const std::vector<ReachPattern> b = {{"public", "people", "ssn"}, {"%", "cards", "%"}};
  const std::vector<ReachPattern> c = {{"public", "peoples", "sn"}};
  CHECK(ReachTag(a) != ReachTag(b));
  CHECK(ReachTag(a) != ReachTag(c));  // parts are delimited
  const std::string k = PgScopeKey("tcp 127.0.0.1 5432", "shop/public", ReachTag(a));
  CHECK(k == PgScopeKey("tcp 127.0.0.1 5432", "shop/public", ReachTag(a)));
  CHECK(k != PgScopeKey("tcp 127.0.0.1 5433", "shop/public", ReachTag(a)));
  CHECK(k != PgScopeKey("tcp 127.0.0.1 5432", "shop/evil,public", ReachTag(a)));
  CHECK(k != PgScopeKey("tcp 127.0.0.1 5432", "shop/public", ReachTag(b)));
  CHECK(PgScopeHasTemp("shop/pg_temp_3,public,pg_catalog"));
  CHECK_FALSE(PgScopeHasTemp("shop/public,pg_catalog"));
}

TEST_CASE("pg catalog: the scope row says whether the session is at its start",
          "[proxy][catalog][share]") {
  PgCatalogLookup lookup;
  std::vector<uint8_t> message;
  REQUIRE(lookup.query({}, message));
  const std::string q = Text(message);
  CHECK(q.find("pg_catalog.pg_settings") != std::string::npos);
  CHECK(q.find("reset_val") != std::string::npos);
  CHECK(q.find("CURRENT_USER OPERATOR(pg_catalog.=) SESSION_USER") != std::string::npos);
  REQUIRE(Feed(lookup, {{'T', LookupDesc()},
                        {'D', Body({"s", "-1", "shop", "public", "t", "app", {}})},
                        {'C', CStr("SELECT 1")},
                        {'Z', "I"}}) == PgCatalogLookup::State::kDone);
  CHECK(lookup.at_start());
  CHECK(lookup.session_user() == "app");
  REQUIRE(lookup.query({}, message));
  REQUIRE(Feed(lookup, {{'T', LookupDesc()},
                        {'D', Body({"s", "-1", "shop", "evil,public", "f", "app", {}})},
                        {'C', CStr("SELECT 1")},
                        {'Z', "I"}}) == PgCatalogLookup::State::kDone);
  CHECK_FALSE(lookup.at_start());
}

TEST_CASE("pg catalog: starts are learnt, expire, are bounded and forgotten on DDL",
          "[proxy][catalog][share]") {
  PgCatalogCache::Limits limits;
  limits.ttl_ns = 1000;
  limits.max_starts = 2;
  PgCatalogCache cache(limits);
  uint64_t age = 0;
  CHECK(cache.start_scope("s1", 10, &age) == nullptr);
  cache.learn_start("s1", "shop/public", 10);
  const std::string* scope = cache.start_scope("s1", 300, &age);
  REQUIRE(scope != nullptr);
  CHECK(*scope == "shop/public");
  CHECK(age == 290);
  CHECK(cache.start_scope("s1", 1010, &age) == nullptr);  // the TTL
  // Bounded, the least recently used goes.
  cache.learn_start("a", "x/a", 2000);
  cache.learn_start("b", "x/b", 2001);
  CHECK(cache.start_scope("a", 2002, &age) != nullptr);  // used: b is the older now
  cache.learn_start("c", "x/c", 2003);
  CHECK(cache.starts() == 2);
  CHECK(cache.start_scope("b", 2004, &age) == nullptr);
  CHECK(cache.start_scope("a", 2004, &age) != nullptr);
  CHECK(cache.counters().evictions == 1);
  // DDL: forgotten with the scopes.
  cache.invalidate();
  CHECK(cache.starts() == 0);
}

TEST_CASE("pg catalog: scopes past the bound go least recently used first",
          "[proxy][catalog][share]") {
  PgCatalogCache::Limits limits;
  limits.max_scopes = 2;
  PgCatalogCache cache(limits);
  cache.get("a", 10);
  cache.get("b", 20);
  REQUIRE(cache.find("a", 30) != nullptr);  // a is used again: b is now the least recent
  cache.get("c", 40);
  CHECK(cache.find("b", 50) == nullptr);
  CHECK(cache.find("a", 50) != nullptr);
  CHECK(cache.find("c", 50) != nullptr);
  // A relay holding a pointer says so without a find.
  cache.find("c", 60)->note_used(100);
  cache.find("a", 70);
  cache.get("d", 80);  // a (70) goes, c (100) stays
  CHECK(cache.find("c", 90) != nullptr);
  CHECK(cache.find("a", 90) == nullptr);
  CHECK(cache.counters().evictions == 2);
}

TEST_CASE("pg catalog: one lookup in flight per key, and its waiters are woken when it ends",
          "[proxy][catalog][share]") {
  PgCatalogCache cache;
  int r1 = 0, r2 = 0, r3 = 0;
  CHECK(cache.claim("k", &r1));
  CHECK(cache.claim("k", &r1));  // its own again
  CHECK_FALSE(cache.claim("k", &r2));
  CHECK(cache.claimed_by_other("k", &r2));
  CHECK_FALSE(cache.claimed_by_other("k", &r1));
  CHECK_FALSE(cache.claimed_by_other("other", &r2));
  cache.wait("k", &r2);
  cache.wait("k", &r3);
  cache.wait("other", &r3);  // nothing in flight there, and r3 already waits: no effect
  CHECK(cache.waiting(&r2));
  CHECK(cache.waiting(&r3));
  CHECK(cache.take_woken().empty());
  // r3 goes away while waiting: it is never woken.
  cache.forget(&r3);
  CHECK_FALSE(cache.waiting(&r3));
  cache.release(&r1);
  CHECK_FALSE(cache.waiting(&r2));
  CHECK(cache.take_woken() == std::vector<const void*>{&r2});
  CHECK_FALSE(cache.claimed_by_other("k", &r2));
  // The owner goes away mid-lookup: its waiters are woken too (and ask themselves).
  CHECK(cache.claim("k", &r2));
  cache.wait("k", &r1);
  cache.forget(&r2);
  CHECK(cache.take_woken() == std::vector<const void*>{&r1});
  CHECK(cache.claim("k", &r1));
}
