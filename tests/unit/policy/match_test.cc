// SPDX-License-Identifier: Apache-2.0
//
// Policy::decide: every match key, every action, first match wins,
// on_unparsed and the block response defaults.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "policy/policy.h"
#include "sql/analyzer.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::policy::Action;
using dbwarden::policy::Decision;
using dbwarden::policy::Policy;
using dbwarden::sql::Dialect;

std::shared_ptr<const Policy> load(const std::string& yaml) {
  auto p = Policy::load_string(yaml, "test.yaml");
  if (!p.ok()) FAIL(p.status().message());
  return p.value();
}

// A policy of one rule `r` with the given match (flow mapping) and action.
std::shared_ptr<const Policy> one_rule(const std::string& match,
                                       const std::string& action = "block") {
  return load("rules:\n  - name: r\n    match: " + match + "\n    action: " + action + "\n");
}

ConnectionInfo remote(const std::string& user = "app", const std::string& db = "shop") {
  ConnectionInfo c;
  c.db_system = "postgresql";
  c.user = user;
  c.database = db;
  c.client_address = "10.1.2.3";
  c.client_port = 40000;
  return c;
}

ConnectionInfo local_peer() {
  ConnectionInfo c = remote();
  c.client_address.clear();
  c.unix_socket = true;
  c.peer.pid = 4242;
  c.peer.uid = 1000;
  c.peer.login_uid = 1001;
  c.peer.executable = "/usr/bin/psql";
  c.peer.systemd_unit = "cron-backup.service";
  c.peer.container_id = "3f2a9c0d11e7";
  return c;
}

Decision decide(const Policy& p, const ConnectionInfo& who, const std::string& sql,
                Dialect dialect = Dialect::kPostgresql) {
  dbwarden::sql::Analyzer analyzer;
  return p.decide(who, analyzer.analyze(dialect, sql), sql);
}

bool matches(const Policy& p, const ConnectionInfo& who, const std::string& sql,
             Dialect dialect = Dialect::kPostgresql) {
  return decide(p, who, sql, dialect).rule == "r";
}

}  // namespace

TEST_CASE("policy match: identity strings are exact and case-sensitive", "[policy][match]") {
  auto p = one_rule("{user: [app, admin]}");
  CHECK(matches(*p, remote("app"), "SELECT 1"));
  CHECK(matches(*p, remote("admin"), "SELECT 1"));
  CHECK_FALSE(matches(*p, remote("App"), "SELECT 1"));
  CHECK_FALSE(matches(*p, remote("app2"), "SELECT 1"));
  CHECK_FALSE(matches(*p, remote(""), "SELECT 1"));  // startup not seen yet

  auto db = one_rule("{database: shop}");
  CHECK(matches(*db, remote("x", "shop"), "SELECT 1"));
  CHECK_FALSE(matches(*db, remote("x", "shop2"), "SELECT 1"));

  auto app = one_rule("{application_name: psql}");
  ConnectionInfo who = remote();
  CHECK_FALSE(matches(*app, who, "SELECT 1"));
  who.application_name = "psql";
  CHECK(matches(*app, who, "SELECT 1"));
}

TEST_CASE("policy match: client_cidr, IPv4, IPv6, mapped, unix", "[policy][match]") {
  auto p = one_rule("{client_cidr: [10.0.0.0/8, '2001:db8::/32', 192.168.1.7]}");
  ConnectionInfo who = remote();
  for (const char* in : {"10.1.2.3", "10.255.255.255", "2001:db8::1", "2001:db8:ffff::9",
                         "192.168.1.7", "::ffff:10.0.0.1"}) {
    INFO(in);
    who.client_address = in;
    CHECK(matches(*p, who, "SELECT 1"));
  }
  for (const char* out : {"11.0.0.1", "2001:db9::1", "192.168.1.8", "::1", "garbage", ""}) {
    INFO(out);
    who.client_address = out;
    CHECK_FALSE(matches(*p, who, "SELECT 1"));
  }
  auto any = one_rule("{client_cidr: [0.0.0.0/0, '::/0']}");
  CHECK(matches(*any, remote(), "SELECT 1"));
  CHECK_FALSE(matches(*any, local_peer(), "SELECT 1"));  // a unix socket has no address
  auto odd = one_rule("{client_cidr: 10.128.0.0/9}");
  who.client_address = "10.200.0.1";
  CHECK(matches(*odd, who, "SELECT 1"));
  who.client_address = "10.127.0.1";
  CHECK_FALSE(matches(*odd, who, "SELECT 1"));
}

