// SPDX-License-Identifier: Apache-2.0
//
// The state file and checkpoint records that tie the chain's files together.
//
// State file (<state_dir>/<log name>.state), one JSON object, replaced
// atomically (write to a temporary file, fsync, rename) after the records it
// names are on disk:
//   {"version":1,"file":"audit.jsonl","next_seq":N,"chain":"<hex of record N-1>",
//    "file_started_ns":T,"clean_stop":false}
// It lets the agent continue the chain after a restart and lets
// verify-audit notice that the newest records were removed. clean_stop is
// true only in the update an agent makes as it stops: a start that finds it
// false knows the previous agent crashed (recovery.h). Files written before
// the key existed read as clean.
//
// Checkpoint record (written at open, at each rotation as the first record of
// the new file, and every N records / T seconds); its seq and chain fields
// are appended like every record's:
//   {"time":"...","dbwarden.record_type":"checkpoint","dbwarden.reason":"open|rotation|interval",
//    "dbwarden.file":"audit.jsonl","dbwarden.file_records":N,"dbwarden.prev_file":"...",
//    "dbwarden.prev_chain":"<hex>","dbwarden.chain_alg":"sha256|hmac-sha256",
//    "dbwarden.records_dropped":N,"dbwarden.capture_dropped":{"ringbuf_full":N,...}
// capture_dropped (present once the capture has reported) holds the kernel's
// drop counters by reason as of the checkpoint: they live in pinned maps, so
// they also count what the ring lost while no agent was reading it, and the
// first checkpoint after a restart shows that loss.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/chain.h"
#include "common/status.h"

namespace dbwarden::audit {

struct ChainState {
  std::string file;  // base name of the active log file
  uint64_t next_seq = 0;
  Digest chain{};               // chain value of record next_seq - 1 (zeros when next_seq is 0)
  int64_t file_started_ns = 0;  // CLOCK_REALTIME when the active file was started
  bool clean_stop = true;       // written by an agent that stopped cleanly
};

std::string format_state(const ChainState& state);
Result<ChainState> parse_state(std::string_view text);
Result<ChainState> read_state_file(const std::string& path);
// write + fsync + rename + fsync of the directory; the file is 0600.
Status write_state_file(const std::string& path, const ChainState& state);

struct Checkpoint {
  int64_t unix_ns = 0;
  std::string_view reason;  // "open", "rotation", "interval"
  std::string_view file;
  uint64_t file_records = 0;
  std::string_view prev_file;  // empty: none
  Digest prev_chain{};
  std::string_view chain_alg;
  uint64_t records_dropped = 0;
  // Capture drop counters by reason; empty: not reported (no capture yet).
  const std::vector<std::pair<std::string, uint64_t>>* capture_dropped = nullptr;
};

// Appends the checkpoint's fields without the closing brace (the writer
// appends seq and chain, then the brace).
void append_checkpoint_prefix(const Checkpoint& checkpoint, std::string& out);

}  // namespace dbwarden::audit
