// SPDX-License-Identifier: Apache-2.0
#include "agent/parameter_policy.h"

namespace dbwarden::agent {

void DropParameters::apply(Statement& statement) const { statement.parameters.clear(); }

std::unique_ptr<ParameterPolicy> MakeParameterPolicy(bool record_parameters) {
  if (record_parameters) return std::make_unique<KeepParameters>();
  return std::make_unique<DropParameters>();
}

}  // namespace dbwarden::agent
