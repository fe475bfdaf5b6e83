// SPDX-License-Identifier: Apache-2.0
//
// SQL-level PREPARE / EXECUTE / DEALLOCATE read for the judge: names as the server keys
// them, MySQL's literal as the server unescapes it, PostgreSQL's statement after AS.
#include "policy/sql_prepare.h"

#include <catch2/catch.hpp>
#include <string>

namespace {

using dbwarden::policy::may_be_sql_prepare;
using dbwarden::policy::read_sql_prepare;
using dbwarden::policy::SqlPrepare;
using dbwarden::policy::SqlPrepareKind;
using dbwarden::sql::Dialect;

constexpr Dialect kPg = Dialect::kPostgresql;
constexpr Dialect kMy = Dialect::kMysql;

SqlPrepare my(std::string_view text, bool backslash_escapes = true) {
  return read_sql_prepare(kMy, text, backslash_escapes);
}
SqlPrepare pg(std::string_view text) { return read_sql_prepare(kPg, text, false); }

}  // namespace

TEST_CASE("sql prepare: MySQL PREPARE FROM a literal, unescaped", "[policy][sqlprepare]") {
  SqlPrepare p = my("PREPARE s FROM 'DELETE FROM t WHERE id < 100'");
  CHECK(p.kind == SqlPrepareKind::kPrepare);
  CHECK(p.name == "s");
  CHECK(p.text_known);
  CHECK(p.text == "DELETE FROM t WHERE id < 100");
  // Names are case-insensitive; backquoted ones too.
  CHECK(my("prepare S1 from 'SELECT 1'").name == "s1");
  CHECK(my("PREPARE `My``S` FROM 'SELECT 1'").name == "my`s");
  // Doubled quotes, backslash escapes (as the session's sql_mode says), "..." strings and
  // adjacent literals.
  CHECK(my("PREPARE s FROM 'DELETE FROM t WHERE n = ''x'''").text == "DELETE FROM t WHERE n = 'x'");
  CHECK(my(R"(PREPARE s FROM 'DELETE FROM t WHERE n = \'x\' AND m = "\n"')").text ==
        "DELETE FROM t WHERE n = 'x' AND m = \"\n\"");
  CHECK(my(R"(PREPARE s FROM 'DELETE FROM t WHERE n LIKE ''a\_%''')").text ==
        R"(DELETE FROM t WHERE n LIKE 'a\_%')");
  CHECK(my(R"(PREPARE s FROM 'SELECT ''\n''')", /*backslash_escapes=*/false).text ==
        R"(SELECT '\n')");
  CHECK(my(R"(PREPARE s FROM "DELETE FROM t")").text == "DELETE FROM t");
  CHECK(my("PREPARE s FROM 'DELETE ' 'FROM t';").text == "DELETE FROM t");
  CHECK(my("/* c */ PREPARE s FROM 'DELETE FROM t'").text == "DELETE FROM t");
}

TEST_CASE("sql prepare: MySQL text the proxy cannot read is marked unknown",
          "[policy][sqlprepare]") {
  for (std::string_view text : {"PREPARE s FROM @q", "PREPARE s FROM CONCAT('DEL', 'ETE')",
                                "PREPARE s FROM _utf8mb4'DELETE FROM t'",
                                "PREPARE s FROM X'44454c455445'", "PREPARE s FROM 'DELETE' @q"}) {
    INFO(text);
    const SqlPrepare p = my(text);
    CHECK(p.kind == SqlPrepareKind::kPrepare);
    CHECK(p.name == "s");
    CHECK_FALSE(p.text_known);
    CHECK(p.text.empty());
  }
  CHECK(my("PREPARE s").kind == SqlPrepareKind::kNone);
  CHECK(my("PREPARE s AS DELETE FROM t").kind == SqlPrepareKind::kNone);  // not MySQL's
}

