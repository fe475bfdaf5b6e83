// SPDX-License-Identifier: Apache-2.0
//
// Policy loading: every kind of error names its line and column; valid files
// load with the rules and settings they say.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "../support/temp_dir.h"
#include "policy/policy.h"

namespace {

using dbwarden::policy::OnUnparsed;
using dbwarden::policy::Policy;

// The whole error text of loading `yaml` as "p.yaml"; "" when it loads.
std::string load_error(const std::string& yaml) {
  auto p = Policy::load_string(yaml, "p.yaml");
  return p.ok() ? "" : p.status().message();
}

}  // namespace

TEST_CASE("policy loader: valid files", "[policy][loader]") {
  auto empty = Policy::load_string("rules: []\n", "p.yaml");
  REQUIRE(empty.ok());
  CHECK(empty.value()->rule_count() == 0);
  // `rules: []` allows everything, unparsed statements too; on_unparsed given explicitly
  // holds, and any rule brings back the default (block).
  CHECK(empty.value()->on_unparsed() == OnUnparsed::kAllow);
  auto strict_empty = Policy::load_string("on_unparsed: block\nrules: []\n", "p.yaml");
  REQUIRE(strict_empty.ok());
  CHECK(strict_empty.value()->on_unparsed() == OnUnparsed::kBlock);
  auto one_rule = Policy::load_string("rules: [{name: r, action: allow}]\n", "p.yaml");
  REQUIRE(one_rule.ok());
  CHECK(one_rule.value()->on_unparsed() == OnUnparsed::kBlock);

  auto full = Policy::load_string(R"(
on_unparsed: allow
rules:
  - name: everything-at-once
    match:
      user: [app, "report"]
      database: shop
      application_name: psql
      client_cidr: [10.0.0.0/8, "2001:db8::/32", 127.0.0.1]
      uid: 1000
      login_uid: [1000, 1001]
      executable: /usr/bin/*
      unit: "cron-*.service"
      container: "3f2a*"
      operation: [drop table, DELETE]
      collections: [public.acc*, orders]
      has_where: false
      alter_table_drop: false
      grant_to_public: False
      copy_program: FALSE
      fingerprint: 0123456789ABCDEF
      regex: ['^DELETE FROM (?i)acc', 'x+']
      dialect: [postgresql, mariadb]
    action: block
    message: no
    sqlstate: P0001
    mysql_errno: 1644
  - name: log.all:the-rest_2
    match:
    action: log
  - {name: flow-style, match: {user: x}, action: allow}
)",
                                  "p.yaml");
  if (!full.ok()) FAIL(full.status().message());
  CHECK(full.value()->rule_count() == 3);
  CHECK(full.value()->on_unparsed() == OnUnparsed::kAllow);
  CHECK(full.value()->name() == "p.yaml");
}

TEST_CASE("policy loader: YAML syntax and structure errors", "[policy][loader]") {
  CHECK(load_error("") == "p.yaml:1:1: the file is empty; a policy needs at least `rules: []`");
  CHECK_THAT(load_error("rules: [\n  - a\n"),
             Catch::StartsWith("p.yaml:") && Catch::Contains("YAML syntax"));
  CHECK_THAT(load_error("rules: []\n  bad: : x\n"), Catch::StartsWith("p.yaml:2:"));
  CHECK(load_error("- a\n") ==
        "p.yaml:1:1: a policy is a mapping with a `rules:` list, not a list");
  CHECK(load_error("on_unparsed: block\n") ==
        "p.yaml:1:1: missing `rules:` (a list of rules; `rules: []` allows everything)");
  CHECK(load_error("rules: {a: 1}\n") ==
        "p.yaml:1:8: `rules` must be a list of rules, not a mapping");
  CHECK(load_error("rules: []\nrule: []\n") ==
        "p.yaml:2:1: unknown key `rule` at the top level (expected `rules`, `on_unparsed`, "
        "`masking`, `learn` or `approver_groups`)");
  CHECK(load_error("rules: []\nrules: []\n") ==
        "p.yaml:2:1: duplicate key `rules` in the policy (first at line 1)");
  CHECK(load_error("rules: []\non_unparsed: warn\n") ==
        "p.yaml:2:14: on_unparsed must be `block` or `allow`");
  CHECK(load_error("rules: []\n---\nrules: []\n") ==
        "p.yaml:3:1: a second YAML document ('---'); a policy is one document");
  CHECK(load_error("base: &b {name: a, action: allow}\nrules: [*b]\n") ==
        "p.yaml:2:9: aliases (*name) are not supported in a policy file; repeat the value");
  CHECK(load_error("rules:\n  - x\n") ==
        "p.yaml:2:5: a rule is a mapping with `name`, `match` and `action`, not a scalar");
  CHECK(load_error("rules: []\n" + std::string("x: ") + std::string(40, '[') +
                   std::string(40, ']') + "\n")
            .find("nested deeper than") != std::string::npos);
  CHECK(load_error(std::string("rules: []\n#\0x\n", 14)) ==
        "p.yaml:1:1: the file contains a NUL byte: not a YAML text file");
}

TEST_CASE("policy loader: rule errors name line and column", "[policy][loader]") {
  const std::string head = "rules:\n  - name: r\n    action: block\n";
  // name
  CHECK(load_error("rules:\n  - action: allow\n") == "p.yaml:2:5: a rule needs a `name`");
  CHECK(load_error("rules:\n  - name: \"\"\n    action: allow\n") ==
        "p.yaml:2:11: `name` must be a non-empty string");
  CHECK(load_error("rules:\n  - name: has space\n    action: allow\n") ==
        "p.yaml:2:11: `name` `has space` may hold only letters, digits and - _ . : (it becomes "
        "a metrics label)");
  CHECK(load_error("rules:\n  - name: on_unparsed\n    action: allow\n") ==
        "p.yaml:2:11: `name: on_unparsed` is reserved for the on_unparsed decision");
  CHECK(load_error("rules:\n  - name: " + std::string(129, 'a') + "\n    action: allow\n") ==
        "p.yaml:2:11: `name` is longer than 128 bytes");
  CHECK(load_error("rules:\n  - {name: a, action: allow}\n  - {name: b, action: allow}\n"
                   "  - {name: a, action: log}\n") ==
        "p.yaml:4:12: duplicate rule name `a` (first at line 2)");
  // action
  CHECK(load_error("rules:\n  - name: r\n") ==
        "p.yaml:2:5: a rule needs an `action` (allow, block, log, mask or require_approval)");
  CHECK(load_error("rules:\n  - name: r\n    action: deny\n") ==
        "p.yaml:3:13: `action` must be allow, block, log, mask or require_approval");
  // action: mask is valid with its own keys (mask_rules_test.cc).
  CHECK(load_error("rules:\n  - name: r\n    action: mask\n    detectors: email\n").empty());
  // action: require_approval is valid with its own keys (approval_rules_test.cc).
  CHECK(load_error("rules:\n  - name: r\n    action: require_approval\n") ==
        "p.yaml:2:5: `action: require_approval` needs `approvers:` (approver group names)");
  // keys of a rule
  CHECK(load_error(head + "    matches: {}\n") ==
        "p.yaml:4:5: unknown key `matches` in a rule (expected name, match, action, message, "
        "sqlstate, mysql_errno; for action: mask columns, detectors, style, on_derived, "
        "predicates; for action: require_approval approvers, approvals, timeout)");
  CHECK(load_error(head + "    action: log\n") ==
        "p.yaml:4:5: duplicate key `action` in a rule (first at line 3)");
  CHECK(load_error("rules:\n  - name: r\n    action: allow\n    message: hi\n") ==
        "p.yaml:4:14: `message`, `sqlstate` and `mysql_errno` only apply to `action: block`");
  // block response
  CHECK(load_error(head + "    message: \"a\\nb\"\n") ==
        "p.yaml:4:14: `message` must be one line of text without control characters");
  CHECK(load_error(head + "    sqlstate: 4250\n") ==
        "p.yaml:4:15: `sqlstate` must be 5 characters 0-9 A-Z (e.g. \"42501\"), got `4250`");
  CHECK(load_error(head + "    sqlstate: 42a01\n") ==
        "p.yaml:4:15: `sqlstate` must be 5 characters 0-9 A-Z (e.g. \"42501\"), got `42a01`");
  CHECK(load_error(head + "    sqlstate: \"01000\"\n") ==
        "p.yaml:4:15: `sqlstate` `01000` is in class 01 (success, warning or no data): a block "
        "needs an error class such as 42");
  CHECK(load_error(head + "    mysql_errno: 0\n") ==
        "p.yaml:4:18: `mysql_errno` must be 1-65535 (MySQL's error codes are 16-bit)");
  CHECK(load_error(head + "    mysql_errno: 70000\n") ==
        "p.yaml:4:18: `mysql_errno` must be 1-65535 (MySQL's error codes are 16-bit)");
  CHECK(load_error(head + "    mysql_errno: \"1142\"\n") ==
        "p.yaml:4:18: `mysql_errno` must be a whole number, got `1142`");
}

TEST_CASE("policy loader: match errors name line and column", "[policy][loader]") {
  const auto m = [](const std::string& match) {
    return load_error("rules:\n  - name: r\n    action: allow\n    match:\n" + match);
  };
  CHECK(load_error("rules:\n  - name: r\n    action: allow\n    match: [user]\n") ==
        "p.yaml:4:12: `match` must be a mapping of conditions, not a list");
  CHECK(m("      users: app\n") ==
        "p.yaml:5:7: unknown match key `users` (identity: user, database, application_name, "
        "client_cidr, uid, login_uid, executable, unit, container; statement: operation, "
        "collections, has_where, alter_table_drop, grant_to_public, copy_program, "
        "fingerprint, regex, dialect)");
  CHECK(m("      user: a\n      user: b\n") ==
        "p.yaml:6:7: duplicate key `user` in `match` (first at line 5)");
  CHECK(m("      user: []\n") ==
        "p.yaml:5:13: `user: []` never matches anything; remove the key to match any value");
  CHECK(m("      user:\n") == "p.yaml:5:12: `user` needs a value or a list of values, not nothing");
  CHECK(m("      database: {a: b}\n") ==
        "p.yaml:5:17: `database` needs a value or a list of values, not a mapping");
  CHECK(m("      user: [a, [b]]\n") ==
        "p.yaml:5:17: an element of `user` must be a single value, not a list");
  CHECK(m("      application_name: \"\"\n") ==
        "p.yaml:5:25: an empty `application_name` never matches");
  CHECK(m("      client_cidr: [10.0.0.0/8, 10.0.0.300]\n") ==
        "p.yaml:5:33: `10.0.0.300` is not an IPv4 or IPv6 address or network");
  CHECK(m("      client_cidr: 10.0.0.0/33\n") ==
        "p.yaml:5:20: `10.0.0.0/33`: the prefix length must be 0-32");
  CHECK(m("      client_cidr: \"::1/129\"\n") ==
        "p.yaml:5:20: `::1/129`: the prefix length must be 0-128");
  CHECK(m("      client_cidr: 10.1.2.3/8\n") ==
        "p.yaml:5:20: `10.1.2.3/8` has host bits set after /8; write the network address");
  CHECK(m("      uid: root\n") == "p.yaml:5:12: `uid` must be a whole number, got `root`");
  CHECK(m("      uid: -1\n") == "p.yaml:5:12: `uid` must be a whole number, got `-1`");
  CHECK(m("      login_uid: 4294967295\n") ==
        "p.yaml:5:18: `login_uid` must be below 4294967295 (that value means unset)");
  CHECK(m("      executable: \"/usr/bin/[ab\"\n") ==
        "p.yaml:5:19: `executable` pattern `/usr/bin/[ab` has a '[' without its ']'");
  CHECK(m("      unit: 'a\\'\n") == "p.yaml:5:13: `unit` pattern `a\\` ends with a lone backslash");
  CHECK(m("      container: [ok, \"[\"]\n") ==
        "p.yaml:5:23: `container` pattern `[` has a '[' without its ']'");
  CHECK(m("      collections: [\"a[\"]\n") ==
        "p.yaml:5:21: `collections` pattern `a[` has a '[' without its ']'");
  CHECK(m("      operation: DROP-TABLE\n") ==
        "p.yaml:5:18: `operation` `DROP-TABLE` must be a statement keyword, optionally with its "
        "object type: DELETE, DROP TABLE, CREATE ROLE");
  CHECK(m("      has_where: yes\n") == "p.yaml:5:18: `has_where` must be true or false");
  CHECK(m("      alter_table_drop: \"true\"\n") ==
        "p.yaml:5:25: `alter_table_drop` must be true or false");
  CHECK(m("      grant_to_public: [true]\n") ==
        "p.yaml:5:24: `grant_to_public` must be true or false");
  CHECK(m("      copy_program: 1\n") == "p.yaml:5:21: `copy_program` must be true or false");
  CHECK(m("      fingerprint: abc\n") ==
        "p.yaml:5:20: `fingerprint` must be 16 hex digits as in the audit record's "
        "dbwarden.fingerprint, got `abc`");
  CHECK(m("      dialect: oracle\n") ==
        "p.yaml:5:16: `dialect` must be postgresql or mysql, got `oracle`");
}

TEST_CASE("policy loader: an invalid regex points at the bad part", "[policy][loader]") {
  const auto m = [](const std::string& match) {
    return load_error("rules:\n  - name: r\n    action: allow\n    match:\n" + match);
  };
  const std::string plain = m("      regex: DROP(TABLE\n");
  CHECK_THAT(plain, Catch::StartsWith("p.yaml:5:14: invalid regex `DROP(TABLE`") &&
                        Catch::Contains("missing )"));
  const std::string quoted = m("      regex: ['^SELECT', 'a**b']\n");
  // RE2 names the bad repetition operator "**", at offset 1 of 'a**b': the
  // quote is at column 26, the pattern starts at 27, the "**" at 28.
  CHECK(quoted ==
        "p.yaml:5:28: invalid regex `a**b` at offset 1 of the pattern: bad repetition "
        "operator: **");
  // An escape before the bad part: the file's text and the pattern differ, so
  // the error points at the scalar.
  CHECK(m("      regex: \"\\\\d**\"\n") ==
        "p.yaml:5:14: invalid regex `\\d**` at offset 2 of the pattern: bad repetition operator: "
        "**");
  CHECK_THAT(m("      regex: \"\"\n"),
             Catch::StartsWith("p.yaml:5:14: `regex` must be 1-4096 bytes"));
}

TEST_CASE("policy loader: every error is reported, not just the first", "[policy][loader]") {
  const std::string all = load_error(R"(rules:
  - name: a
    action: nope
  - name: b
    match: {user: [], has_where: maybe}
    action: allow
)");
  CHECK(all ==
        "p.yaml:3:13: `action` must be allow, block, log, mask or require_approval\n"
        "p.yaml:5:19: `user: []` never matches anything; remove the key to match any value\n"
        "p.yaml:5:34: `has_where` must be true or false");
}

TEST_CASE("policy loader: files", "[policy][loader]") {
  dbw_test::TempDir dir;
  const std::string path = dir.path + "/policy.yaml";
  std::ofstream(path) << "rules:\n  - name: r\n    action: deny\n";
  auto bad = Policy::load_file(path);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message() ==
        path + ":3:13: `action` must be allow, block, log, mask or require_approval");
  auto missing = Policy::load_file(dir.path + "/nope.yaml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message() ==
        dir.path + "/nope.yaml: cannot open: No such file or directory");
  auto directory = Policy::load_file(dir.path);
  REQUIRE_FALSE(directory.ok());
  CHECK(directory.status().message() == dir.path + ": not a regular file");
  auto shipped = Policy::load_file(DBW_TEST_DATA_DIR "/../../packaging/policy.yaml");
  if (!shipped.ok()) FAIL(shipped.status().message());
  CHECK(shipped.value()->rule_count() == 6);
}

TEST_CASE("policy loader: untrusted input stays bounded", "[policy][loader]") {
  // Over 4 MiB: refused before parsing.
  const std::string huge = "rules: []\n#" + std::string(4 << 20, 'x') + "\n";
  CHECK(load_error(huge) ==
        "p.yaml:1:1: the file is larger than 4194304 bytes; a policy is a few kilobytes");
  // More nodes than any policy has: refused while parsing, at the node.
  std::string many = "rules: []\nx: [";
  for (int i = 0; i < 200001; ++i) many += "1,";
  many += "1]\n";
  CHECK_THAT(load_error(many),
             Catch::StartsWith("p.yaml:2:") && Catch::EndsWith(": more than 200000 YAML nodes"));
  // Deep block nesting is refused like deep flow nesting.
  std::string deep = "rules: []\nx:\n";
  for (int i = 0; i < 20; ++i) deep += std::string(2 * i + 2, ' ') + "- \n";
  deep.pop_back();
  deep += "- 1\n";
  CHECK_THAT(load_error(deep), Catch::Contains("nested deeper than 16 levels"));
  // Errors are capped; the last line says how many more there were.
  std::string bad = "rules:\n";
  for (int i = 0; i < 60; ++i) bad += "  - {name: r" + std::to_string(i) + ", action: no}\n";
  const std::string all = load_error(bad);
  CHECK(std::count(all.begin(), all.end(), '\n') == 50);
  CHECK_THAT(all, Catch::EndsWith("\np.yaml: 10 more errors"));
}

TEST_CASE("policy loader: a rule behind a catch-all is reported", "[policy][loader]") {
  auto p = Policy::load_string(R"(rules:
  - {name: narrow, match: {user: a}, action: allow}
  - name: everything
    action: log
  - {name: late, match: {operation: DROP}, action: block}
  - {name: later, action: block}
)",
                               "p.yaml");
  REQUIRE(p.ok());
  CHECK(p.value()->warnings() ==
        std::vector<std::string>{
            "p.yaml:5:5: warning: rule `late` is never reached: rule `everything` (line 3) has "
            "no conditions and decides every statement first",
            "p.yaml:6:5: warning: rule `later` is never reached: rule `everything` (line 3) has "
            "no conditions and decides every statement first"});
  auto fine = Policy::load_string(
      "rules: [{name: a, match: {user: a}, action: allow}, "
      "{name: rest, action: block}]\n",
      "p.yaml");
  REQUIRE(fine.ok());
  CHECK(fine.value()->warnings().empty());
}
