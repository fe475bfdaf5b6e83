// SPDX-License-Identifier: Apache-2.0
//
// Enforce mode refuses a policy it cannot enforce whole: mask rules load and
// check, but the proxy does not apply them to results yet (agent/enforcer.h).
#include <catch2/catch.hpp>
#include <string>

#include "agent/enforcer.h"
#include "policy/policy.h"

namespace dbwarden::agent {
namespace {

TEST_CASE("enforce mode refuses a policy with mask rules, keeps the others", "[agent]") {
  auto guardrails = policy::Policy::load_string(
      "rules:\n  - name: no-drop\n    match: {operation: DROP}\n    action: block\n", "g.yaml");
  REQUIRE(guardrails.ok());
  CHECK(check_enforceable(*guardrails.value(), "g.yaml").ok());

  auto masking = policy::Policy::load_string(
      "rules:\n  - name: no-drop\n    match: {operation: DROP}\n    action: block\n"
      "  - name: pii\n    action: mask\n    detectors: [email]\n",
      "m.yaml");
  REQUIRE(masking.ok());
  const Status s = check_enforceable(*masking.value(), "m.yaml");
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("m.yaml: 1 mask rule(s)") == 0);
  CHECK(s.message().find("unmasked") != std::string::npos);
}

}  // namespace
}  // namespace dbwarden::agent
