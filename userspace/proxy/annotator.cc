// SPDX-License-Identifier: Apache-2.0
#include "proxy/annotator.h"

namespace dbwarden::proxy {

void RecordAnnotator::on_statement(const Statement& statement) {
  scratch_ = statement;
  const Verdict* v = log_.find(statement.text);
  if (v == nullptr && !statement.text.empty() && statement.connection != nullptr) {
    // Judged long ago (a prepared statement executed after many others): the same
    // question again gives the same answer unless the policy was reloaded since, and then
    // the newer answer is the one the statement ran under.
    judge_.judge(*statement.connection, dialect_, statement.text, !statement.text_truncated,
                 /*backslash_escapes=*/true, &rejudged_);
    if (!rejudged_.statements.empty()) v = &rejudged_.statements.front().verdict;
  }
  if (v != nullptr) {
    scratch_.policy_rule = v->rule;
    scratch_.policy_action = v->action;
  } else {
    // Nothing the policy judges (an unresolved prepared statement, a function call).
    scratch_.policy_rule.clear();
    scratch_.policy_action = "allow";
  }
  out_.on_statement(scratch_);
}

}  // namespace dbwarden::proxy
