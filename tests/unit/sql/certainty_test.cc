// SPDX-License-Identifier: Apache-2.0
//
// sql/certainty.h promises that whenever it lets PostgreSQL text skip
// libpg_query, the token classifier's answer is the grammar's answer. Checked
// here on every classification golden and on a corpus of everyday statements
// (pgbench's, ORM-shaped, psql's), plus statements the gate must refuse.
#include "sql/certainty.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "sql/classify.h"
#include "sql/normalize.h"
#include "sql/pg_parse.h"

namespace {

using dbwarden::sql::Analysis;
using dbwarden::sql::Dialect;
using dbwarden::sql::Token;

struct Verdict {
  bool certain = false;
  Analysis tokens;
};

Verdict judge(const std::string& sql) {
  Verdict v;
  std::vector<Token> tokens;
  v.tokens.unterminated = dbwarden::sql::tokenize(Dialect::kPostgresql, {}, sql, tokens);
  dbwarden::sql::classify_tokens(Dialect::kPostgresql, sql, tokens, v.tokens);
  v.certain = dbwarden::sql::token_classification_certain(sql, tokens, v.tokens);
  return v;
}

// When certain, the grammar must parse the text and agree on every table (main
// table first) and on the WHERE question.
void check_agrees(const std::string& sql) {
  INFO("sql: " << sql);
  const Verdict v = judge(sql);
  if (!v.certain) return;
  dbwarden::sql::ParsedStatement parsed;
  REQUIRE(dbwarden::sql::pg_parse(sql, parsed));
  CHECK(v.tokens.unbounded_write == parsed.unbounded_write);
  CHECK(std::set<std::string>(v.tokens.collections.begin(), v.tokens.collections.end()) ==
        std::set<std::string>(parsed.collections.begin(), parsed.collections.end()));
  if (!parsed.collections.empty() && !v.tokens.collections.empty()) {
    CHECK(v.tokens.collections.front() == parsed.collections.front());
  }
}

std::vector<std::string> golden_statements() {
  std::ifstream in(std::string(DBW_TEST_DATA_DIR) + "/sql/classify_postgresql.golden");
  REQUIRE(in);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("sql: ", 0) == 0) out.push_back(line.substr(5));
  }
  return out;
}

// Statements applications send all day: the gate should take them all.
const std::vector<std::string> kEveryday = {
    "SELECT abalance FROM pgbench_accounts WHERE aid = 48213",
    "UPDATE pgbench_accounts SET abalance = abalance + -2435 WHERE aid = 9142",
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 9142, -2435, "
    "CURRENT_TIMESTAMP)",
    "SELECT \"users\".\"id\", \"users\".\"email\" FROM \"users\" WHERE \"users\".\"id\" = $1 "
    "LIMIT $2",
    "SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1 "
    "ORDER BY o.created_at DESC LIMIT 10",
    "SELECT a.x FROM app.accounts AS a LEFT OUTER JOIN app.owners w ON w.id = a.owner_id",
    "SELECT count(*) FROM orders WHERE status = 'open' AND created_at > now() - interval '1 day'",
    "SELECT lower(name), coalesce(note, '') FROM customers WHERE id IN (1, 2, 3)",
    "INSERT INTO events (kind, payload) VALUES ('login', '{\"a\": 1}'::jsonb) RETURNING id",
    "INSERT INTO t VALUES (1, 'x'), (2, 'y')",
    "UPDATE accounts SET balance = balance - 10, updated_at = now() WHERE id = 7",
    "UPDATE accounts SET flag = true",
    "DELETE FROM sessions WHERE expires_at < now()",
    "DELETE FROM sessions",
    "DELETE FROM s.t USING s.u WHERE t.id = u.id",
    "UPDATE t SET x = o.x FROM other o WHERE o.id = t.id",
    "INSERT INTO archive.t SELECT * FROM u WHERE u.done",
    "SELECT * FROM t ORDER BY a DESC, b ASC",
    "SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED",
    "SELECT * FROM t WHERE id = 1 FOR NO KEY UPDATE NOWAIT",
    "SELECT * FROM t FOR SHARE",
    "UPDATE t SET x = NULL WHERE y IS NOT NULL",
    "SELECT 1",
    "SELECT now()",
    "SELECT * FROM t1, t2 WHERE t1.a = t2.a",
    "select * from Mixed_Case where X = 1;",
    "BEGIN",
    "BEGIN ISOLATION LEVEL SERIALIZABLE",
    "COMMIT",
    "ROLLBACK",
    "SET search_path TO public, app",
    "SET application_name = 'x'",
    "SHOW server_version",
    "SAVEPOINT s1",
    "RELEASE SAVEPOINT s1",
    "LISTEN channel",
    "DISCARD ALL",
};

// Shapes the token classifier may read differently: the grammar decides.
const std::vector<std::string> kRefused = {
    "WITH r AS (SELECT 1) SELECT * FROM r",
    "SELECT * FROM (SELECT id FROM t) s",
    "SELECT (SELECT max(x) FROM side) FROM main_t",
    "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
    "SELECT * FROM generate_series(1, 10) g",
    "SELECT * FROM a JOIN b USING (id)",
    "SELECT * FROM a UNION SELECT * FROM b",
    "SELECT * FROM ONLY parent",
    "SELECT * FROM t FOR UPDATE OF t",
    "UPDATE t SET x = 1 WHERE CURRENT OF c",
    "SELECT * INTO newtable FROM t",
    "SELECT * FROM a, LATERAL (SELECT 1) x",
    "INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 1",
    "UPDATE t SET x = 1 WHERE",
    "UPDATE t SET x = 1 WHERE id =",
    "SELECT * FROM t WHERE a = 1 AND",
    "DELETE FROM t WHERE x IN",
    "SELECT * FROM t WHERE x = 'cut",
    "SELECT 1; SELECT 2",
    "CREATE TABLE t (id int)",
    "COPY t FROM STDIN",
    "EXPLAIN SELECT * FROM t",
    "\\dt",
};

}  // namespace

TEST_CASE("certainty: every golden the gate takes, the grammar agrees with", "[sql][certainty]") {
  const auto statements = golden_statements();
  REQUIRE(statements.size() > 10);
  for (const std::string& sql : statements) check_agrees(sql);
}

TEST_CASE("certainty: everyday statements skip the grammar and agree with it",
          "[sql][certainty]") {
  for (const std::string& sql : kEveryday) {
    INFO("sql: " << sql);
    CHECK(judge(sql).certain);
    check_agrees(sql);
  }
}

TEST_CASE("certainty: complex or malformed shapes go to the grammar", "[sql][certainty]") {
  for (const std::string& sql : kRefused) {
    INFO("sql: " << sql);
    CHECK_FALSE(judge(sql).certain);
  }
}