TEST_CASE("sql prepare: MySQL EXECUTE and DEALLOCATE", "[policy][sqlprepare]") {
  SqlPrepare e = my("EXECUTE S");
  CHECK(e.kind == SqlPrepareKind::kExecute);
  CHECK(e.name == "s");
  CHECK(my("EXECUTE s USING @a, @b").kind == SqlPrepareKind::kExecute);
  CHECK(my("EXECUTE s (1)").kind == SqlPrepareKind::kNone);
  SqlPrepare i = my("EXECUTE IMMEDIATE 'DELETE FROM t WHERE id = ?' USING 5");
  CHECK(i.kind == SqlPrepareKind::kExecuteImmediate);
  CHECK(i.text_known);
  CHECK(i.text == "DELETE FROM t WHERE id = ?");
  CHECK(my("EXECUTE IMMEDIATE @q").kind == SqlPrepareKind::kExecuteImmediate);
  CHECK_FALSE(my("EXECUTE IMMEDIATE @q").text_known);
  CHECK(my("DEALLOCATE PREPARE s").kind == SqlPrepareKind::kDeallocate);
  CHECK(my("DROP PREPARE S").name == "s");
  CHECK(my("DROP PREPARE s").kind == SqlPrepareKind::kDeallocate);
  CHECK(my("DROP TABLE s").kind == SqlPrepareKind::kNone);
  CHECK(my("DEALLOCATE s").kind == SqlPrepareKind::kNone);
  CHECK(my("DEALLOCATE PREPARE ALL").kind == SqlPrepareKind::kDeallocate);  // a name in MySQL
}

TEST_CASE("sql prepare: PostgreSQL PREPARE AS, EXECUTE, DEALLOCATE", "[policy][sqlprepare]") {
  SqlPrepare p = pg("PREPARE Del (int) AS DELETE FROM t WHERE id < $1");
  CHECK(p.kind == SqlPrepareKind::kPrepare);
  CHECK(p.name == "del");
  CHECK(p.text_known);
  CHECK(p.text == "DELETE FROM t WHERE id < $1");
  CHECK(pg("PREPARE \"Del\"\"x\" AS DELETE FROM t;").name == "Del\"x");
  CHECK(pg("PREPARE \"Del\"\"x\" AS DELETE FROM t;").text == "DELETE FROM t");
  CHECK(pg("PREPARE d(int, text) AS UPDATE t SET a = $2 WHERE id = $1").text ==
        "UPDATE t SET a = $2 WHERE id = $1");
  CHECK(pg("PREPARE TRANSACTION 'x'").kind == SqlPrepareKind::kNone);
  CHECK(pg("PREPARE d").kind == SqlPrepareKind::kNone);

  CHECK(pg("EXECUTE Del(1)").kind == SqlPrepareKind::kExecute);
  CHECK(pg("EXECUTE Del(1)").name == "del");
  CHECK(pg("EXECUTE del").kind == SqlPrepareKind::kExecute);
  CHECK(pg("EXECUTE del USING 1").kind == SqlPrepareKind::kNone);
  // CREATE TABLE ... AS EXECUTE runs it too.
  CHECK(pg("CREATE TEMP TABLE x (a) AS EXECUTE Sel(1) WITH NO DATA").kind ==
        SqlPrepareKind::kExecute);
  CHECK(pg("CREATE TABLE x AS EXECUTE sel").name == "sel");
  CHECK(pg("CREATE TABLE x AS SELECT 1").kind == SqlPrepareKind::kNone);
  CHECK(pg("CREATE TABLE x AS SELECT 1").name.empty());
  CHECK(pg("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql").kind ==
        SqlPrepareKind::kNone);

  CHECK(pg("DEALLOCATE del").kind == SqlPrepareKind::kDeallocate);
  CHECK(pg("DEALLOCATE PREPARE \"Del\"").name == "Del");
  CHECK(pg("DEALLOCATE ALL").kind == SqlPrepareKind::kDeallocateAll);
  CHECK(pg("DEALLOCATE PREPARE ALL").kind == SqlPrepareKind::kDeallocateAll);
  CHECK(pg("DISCARD ALL").kind == SqlPrepareKind::kDeallocateAll);
  CHECK(pg("DISCARD PLANS").kind == SqlPrepareKind::kNone);
  CHECK(pg("DROP TABLE t").kind == SqlPrepareKind::kNone);
}

TEST_CASE("sql prepare: the operation pre-check", "[policy][sqlprepare]") {
  for (std::string_view op :
       {"PREPARE", "EXECUTE", "DEALLOCATE", "DROP", "DROP TABLE", "DISCARD", "CREATE"}) {
    CHECK(may_be_sql_prepare(op));
  }
  for (std::string_view op : {"", "SELECT", "DELETE", "EXPLAIN"}) {
    CHECK_FALSE(may_be_sql_prepare(op));
  }
}
