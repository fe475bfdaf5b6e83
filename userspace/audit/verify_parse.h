// SPDX-License-Identifier: Apache-2.0
//
// What both verifiers (verify.cc for plain JSON Lines, verify_frames.cc for
// framed trails) read out of the trail's own records.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/chain.h"
#include "audit/chain_state.h"

namespace dbwarden::audit {

inline constexpr std::string_view kCheckpointMarker = "\"dbwarden.record_type\":\"checkpoint\"";

// A checkpoint record's fields (chain_state.h), from its canonical prefix.
struct CheckpointView {
  std::string reason, prev_file, chain_alg;
  uint64_t file_records = 0;
  Digest prev_chain{};
};
// nullopt when `prefix` (a record without its closing brace) is not a
// well-formed checkpoint.
std::optional<CheckpointView> parse_checkpoint_view(std::string_view prefix);
inline bool is_checkpoint(std::string_view prefix) {
  return prefix.find(kCheckpointMarker) != std::string_view::npos;
}
// A record of an approval step (agent/approval_events.h) names its type right after time.
inline constexpr std::string_view kApprovalMarker = "\"dbwarden.record_type\":\"approval\"";
inline bool is_approval(std::string_view prefix) {
  return prefix.substr(0, 96).find(kApprovalMarker) != std::string_view::npos;
}

// The end of a verified chain against the state file (or the note that
// there is none): a failure, or nullopt with `notes` added to. `past_end`: the
// failure is the missing tail, after the last record.
struct ChainEndFailure {
  std::string reason;
  bool past_end = false;
};
std::optional<ChainEndFailure> check_chain_end(const std::optional<ChainState>& state,
                                               uint64_t records, uint64_t first_seq,
                                               uint64_t next_seq, bool state_seen,
                                               std::vector<std::string>& notes);

// A file's base name less ".zst": how checkpoints name files.
std::string verify_base_name(const std::string& path);

}  // namespace dbwarden::audit
