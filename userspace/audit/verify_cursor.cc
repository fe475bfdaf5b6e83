// SPDX-License-Identifier: Apache-2.0
#include "audit/verify_cursor.h"

#include "audit/recovery.h"

namespace dbwarden::audit {
namespace {

// Where a record says what kind it is, if it is the trail's own: right after
// "time" (chain_state.cc, recovery.cc); statement records never have the key,
// so a statement is told apart without scanning its text.
constexpr std::string_view kRecordTypeKey = "\"dbwarden.record_type\":\"";
constexpr size_t kRecordTypeWithin = 96;

}  // namespace

void ChainCursor::begin_file(const std::string& name) {
  if (!file_base_.empty()) prev_file_base_ = file_base_;
  file_ = name;
  file_base_ = verify_base_name(name);
  file_records_ = 0;
  ++summary_.files;
}

std::optional<CursorFailure> ChainCursor::anchor(uint64_t first_seq,
                                                 const std::optional<CheckpointView>& cp) {
  anchored_ = true;
  if (cp && cp->chain_alg != hasher_.algorithm()) {
    return CursorFailure{
        hasher_.keyed()
            ? "the chain is plain SHA-256 (" + cp->chain_alg + "), but an HMAC key was given"
            : "the chain is keyed (" + cp->chain_alg + "): give the HMAC key (--hmac-key)",
        /*needs_key=*/true};
  }
  if (options_.partial && first_seq > 0) {
    if (!cp) {
      return CursorFailure{"cannot start mid-chain here: the first record is not a checkpoint"};
    }
    expect_seq_ = first_seq;
    prev_ = cp->prev_chain;
    summary_.notes.push_back("checked from record seq " + std::to_string(first_seq) +
                             " on (the chain before it was not given)");
  } else if (first_seq > 0) {
    return CursorFailure{"the chain does not start here: the first record has seq " +
                         std::to_string(first_seq) + " (" +
                         (cp && !cp->prev_file.empty() ? "file '" + cp->prev_file + "'"
                                                       : std::string("earlier records")) +
                         " missing; --partial checks from this checkpoint on)"};
  }
  summary_.first_seq = expect_seq_;
  return std::nullopt;
}

std::optional<std::string> ChainCursor::record(uint64_t seq, std::string_view prefix,
                                               const Digest& link_before, uint64_t where) {
  if (prefix.substr(0, kRecordTypeWithin).find(kRecordTypeKey) == std::string_view::npos) {
    ++summary_.statements;
    open_seq_.reset();
  } else if (is_checkpoint(prefix)) {
    const auto cp = parse_checkpoint_view(prefix);
    if (!cp) return "malformed checkpoint record";
    if (cp->prev_chain != link_before || cp->file_records != file_records_) {
      return "checkpoint disagrees with the records before it (file_records " +
             std::to_string(cp->file_records) + ", counted " + std::to_string(file_records_) + ")";
    }
    if (cp->reason == "rotation" && !prev_file_base_.empty() && file_records_ == 0 &&
        cp->prev_file != prev_file_base_) {
      summary_.notes.push_back(file_ + ": follows '" + cp->prev_file + "', given after '" +
                               prev_file_base_ + "' (renamed?)");
    }
    ++summary_.checkpoints;
    open_seq_ = cp->reason == "open" ? std::optional<uint64_t>(seq) : std::nullopt;
  } else if (is_approval(prefix)) {
    // A step of the approvals path (agent/approval_events.h): chained like a statement.
    ++summary_.approvals;
    open_seq_.reset();
  } else {
    auto r = parse_recovery(prefix);
    if (!r) return "malformed record of the trail's own (neither checkpoint nor recovery)";
    // It must follow the record it names as the last good one, or the open
    // checkpoint right after it: a recovery record cannot excuse records
    // missing before it.
    const uint64_t after = r->last_good_seq ? *r->last_good_seq + 1 : 0;
    if (seq != after && !(seq == after + 1 && open_seq_ == after)) {
      return "recovery record disagrees with the chain (last good seq " +
             (r->last_good_seq ? std::to_string(*r->last_good_seq) : "none") + ", its own seq " +
             std::to_string(seq) + ")";
    }
    summary_.recoveries.push_back({file_, where, seq, std::move(*r), framed_});
    open_seq_.reset();
  }
  ++file_records_;
  ++summary_.records;
  return std::nullopt;
}

std::optional<std::string> ChainCursor::advance(uint64_t next_seq, const Digest& link) {
  if (options_.state && next_seq == options_.state->next_seq) {
    if (link != options_.state->chain) {
      return "the state file's chain head after seq " + std::to_string(next_seq - 1) +
             " differs: the log was rewritten";
    }
    state_seen_ = true;
  }
  prev_ = link;
  expect_seq_ = next_seq;
  return std::nullopt;
}

std::optional<ChainEndFailure> ChainCursor::finish() {
  summary_.next_seq = expect_seq_;
  summary_.head = prev_;
  if (summary_.failure) return std::nullopt;
  return check_chain_end(options_.state, summary_.records, summary_.first_seq, expect_seq_,
                         state_seen_, summary_.notes);
}

}  // namespace dbwarden::audit