TEST_CASE("policy match: local peer uid, login_uid, executable, unit, container",
          "[policy][match]") {
  const ConnectionInfo who = local_peer();
  CHECK(matches(*one_rule("{uid: 1000}"), who, "SELECT 1"));
  CHECK_FALSE(matches(*one_rule("{uid: 0}"), who, "SELECT 1"));
  CHECK(matches(*one_rule("{login_uid: [5, 1001]}"), who, "SELECT 1"));
  CHECK_FALSE(matches(*one_rule("{login_uid: 1000}"), who, "SELECT 1"));
  CHECK(matches(*one_rule("{executable: /usr/bin/*}"), who, "SELECT 1"));
  CHECK(matches(*one_rule("{executable: '*/psql'}"), who, "SELECT 1"));
  CHECK_FALSE(matches(*one_rule("{executable: /usr/bin/pg_dump}"), who, "SELECT 1"));
  CHECK(matches(*one_rule("{unit: 'cron-*.service'}"), who, "SELECT 1"));
  CHECK_FALSE(matches(*one_rule("{unit: 'Cron-*.service'}"), who, "SELECT 1"));
  CHECK(matches(*one_rule("{container: '3f2a*'}"), who, "SELECT 1"));
  CHECK(matches(*one_rule("{container: 3f2a9c0d11e7}"), who, "SELECT 1"));
  CHECK_FALSE(matches(*one_rule("{container: 'ab*'}"), who, "SELECT 1"));

  // A remote client has no local process: uid 0 must not match its zeroed peer,
  // and "*" globs must not match its empty fields.
  const ConnectionInfo far = remote();
  CHECK_FALSE(matches(*one_rule("{uid: 0}"), far, "SELECT 1"));
  CHECK_FALSE(matches(*one_rule("{executable: '*'}"), far, "SELECT 1"));
  CHECK_FALSE(matches(*one_rule("{unit: '*'}"), far, "SELECT 1"));
  CHECK_FALSE(matches(*one_rule("{container: '*'}"), far, "SELECT 1"));
  ConnectionInfo no_login = who;
  no_login.peer.login_uid.reset();
  CHECK_FALSE(matches(*one_rule("{login_uid: 1001}"), no_login, "SELECT 1"));
  ConnectionInfo host = who;
  host.peer.container_id.clear();
  CHECK_FALSE(matches(*one_rule("{container: '*'}"), host, "SELECT 1"));
}

TEST_CASE("policy match: operation, with and without object type", "[policy][match]") {
  const ConnectionInfo who = remote();
  auto drop = one_rule("{operation: DROP}");
  CHECK(matches(*drop, who, "DROP TABLE t"));
  CHECK(matches(*drop, who, "drop index i"));
  CHECK_FALSE(matches(*drop, who, "SELECT 'DROP'"));
  auto table = one_rule("{operation: ['drop  table', create role]}");
  CHECK(matches(*table, who, "DROP TABLE t"));
  CHECK(matches(*table, who, "CREATE ROLE x"));
  CHECK_FALSE(matches(*table, who, "DROP INDEX i"));
  CHECK_FALSE(matches(*table, who, "CREATE TABLE r (a int)"));
  auto mapping = one_rule("{operation: CREATE USER MAPPING}");
  CHECK(matches(*mapping, who, "CREATE USER MAPPING FOR bob SERVER s"));
  CHECK_FALSE(matches(*mapping, who, "CREATE USER bob"));
}

