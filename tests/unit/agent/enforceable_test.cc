// SPDX-License-Identifier: Apache-2.0
//
// Enforce mode refuses a policy it cannot enforce whole: the PostgreSQL relay masks
// results, the MySQL/MariaDB relay does not yet, so mask rules are refused only while
// MySQL/MariaDB ports are protected (agent/enforcer.h).
#include <catch2/catch.hpp>
#include <string>

#include "agent/enforcer.h"
#include "policy/policy.h"

namespace dbwarden::agent {
namespace {

TEST_CASE("enforce mode refuses mask rules only while MySQL ports are protected", "[agent]") {
  auto guardrails = policy::Policy::load_string(
      "rules:\n  - name: no-drop\n    match: {operation: DROP}\n    action: block\n", "g.yaml");
  REQUIRE(guardrails.ok());
  CHECK(check_enforceable(*guardrails.value(), "g.yaml", /*mysql_protected=*/false).ok());
  CHECK(check_enforceable(*guardrails.value(), "g.yaml", /*mysql_protected=*/true).ok());

  auto masking = policy::Policy::load_string(
      "rules:\n  - name: no-drop\n    match: {operation: DROP}\n    action: block\n"
      "  - name: pii\n    action: mask\n    detectors: [email]\n",
      "m.yaml");
  REQUIRE(masking.ok());
  // PostgreSQL only: the relay applies them.
  CHECK(check_enforceable(*masking.value(), "m.yaml", /*mysql_protected=*/false).ok());
  const Status s = check_enforceable(*masking.value(), "m.yaml", /*mysql_protected=*/true);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("m.yaml: 1 mask rule(s)") == 0);
  CHECK(s.message().find("MySQL/MariaDB") != std::string::npos);
  CHECK(s.message().find("unmasked") != std::string::npos);
}

}  // namespace
}  // namespace dbwarden::agent
