// SPDX-License-Identifier: Apache-2.0
//
// Where decoded statements go: credentials are cut out of the text, bound
// values and error message (sql/redact.h), the SQL analyser fills in what the
// wire does not say (operation, summary, fingerprint, tables, unbounded
// write), then every output (audit log, metrics, later policy) receives the
// same record. No output ever sees the statement before redaction.
#pragma once

#include <vector>

#include "agent/content_scrub.h"
#include "agent/parameter_policy.h"
#include "protocol/statement.h"
#include "sql/analyzer.h"
#include "sql/redact.h"

namespace dbwarden::agent {

class Pipeline : public StatementSink {
 public:
  // `parameters` (null: keep them) is applied to every statement before any
  // output sees it; it must outlive the pipeline.
  explicit Pipeline(std::vector<StatementSink*> outputs,
                    const ParameterPolicy* parameters = nullptr)
      : outputs_(std::move(outputs)), parameters_(parameters) {}
  void on_statement(const Statement& statement) override;
  // The policy's content detectors (agent/content_scrub.h), run over text, bound values,
  // error message and summary after the credentials are cut; null: none. Must outlive it.
  void set_scrub(const ContentScrub* scrub) { scrub_ = scrub; }
  uint64_t statements() const { return statements_; }
  // Statements that had a credential, or an item a content detector masked.
  uint64_t redacted() const { return redacted_; }
  const sql::Analyzer& analyzer() const { return analyzer_; }

 private:
  std::vector<StatementSink*> outputs_;
  const ParameterPolicy* parameters_;
  const ContentScrub* scrub_ = nullptr;
  sql::Analyzer analyzer_;
  sql::Redaction redaction_;  // reused: keeps its buffers' capacity
  Statement scratch_;         // reused: copy-assignment keeps its string capacity
  uint64_t statements_ = 0;
  uint64_t redacted_ = 0;
};

}  // namespace dbwarden::agent