TEST_CASE("policy match: collections, globs, schema-qualified or not", "[policy][match]") {
  const ConnectionInfo who = remote();
  auto acc = one_rule("{collections: accounts}");
  CHECK(matches(*acc, who, "SELECT * FROM accounts"));
  CHECK(matches(*acc, who, "SELECT * FROM public.accounts"));
  CHECK(matches(*acc, who, "SELECT * FROM o JOIN Accounts a ON a.id = o.a"));
  CHECK_FALSE(matches(*acc, who, "SELECT * FROM accounts_old"));
  CHECK_FALSE(matches(*acc, who, "SELECT 1"));
  auto qualified = one_rule("{collections: 'billing.*'}");
  CHECK(matches(*qualified, who, "UPDATE billing.invoices SET a = 1 WHERE id = 2"));
  CHECK_FALSE(matches(*qualified, who, "UPDATE shop.invoices SET a = 1 WHERE id = 2"));
  // An unqualified name may be in any schema on the search_path.
  CHECK(matches(*qualified, who, "UPDATE invoices SET a = 1 WHERE id = 2"));
  auto glob = one_rule("{collections: ['pay?ent*', 'x[0-9]']}");
  CHECK(matches(*glob, who, "SELECT * FROM payments"));
  CHECK(matches(*glob, who, "SELECT * FROM x7", Dialect::kMysql));
  CHECK_FALSE(matches(*glob, who, "SELECT * FROM xa", Dialect::kMysql));
  auto three = one_rule("{collections: 'shop.public.orders'}");
  CHECK(matches(*three, who, "SELECT * FROM orders"));
  CHECK(matches(*three, who, "SELECT * FROM public.orders"));
  CHECK_FALSE(matches(*three, who, "SELECT * FROM other.orders"));
}

TEST_CASE("policy match: has_where and the statement facts", "[policy][match]") {
  const ConnectionInfo who = remote();
  auto no_where = one_rule("{has_where: false}");
  CHECK(matches(*no_where, who, "DELETE FROM t"));
  CHECK_FALSE(matches(*no_where, who, "DELETE FROM t WHERE a = 1"));
  auto with_where = one_rule("{has_where: true}");
  CHECK(matches(*with_where, who, "UPDATE t SET a = 1 WHERE b = 2"));
  CHECK(matches(*one_rule("{alter_table_drop: true}"), who, "ALTER TABLE t DROP COLUMN c"));
  CHECK_FALSE(matches(*one_rule("{alter_table_drop: true}"), who, "ALTER TABLE t ADD c int"));
  CHECK(matches(*one_rule("{alter_table_drop: false}"), who, "ALTER TABLE t ADD c int"));
  CHECK(matches(*one_rule("{grant_to_public: true}"), who, "GRANT SELECT ON t TO PUBLIC"));
  CHECK_FALSE(matches(*one_rule("{grant_to_public: true}"), who, "GRANT SELECT ON t TO bob"));
  CHECK(matches(*one_rule("{copy_program: true}"), who, "COPY t TO PROGRAM 'cat'"));
  CHECK_FALSE(matches(*one_rule("{copy_program: true}"), who, "COPY t TO STDOUT"));
}

TEST_CASE("policy match: fingerprint, regex, dialect", "[policy][match]") {
  const ConnectionInfo who = remote();
  dbwarden::sql::Analyzer analyzer;
  const std::string fp =
      analyzer.analyze(Dialect::kPostgresql, "SELECT * FROM t WHERE id = 1").fingerprint;
  std::string upper = fp;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto by_fp = one_rule("{fingerprint: " + upper + "}");
  CHECK(matches(*by_fp, who, "SELECT * FROM t WHERE id = 42"));  // literals do not count
  CHECK_FALSE(matches(*by_fp, who, "SELECT * FROM t WHERE id = 1 AND b = 2"));

  // The regex reads the normalised text: keywords upper-case, literals '?'.
  auto re = one_rule("{regex: '^SELECT .* FROM pg_shadow'}");
  CHECK(matches(*re, who, "select usename, passwd from pg_shadow"));
  CHECK_FALSE(matches(*re, who, "SELECT 'from pg_shadow'"));
  auto any = one_rule("{regex: ['pg_authid', 'WHERE id = \\?$']}");
  CHECK(matches(*any, who, "SELECT * FROM t WHERE id = 99"));
  CHECK(matches(*any, who, "SELECT * FROM pg_authid"));
  CHECK_FALSE(matches(*any, who, "SELECT * FROM t WHERE id = b"));

  auto mysql = one_rule("{dialect: mysql}");
  CHECK(matches(*mysql, who, "SELECT 1", Dialect::kMysql));
  CHECK_FALSE(matches(*mysql, who, "SELECT 1", Dialect::kPostgresql));
  auto pg = one_rule("{dialect: [postgresql]}");
  CHECK(matches(*pg, who, "SELECT 1", Dialect::kPostgresql));
}

