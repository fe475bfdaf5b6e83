// SPDX-License-Identifier: Apache-2.0
#include "agent/pipeline.h"

#include "sql/operation.h"

namespace dbwarden::agent {

void Pipeline::on_statement(const Statement& statement) {
  scratch_ = statement;
  if (parameters_ != nullptr) parameters_->apply(scratch_);
  scratch_.operation = sql::operation_name(scratch_.text);
  statements_++;
  for (StatementSink* out : outputs_) out->on_statement(scratch_);
}

}  // namespace dbwarden::agent
