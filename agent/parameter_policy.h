// SPDX-License-Identifier: Apache-2.0
//
// The one place bound parameter values (Statement::parameters, from a
// PostgreSQL Bind or a MySQL COM_STMT_EXECUTE) pass before any output sees
// them. The pipeline applies the policy to every statement; masking will plug
// in here as another implementation, so no sink ever needs to know about it.
#pragma once

#include <memory>

#include "protocol/statement.h"

namespace dbwarden::agent {

class ParameterPolicy {
 public:
  virtual ~ParameterPolicy() = default;
  // May rewrite, mask or remove `statement.parameters`; nothing else.
  virtual void apply(Statement& statement) const = 0;
};

// Values pass unchanged (the default: `record-parameters = true`).
class KeepParameters final : public ParameterPolicy {
 public:
  void apply(Statement& /*statement*/) const override {}
};

// Values never leave the agent (`record-parameters = false`).
class DropParameters final : public ParameterPolicy {
 public:
  void apply(Statement& statement) const override;
};

// The policy the `record-parameters` setting asks for.
std::unique_ptr<ParameterPolicy> MakeParameterPolicy(bool record_parameters);

}  // namespace dbwarden::agent
