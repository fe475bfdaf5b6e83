// SPDX-License-Identifier: Apache-2.0
//
// sql/lineage.h: every result column traced to its base columns through the
// forms a masking bypass would use, against a fixed catalog
// (lineage_catalog.h). Sources are compared as sets; names as PostgreSQL's
// RowDescription gives them.
#include "sql/lineage.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <initializer_list>
#include <string>
#include <vector>

#include "../support/lineage_catalog.h"

namespace {

using dbwarden::sql::ColumnRef;
using dbwarden::sql::Flow;
using dbwarden::sql::Lineage;
using dbwarden::sql::trace_pg_lineage;

constexpr Flow kCopy = Flow::kCopy;
constexpr Flow kDerived = Flow::kDerived;

Lineage trace(const std::string& sql) {
  dbw_test::FixedCatalog catalog;
  return trace_pg_lineage(sql, catalog);
}

// "people.ssn" is public.people.ssn; "hr.salaries.salary" names its schema.
std::vector<std::string> keys(const std::vector<ColumnRef>& refs) {
  std::vector<std::string> out;
  for (const ColumnRef& r : refs) {
    out.push_back(r.schema == "public" ? r.table + "." + r.column
                                       : r.schema + "." + r.table + "." + r.column);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> sorted(std::initializer_list<const char*> in) {
  std::vector<std::string> out(in.begin(), in.end());
  std::sort(out.begin(), out.end());
  return out;
}

// Result column i is `name`, from exactly `sources`, with `flow`.
void check_column(const Lineage& l, size_t i, const char* name,
                  std::initializer_list<const char*> sources, Flow flow) {
  INFO("column " << i);
  REQUIRE(l.traced);
  REQUIRE(i < l.columns.size());
  CHECK(l.columns[i].name == name);
  CHECK(keys(l.columns[i].sources) == sorted(sources));
  CHECK(l.columns[i].flow == flow);
}

void check_untraced(const std::string& sql, const std::string& why_part) {
  INFO(sql);
  const Lineage l = trace(sql);
  CHECK_FALSE(l.traced);
  CHECK(l.columns.empty());
  INFO(l.why);
  CHECK(l.why.find(why_part) != std::string::npos);
}

}  // namespace

TEST_CASE("lineage: plain columns, aliases and table aliases", "[sql][lineage]") {
  Lineage l = trace("SELECT id, ssn AS s, people.name, public.people.email FROM people p2, people");
  REQUIRE(l.traced);
  REQUIRE(l.columns.size() == 4);
  // Unqualified names in two FROM items: PostgreSQL would call them
  // ambiguous; the tracer takes both (over, never under).
  check_column(l, 0, "id", {"people.id"}, kCopy);
  check_column(l, 1, "s", {"people.ssn"}, kCopy);
  check_column(l, 2, "name", {"people.name"}, kCopy);
  check_column(l, 3, "email", {"people.email"}, kCopy);
  CHECK(trace("SELECT p.name FROM people p2, people").traced == false);

  l = trace("SELECT p.ssn AS x, P.\"name\" FROM people AS p");
  check_column(l, 0, "x", {"people.ssn"}, kCopy);
  check_column(l, 1, "name", {"people.name"}, kCopy);
  CHECK(keys(l.read_columns) == sorted({"people.ssn", "people.name"}));
  CHECK(l.predicate_columns.empty());

  l = trace("SELECT s.salary, hr.salaries.id FROM hr.salaries s2, hr.salaries s");
  CHECK_FALSE(l.traced);  // hr.salaries is aliased: only s2 and s name it
  l = trace("SELECT salaries.salary, hr.salaries.id FROM hr.salaries");
  check_column(l, 0, "salary", {"hr.salaries.salary"}, kCopy);
  check_column(l, 1, "id", {"hr.salaries.id"}, kCopy);
  // An alias hides the table's own name.
  check_untraced("SELECT people.ssn FROM people p", "people.ssn");
  // System columns hold no user data.
  l = trace("SELECT ctid, xmin FROM people");
  check_column(l, 0, "ctid", {}, kCopy);
}

TEST_CASE("lineage: casts, functions, operators, concatenation, CASE", "[sql][lineage]") {
  const Lineage l = trace(
      "SELECT ssn::text, CAST(id AS bigint), (ssn), lower(email), id + 1, 'x' || name, "
      "name || ssn AS both, CASE WHEN id > 1 THEN ssn ELSE 'none' END, "
      "coalesce(ssn, email), ssn COLLATE \"C\", '1'::int, ssn = '1', ssn IS NULL, "
      "substring(ssn from 1 for 3), greatest(id, manager_id), now() FROM people");
  check_column(l, 0, "ssn", {"people.ssn"}, kCopy);
  check_column(l, 1, "id", {"people.id"}, kCopy);
  check_column(l, 2, "ssn", {"people.ssn"}, kCopy);
  check_column(l, 3, "lower", {"people.email"}, kDerived);
  check_column(l, 4, "?column?", {"people.id"}, kDerived);
  check_column(l, 5, "?column?", {"people.name"}, kDerived);
  check_column(l, 6, "both", {"people.name", "people.ssn"}, kDerived);
  check_column(l, 7, "case", {"people.id", "people.ssn"}, kDerived);
  check_column(l, 8, "coalesce", {"people.ssn", "people.email"}, kDerived);
  check_column(l, 9, "ssn", {"people.ssn"}, kCopy);
  check_column(l, 10, "int4", {}, kCopy);
  check_column(l, 11, "?column?", {"people.ssn"}, kDerived);
  check_column(l, 12, "?column?", {"people.ssn"}, kDerived);
  check_column(l, 13, "substring", {"people.ssn"}, kDerived);
  check_column(l, 14, "greatest", {"people.id", "people.manager_id"}, kDerived);
  check_column(l, 15, "now", {}, kDerived);
}

TEST_CASE("lineage: aggregates, GROUP BY, HAVING, windows, ORDER BY", "[sql][lineage]") {
  Lineage l = trace(
      "SELECT name, count(*), max(ssn), string_agg(email, ',' ORDER BY ssn) FROM people "
      "WHERE manager_id = 3 GROUP BY name HAVING min(ssn) > '1' ORDER BY 2");
  check_column(l, 0, "name", {"people.name"}, kCopy);
  check_column(l, 1, "count", {}, kDerived);
  check_column(l, 2, "max", {"people.ssn"}, kDerived);
  check_column(l, 3, "string_agg", {"people.email"}, kDerived);
  CHECK(keys(l.predicate_columns) == sorted({"people.manager_id", "people.name", "people.ssn"}));

  l = trace(
      "SELECT count(*) FILTER (WHERE ssn LIKE '1%') AS n, row_number() OVER w, "
      "rank() OVER (PARTITION BY email ORDER BY id) FROM people WINDOW w AS (ORDER BY name)");
  check_column(l, 0, "n", {"people.ssn"}, kDerived);
  check_column(l, 1, "row_number", {}, kDerived);
  check_column(l, 2, "rank", {}, kDerived);
  CHECK(keys(l.predicate_columns) ==
        sorted({"people.ssn", "people.email", "people.id", "people.name"}));

  // ORDER BY an output alias is the aliased expression; DISTINCT ON likewise.
  l = trace("SELECT DISTINCT ON (e) email AS e, ssn AS s FROM people ORDER BY e, s");
  CHECK(keys(l.predicate_columns) == sorted({"people.email", "people.ssn"}));
  l = trace("SELECT name FROM people GROUP BY ROLLUP (name, email) ORDER BY name LIMIT 2");
  CHECK(keys(l.predicate_columns) == sorted({"people.name", "people.email"}));
}

TEST_CASE("lineage: SELECT *, t.*, whole-row references", "[sql][lineage]") {
  Lineage l = trace("SELECT * FROM people");
  REQUIRE(l.columns.size() == 5);
  check_column(l, 2, "ssn", {"people.ssn"}, kCopy);
  CHECK(keys(l.read_columns).size() == 5);

  l = trace("SELECT o.*, p.ssn FROM orders o, people p");
  REQUIRE(l.columns.size() == 5);
  check_column(l, 0, "id", {"orders.id"}, kCopy);
  check_column(l, 3, "note", {"orders.note"}, kCopy);
  check_column(l, 4, "ssn", {"people.ssn"}, kCopy);

  const std::initializer_list<const char*> all = {"people.id", "people.name", "people.ssn",
                                                  "people.email", "people.manager_id"};
  l = trace(
      "SELECT p, p::text, row_to_json(p), row_to_json(p.*), to_jsonb(people.*) "
      "FROM people p, people");
  check_column(l, 0, "p", all, kDerived);
  check_column(l, 1, "p", all, kDerived);
  check_column(l, 2, "row_to_json", all, kDerived);
  check_column(l, 3, "row_to_json", all, kDerived);
  check_column(l, 4, "to_jsonb", all, kDerived);
  // A column named like the table wins over the whole row.
  l = trace("SELECT t FROM (SELECT ssn AS t FROM people) t");
  check_column(l, 0, "t", {"people.ssn"}, kCopy);
  // (t).* is t.*; the fields of another composite value are not known.
  l = trace("SELECT (p).* FROM people p");
  REQUIRE(l.columns.size() == 5);
  check_column(l, 2, "ssn", {"people.ssn"}, kCopy);
  check_untraced("SELECT (x.p).* FROM (SELECT p FROM people p) x", "(expression).*");
  // (composite).field
  l = trace("SELECT (p).ssn, (x.p).ssn FROM people p, (SELECT p FROM people p) x");
  check_column(l, 0, "ssn", all, kDerived);
  check_column(l, 1, "ssn", all, kDerived);
}

TEST_CASE("lineage: joins, USING and NATURAL merge columns", "[sql][lineage]") {
  Lineage l = trace(
      "SELECT * FROM people p JOIN accounts a USING (id) LEFT JOIN orders o ON o.person_id = p.id "
      "WHERE a.card IS NOT NULL");
  REQUIRE(l.traced);
  REQUIRE(l.columns.size() == 1 + 4 + 2 + 4);
  check_column(l, 0, "id", {"people.id", "accounts.id"}, kCopy);
  check_column(l, 1, "name", {"people.name"}, kCopy);
  check_column(l, 5, "person_id", {"accounts.person_id"}, kCopy);
  check_column(l, 6, "card", {"accounts.card"}, kCopy);
  check_column(l, 7, "id", {"orders.id"}, kCopy);
  CHECK(keys(l.predicate_columns) ==
        sorted({"people.id", "accounts.id", "orders.person_id", "accounts.card"}));

  // Unqualified `id` is the merged column; the sides keep their own.
  l = trace("SELECT id, p.id, a.id FROM people p JOIN accounts a USING (id)");
  check_column(l, 0, "id", {"people.id", "accounts.id"}, kCopy);
  check_column(l, 1, "id", {"people.id"}, kCopy);
  check_column(l, 2, "id", {"accounts.id"}, kCopy);

  l = trace("SELECT * FROM accounts NATURAL JOIN orders");
  REQUIRE(l.columns.size() == 2 + 1 + 2);
  check_column(l, 0, "id", {"accounts.id", "orders.id"}, kCopy);
  check_column(l, 1, "person_id", {"accounts.person_id", "orders.person_id"}, kCopy);

  // A join alias hides the tables inside and renames columns.
  l = trace("SELECT j.x, j.card FROM (people JOIN accounts USING (id)) AS j(x)");
  check_column(l, 0, "x", {"people.id", "accounts.id"}, kCopy);
  check_column(l, 1, "card", {"accounts.card"}, kCopy);
  check_untraced("SELECT people.ssn FROM (people JOIN accounts USING (id)) AS j", "people.ssn");
  check_untraced("SELECT 1 FROM people JOIN orders USING (card)", "USING column");
}

TEST_CASE("lineage: sub-queries in FROM, in the select list, in WHERE", "[sql][lineage]") {
  Lineage l = trace("SELECT s.x, s.y FROM (SELECT ssn AS x, upper(name) AS y FROM people) s");
  check_column(l, 0, "x", {"people.ssn"}, kCopy);
  check_column(l, 1, "y", {"people.name"}, kDerived);

  l = trace(
      "SELECT (SELECT ssn FROM people q WHERE q.id = o.person_id), "
      "(SELECT max(card) AS m FROM accounts), EXISTS (SELECT 1 FROM people) FROM orders o");
  check_column(l, 0, "ssn", {"people.ssn"}, kCopy);
  check_column(l, 1, "m", {"accounts.card"}, kDerived);
  check_column(l, 2, "exists", {}, kDerived);
  CHECK(keys(l.predicate_columns) == sorted({"people.id", "orders.person_id"}));

  // Columns read by a sub-query in WHERE are predicates, its output included.
  l = trace("SELECT id FROM orders WHERE person_id IN (SELECT id FROM people WHERE ssn LIKE '1%')");
  check_column(l, 0, "id", {"orders.id"}, kCopy);
  CHECK(keys(l.predicate_columns) == sorted({"orders.person_id", "people.id", "people.ssn"}));
  CHECK(keys(l.read_columns) ==
        sorted({"orders.id", "orders.person_id", "people.id", "people.ssn"}));

  // Correlation reaches the outer level; a non-LATERAL sub-query does not see its siblings.
  check_untraced("SELECT 1 FROM people p, (SELECT p.ssn) s", "p.ssn");
}

TEST_CASE("lineage: CTEs, plain and recursive", "[sql][lineage]") {
  Lineage l = trace(
      "WITH a AS (SELECT ssn, name FROM people), b(x) AS (SELECT upper(ssn) FROM a) "
      "SELECT a.ssn, b.x, (SELECT count(*) FROM b) FROM a, b");
  check_column(l, 0, "ssn", {"people.ssn"}, kCopy);
  check_column(l, 1, "x", {"people.ssn"}, kDerived);
  check_column(l, 2, "count", {}, kDerived);

  // A CTE shadows a table of the same name.
  l = trace("WITH people AS (SELECT card AS ssn FROM accounts) SELECT ssn FROM people");
  check_column(l, 0, "ssn", {"accounts.card"}, kCopy);

  // Recursive: the sources of both arms, to a fixed point (here `n` picks
  // up email through the step arm only after `m` did).
  l = trace(
      "WITH RECURSIVE r(n, m, k) AS (SELECT id, name, 1 FROM people "
      "UNION ALL SELECT m, p.email, k + 1 FROM r JOIN people p ON p.manager_id = r.k) "
      "SELECT * FROM r");
  check_column(l, 0, "n", {"people.id", "people.name", "people.email"}, kCopy);
  check_column(l, 1, "m", {"people.name", "people.email"}, kCopy);
  check_column(l, 2, "k", {}, kDerived);

  // Data-modifying CTE.
  l = trace("WITH d AS (DELETE FROM people WHERE id = 1 RETURNING ssn) SELECT * FROM d");
  check_column(l, 0, "ssn", {"people.ssn"}, kCopy);
  CHECK(keys(l.predicate_columns) == sorted({"people.id"}));
}

TEST_CASE("lineage: UNION, INTERSECT, EXCEPT", "[sql][lineage]") {
  Lineage l = trace(
      "SELECT id, name FROM people UNION SELECT id, card FROM accounts "
      "UNION ALL SELECT 1, upper(note) FROM orders ORDER BY 2");
  check_column(l, 0, "id", {"people.id", "accounts.id"}, kCopy);
  check_column(l, 1, "name", {"people.name", "accounts.card", "orders.note"}, kDerived);
  CHECK(keys(l.predicate_columns) == sorted({"people.name", "accounts.card", "orders.note"}));

  l = trace("SELECT ssn FROM people INTERSECT SELECT card FROM accounts");
  check_column(l, 0, "ssn", {"people.ssn", "accounts.card"}, kCopy);
  CHECK(keys(l.predicate_columns) == sorted({"people.ssn", "accounts.card"}));
  l = trace("(SELECT ssn FROM people) EXCEPT (SELECT note FROM orders)");
  check_column(l, 0, "ssn", {"people.ssn", "orders.note"}, kCopy);
  check_untraced("SELECT id, ssn FROM people UNION SELECT id FROM orders", "column counts");
}

TEST_CASE("lineage: VALUES, LATERAL, functions in FROM", "[sql][lineage]") {
  Lineage l = trace("VALUES (1, 'a'), (2, (SELECT ssn FROM people LIMIT 1))");
  check_column(l, 0, "column1", {}, kCopy);
  check_column(l, 1, "column2", {"people.ssn"}, kCopy);
  l = trace("SELECT v.a FROM (VALUES (1), (2)) AS v(a)");
  check_column(l, 0, "a", {}, kCopy);

  l = trace("SELECT p.id, x.s FROM people p, LATERAL (SELECT p.ssn AS s) x");
  check_column(l, 1, "s", {"people.ssn"}, kCopy);
  l = trace("SELECT x.s FROM people p CROSS JOIN LATERAL (SELECT upper(p.email) s) x");
  check_column(l, 0, "s", {"people.email"}, kDerived);

  l = trace(
      "SELECT u, t.n, e.key, e.value FROM people p, unnest(ARRAY[p.ssn, p.email]) AS u, "
      "generate_series(1, p.id) WITH ORDINALITY AS t(g, n), jsonb_each(to_jsonb(p)) e");
  check_column(l, 0, "u", {"people.ssn", "people.email"}, kDerived);
  check_column(l, 1, "n", {}, kCopy);
  check_column(l, 2, "key",
               {"people.id", "people.name", "people.ssn", "people.email", "people.manager_id"},
               kDerived);
  l = trace("SELECT * FROM people p, jsonb_to_record(to_jsonb(p)) AS r(ssn text)");
  check_column(l, 5, "ssn",
               {"people.id", "people.name", "people.ssn", "people.email", "people.manager_id"},
               kDerived);
  l = trace("SELECT * FROM unnest(ARRAY[1, 2])");
  check_column(l, 0, "unnest", {}, kDerived);
  check_untraced("SELECT * FROM my_secret_rows()", "my_secret_rows");
  check_untraced("SELECT * FROM people p, app.leak(p.ssn) AS t(x text)", "app.leak");
}

TEST_CASE("lineage: views expand recursively, with a depth bound and a cycle guard",
          "[sql][lineage]") {
  Lineage l = trace("SELECT * FROM people_v");
  REQUIRE(l.columns.size() == 3);
  check_column(l, 0, "id", {"people.id"}, kCopy);
  check_column(l, 1, "uname", {"people.name"}, kDerived);
  check_column(l, 2, "ssn", {"people.ssn"}, kCopy);

  // A view's own WHERE reads columns, but it is not the client's predicate.
  l = trace("SELECT v.ssn FROM people_vv v WHERE v.id = 2");
  check_column(l, 0, "ssn", {"people.ssn"}, kCopy);
  CHECK(keys(l.predicate_columns) == sorted({"people.id"}));
  CHECK(keys(l.read_columns) == sorted({"people.id", "people.ssn", "people.name"}));

  l = trace("SELECT b, a FROM renamed");
  check_column(l, 0, "b", {"people.ssn"}, kCopy);
  check_column(l, 1, "a", {"people.id"}, kCopy);

  l = trace("SELECT ssn FROM deep_14");
  check_column(l, 0, "ssn", {"people.ssn"}, kCopy);
  check_untraced("SELECT ssn FROM deep_19", "nested deeper");
  check_untraced("SELECT * FROM loop_a", "refers to itself");
  check_untraced("SELECT * FROM broken", "catalog lists 2");
}

TEST_CASE("lineage: INSERT, UPDATE, DELETE ... RETURNING", "[sql][lineage]") {
  Lineage l = trace("INSERT INTO people (id, ssn) VALUES (1, '123') RETURNING *");
  REQUIRE(l.columns.size() == 5);
  check_column(l, 2, "ssn", {"people.ssn"}, kCopy);
  CHECK(l.stored_columns.empty());

  // What was written flows into what is returned.
  l = trace(
      "INSERT INTO orders AS o (id, note) SELECT id, upper(ssn) FROM people "
      "RETURNING o.note, id");
  check_column(l, 0, "note", {"orders.note", "people.ssn"}, kDerived);
  check_column(l, 1, "id", {"orders.id", "people.id"}, kCopy);
  CHECK(keys(l.stored_columns) == sorted({"people.id", "people.ssn"}));

  l = trace(
      "INSERT INTO accounts (id, card) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE "
      "SET card = excluded.card || accounts.card WHERE accounts.person_id > 0 RETURNING card");
  check_column(l, 0, "card", {"accounts.card"}, kDerived);
  CHECK(keys(l.predicate_columns) == sorted({"accounts.person_id"}));

  l = trace(
      "UPDATE orders o SET note = p.ssn FROM people p WHERE p.id = o.person_id "
      "RETURNING o.note, p.email, *");
  check_column(l, 0, "note", {"orders.note", "people.ssn"}, kCopy);
  check_column(l, 1, "email", {"people.email"}, kCopy);
  CHECK(l.columns.size() == 2 + 4 + 5);
  CHECK(keys(l.stored_columns) == sorted({"people.ssn"}));
  CHECK(keys(l.predicate_columns) == sorted({"people.id", "orders.person_id"}));

  l = trace(
      "DELETE FROM people USING orders WHERE orders.person_id = people.id "
      "RETURNING people.ssn AS gone");
  check_column(l, 0, "gone", {"people.ssn"}, kCopy);

  // Without RETURNING: no rows, but predicates still count (the row count leaks).
  l = trace("DELETE FROM people WHERE ssn LIKE '1%'");
  REQUIRE(l.traced);
  CHECK(l.columns.empty());
  CHECK(keys(l.predicate_columns) == sorted({"people.ssn"}));
  l = trace(
      "MERGE INTO orders o USING people p ON o.person_id = p.id "
      "WHEN MATCHED AND p.ssn > '5' THEN UPDATE SET note = p.email "
      "WHEN NOT MATCHED THEN INSERT (id, note) VALUES (p.id, p.name)");
  REQUIRE(l.traced);
  CHECK(l.columns.empty());
  CHECK(keys(l.predicate_columns) == sorted({"orders.person_id", "people.id", "people.ssn"}));
  CHECK(keys(l.stored_columns) == sorted({"people.email", "people.id", "people.name"}));
}

TEST_CASE("lineage: COPY TO STDOUT, cursors, EXPLAIN, SELECT INTO, CREATE TABLE AS",
          "[sql][lineage]") {
  Lineage l = trace("COPY (SELECT ssn || '' AS s FROM people) TO STDOUT");
  check_column(l, 0, "s", {"people.ssn"}, kDerived);
  l = trace("COPY people (email, ssn) TO STDOUT WITH (FORMAT csv)");
  REQUIRE(l.columns.size() == 2);
  check_column(l, 0, "email", {"people.email"}, kCopy);
  check_column(l, 1, "ssn", {"people.ssn"}, kCopy);
  l = trace("COPY hr.salaries TO STDOUT");
  REQUIRE(l.columns.size() == 3);
  check_column(l, 2, "salary", {"hr.salaries.salary"}, kCopy);
  check_untraced("COPY people (nope) TO STDOUT", "nope");
  l = trace("COPY people TO '/tmp/out.csv'");
  REQUIRE(l.traced);
  CHECK(l.columns.empty());
  CHECK(keys(l.stored_columns).size() == 5);
  l = trace("COPY people FROM STDIN");
  REQUIRE(l.traced);
  CHECK(l.columns.empty());

  l = trace("DECLARE c CURSOR WITH HOLD FOR SELECT ssn AS x FROM people");
  check_column(l, 0, "x", {"people.ssn"}, kCopy);
  check_untraced("FETCH 10 FROM c", "DECLARE");
  l = trace("MOVE 10 IN c");
  REQUIRE(l.traced);

  l = trace("EXPLAIN ANALYZE SELECT ssn FROM people WHERE email = 'a'");
  REQUIRE(l.columns.size() == 1);
  check_column(l, 0, "QUERY PLAN", {}, kCopy);
  CHECK(keys(l.predicate_columns) == sorted({"people.email"}));
  check_untraced("EXPLAIN SELECT * FROM nowhere", "nowhere");

  l = trace("SELECT ssn, name INTO TEMP copy_of FROM people");
  REQUIRE(l.traced);
  CHECK(l.columns.empty());
  CHECK(keys(l.stored_columns) == sorted({"people.ssn", "people.name"}));
  l = trace("SELECT ssn INTO t3 FROM people UNION SELECT card FROM accounts");
  REQUIRE(l.traced);
  CHECK(l.columns.empty());
  CHECK(keys(l.stored_columns) == sorted({"people.ssn", "accounts.card"}));
  l = trace("CREATE TABLE t2 AS SELECT * FROM accounts");
  REQUIRE(l.traced);
  CHECK(l.columns.empty());
  CHECK(keys(l.stored_columns) == sorted({"accounts.id", "accounts.person_id", "accounts.card"}));
  l = trace("CREATE MATERIALIZED VIEW mv AS SELECT card FROM accounts");
  CHECK(keys(l.stored_columns) == sorted({"accounts.card"}));
}

TEST_CASE("lineage: statements without rows, and what is not followed", "[sql][lineage]") {
  for (const char* sql : {"CREATE TABLE x (a int)", "SET search_path = hr", "BEGIN", "COMMIT",
                          "INSERT INTO orders (id) VALUES (1)", "PREPARE q AS SELECT 1",
                          "-- nothing", "DROP VIEW people_v", "TRUNCATE people"}) {
    INFO(sql);
    const Lineage l = trace(sql);
    CHECK(l.traced);
    CHECK(l.columns.empty());
  }
  Lineage l = trace("SHOW search_path");
  check_column(l, 0, "search_path", {}, kCopy);
  l = trace("SELECT 1, 'a' AS b, $1, current_user");
  check_column(l, 0, "?column?", {}, kCopy);
  check_column(l, 1, "b", {}, kCopy);
  check_column(l, 2, "?column?", {}, kCopy);
  check_column(l, 3, "current_user", {}, kCopy);

  check_untraced("SELECT * FROM nowhere", "relation nowhere is not in the catalog");
  check_untraced("SELECT salary FROM salaries", "salaries");  // hr is not on the search_path
  check_untraced("SELECT nope FROM people", "\"nope\" not found");
  check_untraced("SELEC 1", "does not parse");
  check_untraced("SELECT 1; SELECT 2", "2 statements");
  check_untraced("EXECUTE q(1)", "PREPARE");
  check_untraced("CALL p()", "procedure");
  check_untraced("DO $$ BEGIN RAISE NOTICE 'x'; END $$", "DO block");
  // Functions that read data their arguments do not name.
  check_untraced("SELECT query_to_xml('SELECT ssn FROM people', true, false, '')", "query_to_xml");
  check_untraced("SELECT pg_catalog.table_to_xml('people', true, false, '')", "table_to_xml");
  check_untraced("SELECT * FROM ts_stat('SELECT to_tsvector(ssn) FROM people')", "ts_stat");
  check_untraced("SELECT leak(id) FROM people", "leak");
  check_untraced("SELECT id FROM people WHERE app.check_ssn(id)", "app.check_ssn");
  CHECK(trace("SELECT public.table_to_xml(1)").traced);  // not the built-in
  check_untraced("SELECT * FROM xmltable('/a' PASSING '<a/>' COLUMNS x int)", "RangeTableFunc");
  // Long operator chains are followed; deeper ones are refused, not a stack overflow.
  auto chain = [](int n) {
    std::string sql = "SELECT ssn";
    for (int i = 0; i < n; ++i) sql += " || 'x'";
    return sql + " FROM people";
  };
  l = trace(chain(1000));
  check_column(l, 0, "?column?", {"people.ssn"}, kDerived);
  check_untraced(chain(5000), "nested deeper");
}

TEST_CASE("lineage: a view is looked up once per statement", "[sql][lineage]") {
  dbw_test::FixedCatalog catalog;
  const Lineage l =
      trace_pg_lineage("SELECT a.ssn, b.ssn FROM people_v a, people_v b, people_v c", catalog);
  REQUIRE(l.traced);
  CHECK(l.columns.size() == 2);
  // Three references and one inner `people`: the expansion is reused.
  CHECK(catalog.lookups == 4);
}

TEST_CASE("lineage: pg_named_objects lists every relation and function a statement names",
          "[sql][lineage]") {
  using dbwarden::sql::pg_named_objects;
  using dbwarden::sql::QualifiedName;
  const auto n = pg_named_objects(
      "WITH c AS (SELECT upper(a) FROM s.t1) INSERT INTO t2 SELECT count(*) FROM c, "
      "(SELECT pg_catalog.lower(x) FROM t3 WHERE EXISTS (SELECT 1 FROM t1)) q "
      "RETURNING (SELECT max(y) FROM other.t4)");
  REQUIRE(n.parsed);
  CHECK_FALSE(n.runs_elsewhere);
  const auto has = [](const std::vector<QualifiedName>& v, QualifiedName q) {
    return std::find(v.begin(), v.end(), q) != v.end();
  };
  CHECK(has(n.relations, {"s", "t1"}));
  CHECK(has(n.relations, {"", "t1"}));
  CHECK(has(n.relations, {"", "t2"}));  // the INSERT's target, a bare RangeVar
  CHECK(has(n.relations, {"", "t3"}));
  CHECK(has(n.relations, {"other", "t4"}));
  CHECK(has(n.relations, {"", "c"}));  // a CTE's name counts too: over-counting is safe
  CHECK(has(n.functions, {"", "upper"}));
  CHECK(has(n.functions, {"", "count"}));
  CHECK(has(n.functions, {"pg_catalog", "lower"}));
  CHECK(has(n.functions, {"", "max"}));
  for (const char* sql :
       {"FETCH ALL FROM c", "EXECUTE p(1)", "CALL p()", "DO $$ BEGIN END $$",
        "SELECT query_to_xml('select 1', true, true, '')",
        "SELECT * FROM pg_catalog.pg_read_file('/etc/passwd')", "EXPLAIN ANALYZE EXECUTE p"}) {
    INFO(sql);
    const auto e = pg_named_objects(sql);
    CHECK(e.parsed);
    CHECK(e.runs_elsewhere);
  }
  CHECK_FALSE(pg_named_objects("SELECT FROM WHERE").parsed);
  CHECK_FALSE(pg_named_objects("SELECT 1; SELECT 2").parsed);
  CHECK(pg_named_objects("").parsed);
}