TEST_CASE("policy match: conditions are AND-ed", "[policy][match]") {
  auto p = one_rule("{user: app, operation: DELETE, has_where: false, collections: orders}");
  CHECK(matches(*p, remote("app"), "DELETE FROM orders"));
  CHECK_FALSE(matches(*p, remote("bob"), "DELETE FROM orders"));
  CHECK_FALSE(matches(*p, remote("app"), "DELETE FROM orders WHERE id = 1"));
  CHECK_FALSE(matches(*p, remote("app"), "DELETE FROM items"));
  CHECK_FALSE(matches(*p, remote("app"), "UPDATE orders SET a = 1"));
  auto all = one_rule("{}");
  CHECK(matches(*all, remote(), "SELECT 1"));
}

TEST_CASE("policy actions: allow, block, log and the block response", "[policy][match]") {
  auto p = load(R"(rules:
  - {name: let-admin, match: {user: admin}, action: allow}
  - {name: watch-salaries, match: {collections: salaries}, action: log}
  - name: custom
    match: {operation: TRUNCATE}
    action: block
    message: "truncate is for migrations"
    sqlstate: P0001
    mysql_errno: 1644
  - {name: plain-block, match: {operation: DROP}, action: block}
)");
  Decision d = decide(*p, remote("admin"), "DROP TABLE t");
  CHECK(d.action == Action::kAllow);
  CHECK(d.rule == "let-admin");
  CHECK(d.message.empty());
  CHECK(d.why.empty());  // decide() leaves why to explain()

  d = decide(*p, remote(), "SELECT * FROM salaries");
  CHECK(d.action == Action::kLog);
  CHECK(d.rule == "watch-salaries");

  d = decide(*p, remote(), "TRUNCATE orders");
  CHECK(d.action == Action::kBlock);
  CHECK(d.rule == "custom");
  CHECK(d.message == "truncate is for migrations");
  CHECK(d.sqlstate == "P0001");
  CHECK(d.mysql_errno == 1644);
  d = decide(*p, remote(), "TRUNCATE orders", Dialect::kMysql);
  CHECK(d.sqlstate == "P0001");  // a rule's sqlstate serves both dialects

  d = decide(*p, remote(), "DROP INDEX i");
  CHECK(d.action == Action::kBlock);
  CHECK(d.message == "dbwarden: statement blocked by policy rule \"plain-block\"");
  CHECK(d.sqlstate == "42501");
  CHECK(d.mysql_errno == 1142);
  d = decide(*p, remote(), "DROP INDEX i ON t", Dialect::kMysql);
  CHECK(d.sqlstate == "42000");
  CHECK(d.mysql_errno == 1142);

  d = decide(*p, remote(), "SELECT 1");
  CHECK(d.action == Action::kAllow);
  CHECK(d.rule.empty());
}

