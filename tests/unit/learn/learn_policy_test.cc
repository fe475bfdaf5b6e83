// SPDX-License-Identifier: Apache-2.0
//
// The policy file's `learn:` section (loads, errors with line:column) and learn mode's
// decision (apply_learn): learning remembers what the rules let through, protect mode
// gives a novel fingerprint the learn action, rules that block win, identities outside
// `match` are untouched, a learn window past its end protects.
#include <catch2/catch.hpp>
#include <string>

#include "../support/temp_dir.h"
#include "learn/learn.h"
#include "policy/policy.h"
#include "proxy/policy_judge.h"
#include "sql/analyzer.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::learn::apply_learn;
using dbwarden::learn::Identity;
using dbwarden::learn::Store;
using dbwarden::policy::Action;
using dbwarden::policy::Decision;
using dbwarden::policy::LearnSettings;
using dbwarden::policy::Policy;
namespace sql = dbwarden::sql;

std::string load_error(const std::string& yaml) {
  auto p = Policy::load_string(yaml, "p.yaml");
  return p.ok() ? "" : p.status().message();
}

std::shared_ptr<const Policy> load(const std::string& yaml) {
  auto p = Policy::load_string(yaml, "p.yaml");
  INFO((p.ok() ? std::string() : p.status().message()));
  REQUIRE(p.ok());
  return p.value();
}

ConnectionInfo client(const std::string& user, const std::string& exe, uint32_t login_uid) {
  ConnectionInfo c;
  c.db_system = "postgresql";
  c.user = user;
  c.database = "shop";
  c.unix_socket = true;
  c.peer.pid = 4242;
  c.peer.executable = exe;
  c.peer.login_uid = login_uid;
  return c;
}

// One statement through the rules and then learn mode, as the proxy's judge does it.
Decision run(const Policy& p, Store* store, const ConnectionInfo& who, const std::string& text,
             int64_t now) {
  static sql::Analyzer analyzer;
  const sql::Analysis& a = analyzer.analyze(sql::Dialect::kPostgresql, text);
  Decision d = p.decide(who, a, text);
  apply_learn(p, store, Store::to_key(Identity::of(who)), who, a, now, d);
  return d;
}

constexpr char kRules[] =
    "rules:\n"
    "  - name: no-drop\n"
    "    match: {operation: DROP TABLE}\n"
    "    action: block\n";

}  // namespace

TEST_CASE("learn section: loads every key") {
  auto p = load(std::string(kRules) +
                "learn:\n"
                "  mode: learn\n"
                "  match: {user: [etl], executable: '/usr/local/bin/*'}\n"
                "  until: \"2027-01-31T00:00:00Z\"\n"
                "  action: block\n"
                "  message: not in this job's workload\n"
                "  sqlstate: \"42501\"\n"
                "  mysql_errno: 1142\n"
                "  max_fingerprints_per_identity: 50\n"
                "  max_fingerprints: 500\n");
  const LearnSettings* l = p->learn();
  REQUIRE(l != nullptr);
  CHECK(l->mode == LearnSettings::Mode::kLearn);
  CHECK(l->until_s == 1801353600);
  CHECK(l->action == Action::kBlock);
  CHECK(l->message == "not in this job's workload");
  CHECK(l->max_per_identity == 50);
  CHECK(l->max_total == 500);
  CHECK(l->mode_at(1801353599, 0) == LearnSettings::Mode::kLearn);
  CHECK(l->mode_at(1801353600, 0) == LearnSettings::Mode::kProtect);

  auto d = load("rules: []\nlearn: {mode: learn, duration: 7d, action: log}\n");
  REQUIRE(d->learn() != nullptr);
  CHECK(d->learn()->duration_s == 7 * 86400);
  CHECK(d->learn()->mode_at(1000 + 7 * 86400 - 1, 1000) == LearnSettings::Mode::kLearn);
  CHECK(d->learn()->mode_at(1000 + 7 * 86400, 1000) == LearnSettings::Mode::kProtect);
  CHECK(load("rules: []\n")->learn() == nullptr);
}

