// SPDX-License-Identifier: Apache-2.0
//
// What a masked MySQL statement's text says (proxy/mysql_statement_scan.h): names in
// conditions, sorts and groupings, CTE names, INTO OUTFILE, EXECUTE / CALL / user variables.
#include "proxy/mysql_statement_scan.h"

#include <catch2/catch.hpp>

using dbwarden::proxy::IsMysqlDdl;
using dbwarden::proxy::MysqlStatementScan;
using dbwarden::proxy::ScanMysqlStatement;

namespace {

MysqlStatementScan Scan(std::string_view sql) {
  MysqlStatementScan s;
  ScanMysqlStatement(sql, true, s);
  return s;
}

bool Has(const std::vector<std::string>& v, std::string_view name) {
  return std::find(v.begin(), v.end(), name) != v.end();
}

}  // namespace

TEST_CASE(
    "mysql statement scan: names in WHERE, ON, ORDER BY, GROUP BY, HAVING count, the "
    "select list and a derived table's do not",
    "[proxy][mysql][masking]") {
  CHECK(Has(Scan("SELECT id FROM c WHERE ssn LIKE '123%'").predicate_names, "ssn"));
  CHECK(Has(Scan("SELECT id FROM c WHERE c.`SSN` = 1").predicate_names, "ssn"));
  CHECK(Has(Scan("SELECT id FROM c ORDER BY card").predicate_names, "card"));
  CHECK(Has(Scan("SELECT count(*) FROM c GROUP BY born HAVING 1").predicate_names, "born"));
  CHECK(Has(Scan("SELECT 1 FROM a JOIN c ON c.ssn = a.x").predicate_names, "ssn"));
  CHECK(Has(Scan("SELECT 1 FROM a JOIN c USING (ssn)").predicate_names, "ssn"));
  // A sub-query inside a condition infers as much as the condition.
  CHECK(Has(Scan("SELECT 1 FROM a WHERE '1' IN (SELECT ssn FROM c)").predicate_names, "ssn"));
  const auto plain = Scan("SELECT ssn, card FROM (SELECT ssn, card FROM c) d LIMIT 5");
  CHECK_FALSE(Has(plain.predicate_names, "ssn"));
  CHECK_FALSE(Has(plain.predicate_names, "card"));
  // The condition ends with its own clause: the next SELECT of a UNION is a select list.
  const auto u = Scan("SELECT a FROM t WHERE b = 1 UNION SELECT ssn FROM c");
  CHECK(Has(u.predicate_names, "b"));
  CHECK_FALSE(Has(u.predicate_names, "ssn"));
  // Names in strings and comments are not names.
  CHECK_FALSE(Has(Scan("SELECT 1 FROM c WHERE x = 'ssn' /* ssn */").predicate_names, "ssn"));
}

TEST_CASE(
    "mysql statement scan: CTE names, INTO OUTFILE, statements that read what they do "
    "not name, DDL",
    "[proxy][mysql][masking]") {
  const auto w = Scan("WITH RECURSIVE w (a) AS (SELECT 1), `V2` AS (SELECT 2) SELECT * FROM w");
  CHECK(w.cte_names == std::vector<std::string>{"w", "v2"});
  CHECK(Scan("SELECT ssn FROM c INTO OUTFILE '/tmp/x'").into_file);
  CHECK(Scan("SELECT ssn INTO DUMPFILE '/tmp/x' FROM c").into_file);
  CHECK_FALSE(Scan("SELECT 'INTO OUTFILE' FROM c").into_file);
  CHECK(Scan("EXECUTE s").runs_other);
  CHECK(Scan("call p()").runs_other);
  CHECK(Scan("SELECT @v").user_variables);
  CHECK_FALSE(Scan("SELECT @@version").user_variables);
  CHECK(IsMysqlDdl("/* x */ create view v as select 1", true));
  CHECK(IsMysqlDdl("DROP TABLE t", true));
  CHECK_FALSE(IsMysqlDdl("SELECT 1", true));
}

TEST_CASE("mysql scan: KILL statements that name a thread (a client's cancel)", "[proxy][mysql]") {
  using dbwarden::proxy::MysqlKill;
  using dbwarden::proxy::ParseMysqlKill;
  MysqlKill k;
  REQUIRE(ParseMysqlKill("KILL QUERY 42", true, &k));
  CHECK(k.thread_id == 42);
  CHECK_FALSE(k.connection);
  REQUIRE(ParseMysqlKill("kill 7;", true, &k));
  CHECK(k.thread_id == 7);
  CHECK(k.connection);
  REQUIRE(ParseMysqlKill("KILL HARD CONNECTION 9", true, &k));
  CHECK((k.thread_id == 9 && k.connection));
  REQUIRE(ParseMysqlKill("/* c */ KILL SOFT QUERY\n 4294967295 ; ", true, &k));
  CHECK((k.thread_id == 4294967295u && !k.connection));
  for (const char* no : {"KILL QUERY ID 42", "KILL USER app", "KILL 42; SELECT 1", "KILL",
                         "KILL QUERY", "KILL 4294967296", "KILL 1.5", "KILL 0x2a",
                         "SELECT 'KILL 42'", "KILL CONNECTION QUERY 3", "KILL -1"}) {
    CAPTURE(no);
    CHECK_FALSE(ParseMysqlKill(no, true, &k));
  }
}
