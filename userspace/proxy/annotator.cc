// SPDX-License-Identifier: Apache-2.0
#include "proxy/annotator.h"

namespace dbwarden::proxy {

void DecisionWriter::on_record(const Statement& statement, std::string_view rule,
                               std::string_view action, const MaskTally* masks) {
  scratch_ = statement;
  scratch_.policy_rule.assign(rule);
  scratch_.policy_action.assign(action);
  if (masks != nullptr) masks->add_to(scratch_);
  out_.on_statement(scratch_);
}

void RecordAnnotator::on_statement(const Statement& statement) {
  const Verdict* v = log_.find(statement.text);
  if (v == nullptr && !statement.text.empty() && statement.connection != nullptr) {
    // Judged long ago (a prepared statement executed after many others): the same
    // question again gives the same answer unless the policy was reloaded since, and then
    // the newer answer is the one the statement ran under.
    judge_.judge(*statement.connection, dialect_, statement.text, !statement.text_truncated,
                 /*backslash_escapes=*/true, /*prepared=*/nullptr, &rejudged_);
    if (!rejudged_.statements.empty()) v = &rejudged_.statements.front().verdict;
  }
  // Without a verdict: nothing the policy judges (an unresolved prepared statement, a
  // function call).
  const MaskTally* masks = tallies_ != nullptr ? tallies_->take(statement.text) : nullptr;
  if (v != nullptr) {
    out_.on_record(statement, v->rule, v->action, masks);
  } else {
    out_.on_record(statement, {}, "allow", masks);
  }
}

}  // namespace dbwarden::proxy
