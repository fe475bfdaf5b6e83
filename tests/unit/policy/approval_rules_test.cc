// SPDX-License-Identifier: Apache-2.0
//
// require_approval rules and approver groups: what loads, each mistake with its line and
// column, and the decision a matching statement gets.
#include <catch2/catch.hpp>
#include <string>

#include "policy/approval_keys.h"
#include "policy/policy.h"
#include "sql/analyzer.h"

namespace {

using dbwarden::policy::Action;
using dbwarden::policy::Policy;

std::string load_error(const std::string& yaml) {
  auto p = Policy::load_string(yaml, "p.yaml");
  return p.ok() ? "" : p.status().message();
}

const std::string kGroups =
    "approver_groups:\n"
    "  dba: [alice, bob]\n"
    "  security: carol\n";

}  // namespace

TEST_CASE("approval rules: a valid rule decides require_approval", "[policy][approvals]") {
  auto p = Policy::load_string(kGroups +
                                   "rules:\n"
                                   "  - name: big-deletes\n"
                                   "    match: {operation: [DELETE]}\n"
                                   "    action: require_approval\n"
                                   "    approvers: [dba, security]\n"
                                   "    approvals: 2\n"
                                   "    timeout: 90s\n"
                                   "  - name: drops\n"
                                   "    match: {operation: [DROP TABLE]}\n"
                                   "    action: require_approval\n"
                                   "    approvers: security\n",
                               "p.yaml");
  REQUIRE(p.ok());
  const Policy& policy = *p.value();
  REQUIRE(policy.approver_groups().size() == 2);
  dbwarden::ConnectionInfo who;
  who.user = "app";
  dbwarden::sql::Analyzer analyzer;
  const std::string del = "DELETE FROM accounts WHERE id = 1";
  auto d = policy.decide(who, analyzer.analyze(dbwarden::sql::Dialect::kPostgresql, del), del);
  CHECK(d.action == Action::kRequireApproval);
  CHECK(d.rule == "big-deletes");
  REQUIRE(d.approval != nullptr);
  CHECK(d.approval->approvals == 2);
  CHECK(d.approval->timeout_ms == 90'000);
  CHECK(policy.approvers_of(*d.approval) == std::vector<std::string>{"alice", "bob", "carol"});
  const std::string drop = "DROP TABLE t";
  d = policy.decide(who, analyzer.analyze(dbwarden::sql::Dialect::kPostgresql, drop), drop);
  REQUIRE(d.approval != nullptr);
  CHECK(d.approval->approvals == 1);               // default
  CHECK(d.approval->timeout_ms == 5 * 60 * 1000);  // default 5m
  CHECK(policy.approvers_of(*d.approval) == std::vector<std::string>{"carol"});
  const std::string sel = "SELECT 1";
  d = policy.decide(who, analyzer.analyze(dbwarden::sql::Dialect::kPostgresql, sel), sel);
  CHECK(d.action == Action::kAllow);
  CHECK(d.approval == nullptr);
}

TEST_CASE("approval rules: every mistake names its line and column", "[policy][approvals]") {
  const std::string rule = "rules:\n  - name: r\n    action: require_approval\n";
  CHECK(load_error(kGroups + rule + "    approvers: [ops]\n") ==
        "p.yaml:7:16: `approvers` names group `ops`, which `approver_groups:` does not define");
  CHECK(load_error(kGroups + rule + "    approvers: [dba]\n    approvals: 3\n") ==
        "p.yaml:7:16: `approvals: 3` can never be reached: its groups have 2 distinct "
        "member(s)");
  CHECK(load_error(kGroups + rule + "    approvers: [dba]\n    approvals: 0\n") ==
        "p.yaml:8:16: `approvals` must be a whole number from 1 to 16 (distinct approvers "
        "needed)");
  CHECK(load_error(kGroups + rule + "    approvers: [dba]\n    timeout: 5 minutes\n") ==
        "p.yaml:8:14: `timeout` must be a duration from 1s to 7d written as a number and s, m, "
        "h or d (e.g. 90s, 5m, 2h)");
  CHECK(load_error(kGroups + rule + "    approvers: [dba]\n    timeout: 0s\n")
            .find("p.yaml:8:14: `timeout` must be") == 0);
  CHECK(load_error(kGroups + rule + "    approvers: []\n") ==
        "p.yaml:7:16: `approvers` must be a name or a non-empty list of names");
  CHECK(load_error(kGroups + "rules:\n  - name: r\n    action: block\n    approvers: [dba]\n") ==
        "p.yaml:7:5: `approvers` only applies to `action: require_approval`");
  CHECK(load_error("approver_groups: [dba]\nrules: []\n") ==
        "p.yaml:1:18: `approver_groups` must be a mapping of group name to a list of user names");
  CHECK(load_error("approver_groups:\n  dba: [alice, 'bob smith']\nrules: []\n") ==
        "p.yaml:2:16: approver group `dba` entry `bob smith` must be a name of 1-64 letters, "
        "digits, - _ .");
  CHECK(load_error("approver_groups:\n  dba: alice\n  dba: bob\nrules: []\n") ==
        "p.yaml:3:3: duplicate approver group `dba`");
}

TEST_CASE("approval rules: durations", "[policy][approvals]") {
  uint64_t ms = 0;
  CHECK(dbwarden::policy::parse_duration_ms("90s", &ms));
  CHECK(ms == 90'000);
  CHECK(dbwarden::policy::parse_duration_ms("5m", &ms));
  CHECK(ms == 300'000);
  CHECK(dbwarden::policy::parse_duration_ms("2h", &ms));
  CHECK(ms == 7'200'000);
  CHECK(dbwarden::policy::parse_duration_ms("1d", &ms));
  CHECK(ms == 86'400'000);
  CHECK_FALSE(dbwarden::policy::parse_duration_ms("m", &ms));
  CHECK_FALSE(dbwarden::policy::parse_duration_ms("5", &ms));
  CHECK_FALSE(dbwarden::policy::parse_duration_ms("-5m", &ms));
  CHECK_FALSE(dbwarden::policy::parse_duration_ms("5 m", &ms));
  CHECK_FALSE(dbwarden::policy::parse_duration_ms("99999999999999999999s", &ms));
}
