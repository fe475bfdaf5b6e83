// SPDX-License-Identifier: Apache-2.0
//
// Between a relay's decoder session and the agent's record sink: gives each decoded
// statement the decision it was judged with (dbwarden.policy.rule / .action), so a blocked
// statement, an allowed one and a logged one each leave exactly one record.
#pragma once

#include "protocol/statement.h"
#include "proxy/decision_log.h"
#include "proxy/judge.h"

namespace dbwarden::proxy {

class RecordAnnotator final : public StatementSink {
 public:
  RecordAnnotator(DecisionLog& log, Judge& judge, Dialect dialect, StatementSink& out)
      : log_(log), judge_(judge), dialect_(dialect), out_(out) {}

  void on_statement(const Statement& statement) override;

 private:
  DecisionLog& log_;
  Judge& judge_;
  Dialect dialect_;
  StatementSink& out_;
  Statement scratch_;
  MessageVerdict rejudged_;
};

}  // namespace dbwarden::proxy
