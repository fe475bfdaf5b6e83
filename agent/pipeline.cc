// SPDX-License-Identifier: Apache-2.0
#include "agent/pipeline.h"

#include <optional>
#include <string>
#include <vector>

#include "sql/dialect.h"

namespace dbwarden::agent {

namespace {

// Most statements have no error message and no statement name: clearing is
// inline, an assignment is a call even from an empty string.
void assign(std::string& to, const std::string& from) {
  if (from.empty()) {
    to.clear();
  } else {
    to = from;
  }
}

// What a decoder fills in, copied into the reused statement; the analyser's
// fields are left out, since on_statement assigns them right after (a whole
// copy assigned each of them twice). Each assignment reuses the capacity of
// the previous statement's strings.
void copy_decoded(const Statement& from, Statement& to) {
  // A new Statement field must be copied here (or be an analysis field);
  // this size makes the one who adds it look.
  static_assert(sizeof(Statement) ==
                    11 * sizeof(std::string) + 4 * sizeof(uint64_t) +
                        sizeof(std::optional<uint64_t>) + 2 * sizeof(std::vector<std::string>) +
                        4 * 8 /* four flags, each padded */ + sizeof(void*) /* connection */ +
                        2 * sizeof(uint32_t) /* masked_* */ + sizeof(std::vector<MaskedCount>),
                "copy the new Statement field in copy_decoded()");
  to.connection = from.connection;
  to.start_ns = from.start_ns;
  to.end_ns = from.end_ns;
  assign(to.text, from.text);
  to.text_truncated = from.text_truncated;
  assign(to.status_code, from.status_code);
  assign(to.sqlstate, from.sqlstate);
  assign(to.error_message, from.error_message);
  to.returned_rows = from.returned_rows;
  assign(to.command_tag, from.command_tag);
  assign(to.statement_name, from.statement_name);
  to.capture_gap = from.capture_gap;
  to.request_bytes = from.request_bytes;
  to.response_bytes = from.response_bytes;
  to.parameters = from.parameters;
  to.statement_unresolved = from.statement_unresolved;
  assign(to.policy_rule, from.policy_rule);
  assign(to.policy_action, from.policy_action);
  to.masked_columns = from.masked_columns;
  to.masked_values = from.masked_values;
  to.masked_by = from.masked_by;
}

}  // namespace

void Pipeline::on_statement(const Statement& statement) {
  copy_decoded(statement, scratch_);
  if (parameters_ != nullptr) parameters_->apply(scratch_);
  const sql::Dialect dialect = sql::dialect_of(
      statement.connection != nullptr ? std::string_view(statement.connection->db_system)
                                      : std::string_view());
  // Credentials go first, before any output or log line sees the statement:
  // found in the analyser's own token pass, so a statement without any pays
  // one look per token (sql/redact.h).
  const sql::Analysis& a = analyzer_.analyze(dialect, scratch_.text, redaction_);
  // Only what was removed counts: PASSWORD(?) prepared without values is not.
  scratch_.redacted = redaction_.text_redacted;
  if (redaction_.text_redacted) scratch_.text.swap(redaction_.text);
  if (!scratch_.parameters.empty() && sql::redact_parameters(redaction_, scratch_.parameters)) {
    scratch_.redacted = true;
  }
  if (!scratch_.error_message.empty() && sql::scrub_secrets(redaction_, scratch_.error_message)) {
    scratch_.redacted = true;
  }
  // Assignments reuse scratch_'s capacity: no allocation once it has grown.
  scratch_.operation = a.operation;
  scratch_.summary = a.summary;
  scratch_.fingerprint = a.fingerprint;
  scratch_.collections = a.collections;
  scratch_.unbounded_write = a.unbounded_write;
  // After the analysis: it read the literals (the fingerprint does not depend on them),
  // and no output has seen them yet.
  if (scrub_ != nullptr && scrub_->scrub(scratch_) != 0) scratch_.redacted = true;
  if (scratch_.redacted) ++redacted_;
  statements_++;
  for (StatementSink* out : outputs_) out->on_statement(scratch_);
}

}  // namespace dbwarden::agent