TEST_CASE("learn section: errors name line and column") {
  CHECK(load_error("rules: []\nlearn:\n  action: block\n") ==
        "p.yaml:3:3: `learn` needs a `mode` (learn or protect)");
  CHECK(load_error("rules: []\nlearn:\n  mode: watch\n") ==
        "p.yaml:3:9: `mode` must be learn or protect");
  CHECK(load_error("rules: []\nlearn:\n  mode: protect\n  action: require_approval\n")
            .starts_with("p.yaml:4:11: learn action `require_approval` is not supported yet"));
  CHECK(load_error("rules: []\nlearn:\n  mode: protect\n  action: allow\n") ==
        "p.yaml:4:11: learn `action` must be log or block");
  CHECK(load_error("rules: []\nlearn:\n  mode: learn\n  duration: 3 days\n")
            .starts_with("p.yaml:4:13: `duration` must be a positive number"));
  CHECK(load_error("rules: []\nlearn:\n  mode: learn\n  until: tomorrow\n")
            .starts_with("p.yaml:4:10: `until` must be a UTC time"));
  CHECK(load_error("rules: []\nlearn:\n  mode: learn\n  until: \"2027-01-01T00:00:00Z\"\n"
                   "  duration: 1d\n") == "p.yaml:5:13: give `until` or `duration`, not both");
  CHECK(load_error("rules: []\nlearn:\n  mode: learn\n  match: {operation: SELECT}\n")
            .starts_with("p.yaml:4:11: `operation` is a statement condition"));
  CHECK(load_error("rules: []\nlearn:\n  mode: protect\n  action: log\n  message: hi\n") ==
        "p.yaml:5:12: `message`, `sqlstate` and `mysql_errno` only apply to `action: block`");
  CHECK(load_error("rules: []\nlearn:\n  mode: learn\n  colour: red\n")
            .starts_with("p.yaml:4:3: unknown key `colour` in `learn`"));
  CHECK(load_error("rules: []\nlearn: yes\n").starts_with("p.yaml:2:8: `learn` must be a mapping"));
  CHECK(load_error("rules:\n  - {name: 'learn:x', action: allow}\n")
            .starts_with("p.yaml:2:12: rule names starting with `learn:` are reserved"));
  CHECK(load_error("rules: []\nlearn:\n  mode: learn\n  max_fingerprints: 0\n") ==
        "p.yaml:4:21: `max_fingerprints` must be 1-10000000");
}

TEST_CASE("learn mode: learn, then protect blocks a novel statement for that identity only") {
  dbw_test::TempDir dir;
  auto s = Store::Open(dir.path, {}, 1000);
  REQUIRE(s.ok());
  Store& store = *s.value();
  const ConnectionInfo etl = client("etl", "/usr/bin/psql", 1000);
  const ConnectionInfo ops = client("ops", "/usr/bin/psql", 1001);

  auto learning = load(std::string(kRules) + "learn: {mode: learn}\n");
  CHECK(run(*learning, &store, etl, "SELECT * FROM orders WHERE id = 1", 1001).action ==
        Action::kAllow);
  CHECK(run(*learning, &store, ops, "DELETE FROM orders WHERE id = 7", 1001).action ==
        Action::kAllow);
  // Blocked by a rule: neither allowed nor learned.
  const Decision drop = run(*learning, &store, etl, "DROP TABLE orders", 1002);
  CHECK(drop.action == Action::kBlock);
  CHECK(drop.rule == "no-drop");

  auto protect = load(std::string(kRules) + "learn: {mode: protect, action: block}\n");
  // The same shape with other literals: the same fingerprint.
  const Decision known = run(*protect, &store, etl, "SELECT * FROM orders WHERE id = 99", 2000);
  CHECK(known.action == Action::kAllow);
  CHECK(known.rule.empty());
  const Decision novel = run(*protect, &store, etl, "DELETE FROM orders WHERE id = 7", 2000);
  CHECK(novel.action == Action::kBlock);
  CHECK(novel.rule == "learn:novel_fingerprint");
  CHECK(novel.sqlstate == "42501");
  CHECK(novel.message.find("learn:novel_fingerprint") != std::string::npos);
  // Learned for ops, so it runs for ops.
  CHECK(run(*protect, &store, ops, "DELETE FROM orders WHERE id = 8", 2000).action ==
        Action::kAllow);
  // The same user from another program, or another human: another identity.
  CHECK(run(*protect, &store, client("etl", "/usr/bin/python3", 1000),
            "SELECT * FROM orders WHERE id = 1", 2000)
            .rule == "learn:novel_fingerprint");
  CHECK(run(*protect, &store, client("etl", "/usr/bin/psql", 1002),
            "SELECT * FROM orders WHERE id = 1", 2000)
            .rule == "learn:novel_fingerprint");
  // The rule still wins over learn mode.
  CHECK(run(*protect, &store, etl, "DROP TABLE orders", 2000).rule == "no-drop");
  // Protect mode learns nothing.
  CHECK(run(*protect, &store, etl, "DELETE FROM orders WHERE id = 7", 2001).action ==
        Action::kBlock);
}

