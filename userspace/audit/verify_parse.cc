// SPDX-License-Identifier: Apache-2.0
#include "audit/verify_parse.h"

#include <nlohmann/json.hpp>

#include "audit/compress.h"

namespace dbwarden::audit {

std::optional<ChainEndFailure> check_chain_end(const std::optional<ChainState>& state,
                                               uint64_t records, uint64_t first_seq,
                                               uint64_t next_seq, bool state_seen,
                                               std::vector<std::string>& notes) {
  if (records == 0) return ChainEndFailure{"no audit records", false};
  if (!state) {
    notes.push_back("no state file given: removal of the newest records is not detectable");
    return std::nullopt;
  }
  if (state->next_seq > next_seq) {
    return ChainEndFailure{"missing tail: the state file says the chain has " +
                               std::to_string(state->next_seq) + " records, the log ends after " +
                               std::to_string(next_seq) + " (the newest records were removed)",
                           true};
  }
  if (state->next_seq > first_seq && !state_seen) {
    return ChainEndFailure{"the state file's chain head was not found in the log", false};
  }
  if (state->next_seq < next_seq) {
    notes.push_back(std::to_string(next_seq - state->next_seq) +
                    " records were written after the state file's last update");
  }
  return std::nullopt;
}

std::string verify_base_name(const std::string& path) {
  std::string b = path.substr(path.find_last_of('/') + 1);
  if (b.size() > kZstdSuffix.size() && b.ends_with(kZstdSuffix)) {
    b.resize(b.size() - kZstdSuffix.size());
  }
  return b;
}

std::optional<CheckpointView> parse_checkpoint_view(std::string_view prefix) {
  if (prefix.find(kCheckpointMarker) == std::string_view::npos) return std::nullopt;
  std::string canonical(prefix);
  canonical.push_back('}');
  const auto j = nlohmann::json::parse(canonical, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto str = [&](const char* key, std::string& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  CheckpointView c;
  std::string type, prev_chain;
  if (!str("dbwarden.record_type", type) || type != "checkpoint" ||
      !str("dbwarden.reason", c.reason) || !str("dbwarden.prev_file", c.prev_file) ||
      !str("dbwarden.chain_alg", c.chain_alg) || !str("dbwarden.prev_chain", prev_chain) ||
      !parse_hex(prev_chain, c.prev_chain)) {
    return std::nullopt;
  }
  auto fr = j.find("dbwarden.file_records");
  if (fr == j.end() || !fr->is_number_unsigned()) return std::nullopt;
  c.file_records = fr->get<uint64_t>();
  return c;
}

}  // namespace dbwarden::audit
