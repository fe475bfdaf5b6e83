// SPDX-License-Identifier: Apache-2.0
//
// Between a relay's decoder session and the agent's record sink: gives each decoded
// statement the decision it was judged with (dbwarden.policy.rule / .action), so a blocked
// statement, an allowed one and a logged one each leave exactly one record.
//
// The decision travels beside the statement (RecordSink), not written into a copy of it:
// the sink that keeps a record (the agent's queue to its pipeline) copies it once anyway
// and writes the decision in as it does, so the proxy's thread copies no statement.
#pragma once

#include <string_view>

#include "protocol/statement.h"
#include "proxy/decision_log.h"
#include "proxy/judge.h"
#include "proxy/mask_plan.h"

namespace dbwarden::proxy {

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // `statement` and its connection are valid for the call only; `rule` and `action` are
  // what its policy_rule and policy_action say in the record; `masks` (null: none) what
  // its masked_* fields say.
  virtual void on_record(const Statement& statement, std::string_view rule, std::string_view action,
                         const MaskTally* masks) = 0;
};

// For a sink of whole statements (tests, fuzzing): the decision written into a copy.
class DecisionWriter final : public RecordSink {
 public:
  explicit DecisionWriter(StatementSink& out) : out_(out) {}
  void on_record(const Statement& statement, std::string_view rule, std::string_view action,
                 const MaskTally* masks) override;

 private:
  StatementSink& out_;
  Statement scratch_;
};

class RecordAnnotator final : public StatementSink {
 public:
  RecordAnnotator(DecisionLog& log, Judge& judge, Dialect dialect, RecordSink& out)
      : log_(log), judge_(judge), dialect_(dialect), out_(out) {}
  // The relay's masked-value counts, taken by each record's text (null: none).
  void set_tallies(MaskTallies* tallies) { tallies_ = tallies; }

  void on_statement(const Statement& statement) override;

 private:
  DecisionLog& log_;
  Judge& judge_;
  Dialect dialect_;
  RecordSink& out_;
  MaskTallies* tallies_ = nullptr;
  MessageVerdict rejudged_;
};

}  // namespace dbwarden::proxy
