// SPDX-License-Identifier: Apache-2.0
//
// action: mask in the policy language: the keys load into MaskRules, mask
// rules apply by their match without deciding statements, and every error
// names its line and column.
#include <catch2/catch.hpp>
#include <fstream>
#include <memory>
#include <string>

#include "../support/temp_dir.h"
#include "masking/masking.h"
#include "policy/policy.h"
#include "sql/analyzer.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::policy::Action;
using dbwarden::policy::MaskRule;
using dbwarden::policy::Policy;
namespace masking = dbwarden::masking;

std::string load_error(const std::string& yaml) {
  auto p = Policy::load_string(yaml, "p.yaml");
  return p.ok() ? "" : p.status().message();
}

ConnectionInfo user(const std::string& name) {
  ConnectionInfo c;
  c.db_system = "postgresql";
  c.user = name;
  c.database = "shop";
  c.client_address = "10.1.2.3";
  return c;
}

// A temporary hash key file for the lifetime of the test.
struct KeyFile {
  dbw_test::TempDir dir;
  std::string path = dir.path + "/mask.key";
  KeyFile() { std::ofstream(path) << "0123456789abcdef0123456789abcdef"; }
};

}  // namespace

TEST_CASE("policy mask rules: the keys load", "[masking][policy]") {
  KeyFile key;
  const std::string yaml =
      "masking:\n"
      "  hash_key_file: " +
      key.path +
      "\n"
      "  detectors:\n"
      "    - {name: employee_id, regex: 'EMP-[0-9]{6}'}\n"
      "rules:\n"
      "  - name: mask-pii\n"
      "    match: {user: analyst}\n"
      "    action: mask\n"
      "    columns: [crm.customers.email, '*.*.ssn']\n"
      "    detectors: [email, payment_card, employee_id]\n"
      "    style: hash\n"
      "    on_derived: block\n"
      "    predicates: allow\n"
      "  - name: mask-notes\n"
      "    action: mask\n"
      "    detectors: token\n"
      "  - name: no-drop\n"
      "    match: {operation: DROP TABLE}\n"
      "    action: block\n";
  auto loaded = Policy::load_string(yaml, "p.yaml");
  REQUIRE(loaded.ok());
  const Policy& p = *loaded.value();
  CHECK(p.rule_count() == 3);
  CHECK(p.mask_rule_count() == 2);
  REQUIRE(p.masker() != nullptr);
  CHECK(p.masker()->detector_name(masking::kFirstCustom) == "employee_id");
  // A mask rule without conditions shadows nothing: no warning.
  CHECK(p.warnings().empty());

  dbwarden::sql::Analyzer analyzer;
  const auto& select =
      analyzer.analyze(dbwarden::sql::Dialect::kPostgresql, "SELECT email FROM crm.customers");
  std::vector<const MaskRule*> rules;
  p.mask_rules_for(user("analyst"), select, rules);
  REQUIRE(rules.size() == 2);
  const MaskRule& m = *rules[0];
  CHECK(p.mask_rule_name(m) == "mask-pii");
  CHECK(m.style == masking::Style::kHash);
  CHECK(m.on_derived == MaskRule::OnDerived::kBlock);
  CHECK(m.predicates == MaskRule::Predicates::kAllow);
  CHECK(m.detectors == ((1u << masking::kEmail) | (1u << masking::kPaymentCard) |
                        (uint64_t{1} << masking::kFirstCustom)));
  CHECK(m.covers("crm", "customers", "email"));
  CHECK(m.covers("CRM", "Customers", "EMAIL"));  // unquoted names fold case
  CHECK(m.covers("hr", "people", "ssn"));
  CHECK_FALSE(m.covers("crm", "customers", "name"));
  // Defaults.
  CHECK(rules[1]->style == masking::Style::kFull);
  CHECK(rules[1]->on_derived == MaskRule::OnDerived::kMask);
  CHECK(rules[1]->predicates == MaskRule::Predicates::kBlock);
  CHECK(rules[1]->detectors == (1u << masking::kToken));
  // The match decides who is masked.
  rules.clear();
  p.mask_rules_for(user("app"), select, rules);
  REQUIRE(rules.size() == 1);
  CHECK(p.mask_rule_name(*rules[0]) == "mask-notes");
  // Mask rules decide no statement: the block rule still does, others pass.
  CHECK(p.decide(user("analyst"), select, "SELECT email FROM crm.customers").action ==
        Action::kAllow);
  const auto& drop = analyzer.analyze(dbwarden::sql::Dialect::kPostgresql, "DROP TABLE t");
  CHECK(p.decide(user("analyst"), drop, "DROP TABLE t").rule == "no-drop");
  // explain says which mask rules apply and what they mask.
  const std::string why = p.explain_masks(user("app"), select);
  CHECK(why.find("mask rule \"mask-pii\" (line 6): does not apply") != std::string::npos);
  CHECK(why.find("mask rule \"mask-notes\" (line 14): APPLIES") != std::string::npos);
  CHECK(why.find("style full; detectors token") != std::string::npos);
  // The masker the proxy will use masks what the rule names.
  std::string out;
  CHECK(p.masker()->mask_content({}, m.style, m.detectors, "by EMP-123456", out) ==
        masking::Outcome::kReplaced);
  CHECK(out.rfind("by h:", 0) == 0);
}