TEST_CASE("policy: first match wins, in file order", "[policy][match]") {
  auto block_first = load(R"(rules:
  - {name: one, match: {operation: DELETE}, action: block}
  - {name: two, match: {user: app}, action: allow}
)");
  auto allow_first = load(R"(rules:
  - {name: two, match: {user: app}, action: allow}
  - {name: one, match: {operation: DELETE}, action: block}
)");
  CHECK(decide(*block_first, remote("app"), "DELETE FROM t").rule == "one");
  CHECK(decide(*allow_first, remote("app"), "DELETE FROM t").rule == "two");
  CHECK(decide(*allow_first, remote("bob"), "DELETE FROM t").rule == "one");
  // An empty list of rules allows everything.
  auto none = load("rules: []\n");
  const Decision d = decide(*none, remote(), "DROP TABLE t");
  CHECK(d.action == Action::kAllow);
  CHECK(d.rule.empty());
}

TEST_CASE("policy: on_unparsed and empty statements", "[policy][match]") {
  auto strict = load("rules: [{name: let-app, match: {user: app}, action: allow}]\n");
  auto lenient = load(
      "on_unparsed: allow\nrules:\n  - {name: bad, match: {regex: '^selec '}, "
      "action: block}\n");
  for (const char* sql : {"SELEC 1", "SELECT 'unterminated", "\"quoted\" first", "42"}) {
    INFO(sql);
    Decision d = decide(*strict, remote("app"), sql);
    CHECK(d.action == Action::kBlock);  // before any rule, even an allow for this user
    CHECK(d.rule == "on_unparsed");
    CHECK(d.sqlstate == "42501");
    CHECK_THAT(d.message, Catch::Contains("could not be parsed"));
    d = decide(*lenient, remote("app"), sql);
    CHECK(d.rule == (std::string(sql) == "SELEC 1" ? "bad" : ""));
  }
  // `rules: []` allows everything: the server answers a syntax error itself (issue 12,
  // transparency: psql's "SELEC 1" got dbwarden's block instead of the server's 42601).
  auto no_rules = load("rules: []\n");
  for (const char* sql : {"SELEC 1", "SELECT 'unterminated", "42"}) {
    INFO(sql);
    const Decision d = decide(*no_rules, remote("bob"), sql);
    CHECK(d.action == Action::kAllow);
    CHECK(d.rule.empty());
  }
  CHECK(decide(*load("on_unparsed: block\nrules: []\n"), remote("bob"), "SELEC 1").rule ==
        "on_unparsed");
  // MySQL has no grammar here: unparsed means no statement keyword or text cut short.
  CHECK(decide(*strict, remote("bob"), "SELEC 1", Dialect::kMysql).rule.empty());
  CHECK(decide(*strict, remote(), "SELECT 'a", Dialect::kMysql).rule == "on_unparsed");
  for (const char* empty : {"", "  ", "-- just a comment", "/* x */", ";"}) {
    INFO(empty);
    const Decision d = decide(*strict, remote("bob"), empty);
    CHECK(d.action == Action::kAllow);
    CHECK(d.rule.empty());
  }
}

TEST_CASE("policy explain: says which rule and why", "[policy][match]") {
  auto p = load(R"(rules:
  - {name: drops, match: {operation: DROP TABLE}, action: block}
  - {name: deletes, match: {operation: [DELETE, UPDATE], has_where: false, user: app}, action: block}
)");
  dbwarden::sql::Analyzer analyzer;
  const auto& a = analyzer.analyze(Dialect::kPostgresql, "DELETE FROM t");
  const Decision d = p->explain(remote("app"), a, "DELETE FROM t");
  CHECK(d.rule == "deletes");
  CHECK(d.why ==
        "rule \"drops\" (line 2): no: operation DELETE, not DROP TABLE\n"
        "rule \"deletes\" (line 3): MATCH: operation DELETE is DELETE or UPDATE; has_where is "
        "false; user \"app\" is app\n");
  const Decision none = p->explain(remote("bob"), a, "DELETE FROM t");
  CHECK(none.rule.empty());
  CHECK(none.why ==
        "rule \"drops\" (line 2): no: operation DELETE, not DROP TABLE\n"
        "rule \"deletes\" (line 3): no: user \"bob\", not app\n"
        "no rule matched: allowed by default\n");
  // explain and decide agree.
  CHECK(p->decide(remote("app"), a, "").rule == d.rule);
}
