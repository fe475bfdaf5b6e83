// SPDX-License-Identifier: Apache-2.0
#include "sql/operation.h"

#include <catch2/catch.hpp>

using dbwarden::sql::operation_name;

TEST_CASE("operation_name: first keyword, upper-cased", "[sql][operation]") {
  CHECK(operation_name("SELECT 1") == "SELECT");
  CHECK(operation_name("select 1") == "SELECT");
  CHECK(operation_name("InSeRt INTO t VALUES (1)") == "INSERT");
  CHECK(operation_name("update t set a = 1") == "UPDATE");
  CHECK(operation_name("DELETE FROM t") == "DELETE");
  CHECK(operation_name("CREATE TABLE t (a int)") == "CREATE");
  CHECK(operation_name("begin") == "BEGIN");
  CHECK(operation_name("COMMIT;") == "COMMIT");
  CHECK(operation_name("SET search_path = x") == "SET");
  CHECK(operation_name("VALUES (1), (2)") == "VALUES");
  CHECK(operation_name("TABLE t") == "TABLE");
  CHECK(operation_name("SHOW work_mem") == "SHOW");
  CHECK(operation_name("EXPLAIN ANALYZE SELECT 1") == "EXPLAIN");
  CHECK(operation_name("SELECT") == "SELECT");
  CHECK(operation_name("select*from t") == "SELECT");
}

TEST_CASE("operation_name: leading noise", "[sql][operation]") {
  CHECK(operation_name("   \n\tSELECT 1") == "SELECT");
  CHECK(operation_name("-- hi\nSELECT 1") == "SELECT");
  CHECK(operation_name("/* a /* nested */ still comment */ DELETE FROM t") == "DELETE");
  CHECK(operation_name("/* a /* nested */ SELECT */ INSERT INTO t") == "INSERT");
  CHECK(operation_name("((SELECT 1)) UNION (SELECT 2)") == "SELECT");
  CHECK(operation_name("( /* c */ ( select 1))") == "SELECT");
}

TEST_CASE("operation_name: nothing to classify", "[sql][operation]") {
  CHECK(operation_name("") == "");
  CHECK(operation_name("   ") == "");
  CHECK(operation_name("-- only a comment") == "");
  CHECK(operation_name("/* unterminated SELECT") == "");
  CHECK(operation_name(";") == "");
  CHECK(operation_name("'SELECT'") == "");
  CHECK(operation_name("\"SELECT\"") == "");
  CHECK(operation_name("$$SELECT$$") == "");
  CHECK(operation_name("42") == "");
  CHECK(operation_name("\\dt") == "");
  CHECK(operation_name("sel_ect") == "");
  CHECK(operation_name("\xc3\xa9lect") == "");
  CHECK(operation_name(std::string(33, 'a')) == "");
  CHECK(operation_name(std::string(32, 'a')) == std::string(32, 'A'));
  CHECK(operation_name("(((") == "");
}

TEST_CASE("operation_name: WITH finds the main statement", "[sql][operation]") {
  CHECK(operation_name("WITH x AS (SELECT 1) SELECT * FROM x") == "SELECT");
  CHECK(operation_name("with x as (select 1) insert into t select * from x") == "INSERT");
  CHECK(operation_name("WITH d AS (DELETE FROM t RETURNING *) INSERT INTO log SELECT * FROM d") ==
        "INSERT");
  CHECK(operation_name("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) "
                       "SELECT * FROM r") == "SELECT");
  CHECK(operation_name("WITH a AS (SELECT 1), b AS MATERIALIZED (SELECT 2) "
                       "UPDATE t SET x = (SELECT 1 FROM a)") == "UPDATE");
  CHECK(operation_name("WITH a AS NOT MATERIALIZED (SELECT 1) DELETE FROM t") == "DELETE");
  CHECK(operation_name("WITH s AS (SELECT 1) MERGE INTO t USING s ON true "
                       "WHEN MATCHED THEN DELETE") == "MERGE");
  CHECK(operation_name("WITH x AS (SELECT 1) VALUES (1)") == "VALUES");
  // CTE names that are unreserved keywords.
  CHECK(operation_name("WITH update AS (SELECT 1) SELECT * FROM update") == "SELECT");
  CHECK(operation_name("WITH a AS (SELECT 1), delete AS (SELECT 2) INSERT INTO t VALUES (1)") ==
        "INSERT");
  // Quoted names, strings and comments that look like verbs.
  CHECK(operation_name("WITH \"select\" AS (SELECT ')') /* SELECT */ DELETE FROM t") == "DELETE");
  CHECK(operation_name("WITH x AS ($$ ) SELECT $$) UPDATE t SET a = 1") == "UPDATE");
  CHECK(operation_name("(WITH x AS (SELECT 1) SELECT 2)") == "SELECT");
  // Truncated: no main statement.
  CHECK(operation_name("WITH x AS (SELECT 1") == "WITH");
  CHECK(operation_name("WITH") == "WITH");
  CHECK(operation_name("WITH x AS (SELECT 1); SELECT 2") == "WITH");
}