TEST_CASE("policy mask rules: errors name line and column", "[masking][policy]") {
  auto rule = [](const std::string& body) {
    return load_error("rules:\n  - name: m\n    action: mask\n" + body);
  };
  CHECK(rule("") ==
        "p.yaml:2:5: a mask rule needs `columns` (schema.table.column globs), "
        "`detectors`, or both");
  CHECK(rule("    columns: [users.email]\n") ==
        "p.yaml:4:15: `columns` entry `users.email` must be schema.table.column (each part a "
        "glob, e.g. `*.users.email`)");
  CHECK(rule("    columns: ['a.b[.c']\n").find("p.yaml:4:15: `columns` entry `a.b[.c`") == 0);
  CHECK(rule("    detectors: [email, passport]\n") ==
        "p.yaml:4:24: unknown detector `passport` (known: email, payment_card, iban, phone, "
        "us_ssn, token; declare your own under `masking: detectors:`)");
  CHECK(rule("    detectors: email\n    style: redact\n") ==
        "p.yaml:5:12: `style` must be full, partial, format, hash or null");
  CHECK(rule("    detectors: email\n    style: null\n")
            .find("p.yaml:5:12: `style: null` "
                  "replaces whole values") == 0);
  auto null_style = Policy::load_string(
      "rules:\n  - {name: m, action: mask, columns: s.t.c, style: null}\n", "p.yaml");
  REQUIRE(null_style.ok());
  std::vector<const MaskRule*> rules;
  dbwarden::sql::Analyzer analyzer;
  null_style.value()->mask_rules_for(
      user("u"), analyzer.analyze(dbwarden::sql::Dialect::kPostgresql, "SELECT 1"), rules);
  REQUIRE(rules.size() == 1);
  CHECK(rules[0]->style == masking::Style::kNull);
  CHECK(rule("    columns: s.t.c\n    style:\n") ==
        "p.yaml:5:11: `style` must be full, partial, format, hash or null");
  CHECK(rule("    columns: s.t.c\n    style: hash\n").find("p.yaml:5:12: `style: hash` needs") ==
        0);
  CHECK(rule("    detectors: email\n    on_derived: mask\n") ==
        "p.yaml:5:17: `on_derived` and `predicates` apply to `columns`; this rule has only "
        "`detectors`");
  CHECK(rule("    columns: s.t.c\n    on_derived: drop\n") ==
        "p.yaml:5:17: `on_derived` must be mask or block");
  CHECK(rule("    columns: s.t.c\n    predicates: maybe\n") ==
        "p.yaml:5:17: `predicates` must be allow or block");
  CHECK(rule("    columns: []\n") ==
        "p.yaml:4:14: `columns: []` never matches anything; remove the key to match any value");
  // Mask keys on another action, and block keys on a mask rule.
  CHECK(load_error("rules:\n  - name: b\n    action: block\n    columns: s.t.c\n") ==
        "p.yaml:4:5: `columns` only applies to `action: mask`");
  CHECK(rule("    detectors: email\n    message: no\n") ==
        "p.yaml:5:14: `message`, `sqlstate` and `mysql_errno` only apply to `action: block`");
}

TEST_CASE("policy mask rules: the masking section's errors", "[masking][policy]") {
  auto with = [](const std::string& masking) {
    return load_error("masking:\n" + masking +
                      "rules:\n  - name: m\n    action: mask\n    detectors: email\n");
  };
  CHECK(with("  hash_key_file: relative/key\n") ==
        "p.yaml:2:18: `hash_key_file` must be an absolute path");
  CHECK(with("  hash_key_file: /nonexistent/mask.key\n") ==
        "p.yaml:2:18: /nonexistent/mask.key: cannot open: No such file or directory");
  dbw_test::TempDir dir;
  std::ofstream(dir.path + "/short") << "abc";
  CHECK(with("  hash_key_file: " + dir.path + "/short\n").find("a hash key must be 16-4096") !=
        std::string::npos);
  CHECK(with("  colour: red\n") ==
        "p.yaml:2:3: unknown key `colour` in `masking` (expected hash_key_file, detectors)");
  CHECK(with("  detectors:\n    - {name: email, regex: x}\n") ==
        "p.yaml:3:14: detector name `email` is a built-in detector's");
  CHECK(with("  detectors:\n    - {name: d, regex: x}\n    - {name: d, regex: y}\n") ==
        "p.yaml:4:14: duplicate detector name `d`");
  CHECK(with("  detectors:\n    - {name: d, regex: 'a*'}\n") ==
        "p.yaml:3:24: detector `d`: the regex matches the empty string (it would match "
        "everywhere)");
  CHECK(with("  detectors:\n    - {name: d, regex: 'a(b'}\n").find("p.yaml:3:") == 0);
  CHECK(with("  detectors:\n    - {name: d}\n") ==
        "p.yaml:3:7: a detector needs a `name` and a `regex`");
  CHECK(with("  detectors: d\n").find("p.yaml:2:14: `detectors` must be a list") == 0);
  CHECK(load_error("masking: []\nrules: []\n") ==
        "p.yaml:1:10: `masking` must be a mapping (hash_key_file, detectors), not a list");
}
