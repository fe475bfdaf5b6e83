// SPDX-License-Identifier: Apache-2.0
#include "agent/pipeline.h"

#include "sql/dialect.h"

namespace dbwarden::agent {

void Pipeline::on_statement(const Statement& statement) {
  scratch_ = statement;
  if (parameters_ != nullptr) parameters_->apply(scratch_);
  const sql::Dialect dialect = sql::dialect_of(
      statement.connection != nullptr ? std::string_view(statement.connection->db_system)
                                      : std::string_view());
  const sql::Analysis& a = analyzer_.analyze(dialect, scratch_.text);
  // Assignments reuse scratch_'s capacity: no allocation once it has grown.
  scratch_.operation = a.operation;
  scratch_.summary = a.summary;
  scratch_.fingerprint = a.fingerprint;
  scratch_.collections = a.collections;
  scratch_.unbounded_write = a.unbounded_write;
  statements_++;
  for (StatementSink* out : outputs_) out->on_statement(scratch_);
}

}  // namespace dbwarden::agent