TEST_CASE("learn mode: log action, messages, match and the window") {
  dbw_test::TempDir dir;
  auto s = Store::Open(dir.path, {}, 1000);
  REQUIRE(s.ok());
  Store& store = *s.value();
  const ConnectionInfo etl = client("etl", "/usr/bin/psql", 1000);
  const ConnectionInfo web = client("web", "/usr/bin/psql", 1000);

  auto logging = load("rules: []\nlearn: {mode: protect, action: log}\n");
  const Decision d = run(*logging, &store, etl, "SELECT 1", 1001);
  CHECK(d.action == Action::kLog);
  CHECK(d.rule == "learn:novel_fingerprint");

  auto custom = load(
      "rules: []\nlearn: {mode: protect, match: {user: etl}, message: 'not learned', "
      "sqlstate: '42000'}\n");
  const Decision c = run(*custom, &store, etl, "SELECT 1", 1001);
  CHECK(c.action == Action::kBlock);
  CHECK(c.message == "not learned");
  CHECK(c.sqlstate == "42000");
  // Not covered by match: rules alone decide.
  CHECK(run(*custom, &store, web, "SELECT 1", 1001).action == Action::kAllow);

  // A window of one hour from the store's creation (1000): learns until 4600, then protects.
  auto window = load("rules: []\nlearn: {mode: learn, duration: 1h}\n");
  CHECK(run(*window, &store, etl, "SELECT 2", 4599).action == Action::kAllow);
  CHECK(run(*window, &store, etl, "SELECT 2", 4600).action == Action::kAllow);  // learned
  CHECK(run(*window, &store, etl, "SELECT now()", 4600).rule == "learn:novel_fingerprint");
  // Without a store nothing is novel.
  CHECK(run(*window, nullptr, etl, "SELECT now()", 4600).action == Action::kAllow);
}

TEST_CASE("learn mode in the proxy's judge: a multi-statement message with a novel part") {
  dbw_test::TempDir dir;
  auto s = Store::Open(dir.path, {}, 1000);
  REQUIRE(s.ok());
  dbwarden::proxy::PolicySource source(load("rules: []\nlearn: {mode: learn}\n"));
  dbwarden::proxy::PolicyJudge judge(source);
  judge.set_learn_store(s.value().get());
  const ConnectionInfo etl = client("etl", "/usr/bin/psql", 1000);
  dbwarden::proxy::MessageVerdict v;
  judge.judge(etl, dbwarden::proxy::Dialect::kPostgresql,
              "SELECT 1; UPDATE t SET a = 2 WHERE id = 3", true, false, nullptr, &v);
  CHECK_FALSE(v.decisive.block);
  CHECK(s.value()->stats().fingerprints == 2);

  source.set(load("rules: []\nlearn: {mode: protect}\n"));
  judge.judge(etl, dbwarden::proxy::Dialect::kPostgresql,
              "SELECT 7; UPDATE t SET a = 1 WHERE id = 9", true, false, nullptr, &v);
  CHECK_FALSE(v.decisive.block);
  judge.judge(etl, dbwarden::proxy::Dialect::kPostgresql, "SELECT 7; DELETE FROM t WHERE id = 9",
              true, false, nullptr, &v);
  CHECK(v.decisive.block);
  CHECK(v.decisive.rule == "learn:novel_fingerprint");
  CHECK(v.decisive.sqlstate == "42501");
  REQUIRE(v.statements.size() == 2);
  CHECK(v.statements[0].verdict.action == "allow");
  CHECK(v.statements[1].verdict.action == "block");
  // Another peer process on a new connection: another identity.
  ConnectionInfo other = client("etl", "/usr/bin/python3", 1000);
  other.connection_id = 2;
  judge.judge(other, dbwarden::proxy::Dialect::kPostgresql, "SELECT 1", true, false, nullptr, &v);
  CHECK(v.decisive.block);
}
