// SPDX-License-Identifier: Apache-2.0
//
// Where decoded statements go: the SQL analyser fills in what the wire does not
// say (the operation), then every output (audit log, metrics, later policy)
// receives the same record.
#pragma once

#include <vector>

#include "protocol/statement.h"

namespace dbwarden::agent {

class Pipeline : public StatementSink {
 public:
  explicit Pipeline(std::vector<StatementSink*> outputs) : outputs_(std::move(outputs)) {}
  void on_statement(const Statement& statement) override;
  uint64_t statements() const { return statements_; }

 private:
  std::vector<StatementSink*> outputs_;
  Statement scratch_;  // reused: copy-assignment keeps its string capacity
  uint64_t statements_ = 0;
};

}  // namespace dbwarden::agent
