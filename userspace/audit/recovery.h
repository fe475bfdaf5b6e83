// SPDX-License-Identifier: Apache-2.0
//
// Continuing the trail after a crash (SIGKILL, OOM kill, power loss).
//
// The state file lags the log by design (it is updated at most once a
// second, after the records it names are synced), so after a crash the log
// is normally *ahead* of it. The writer then continues after the log's last
// complete record: a line that ends in '\n' and in well-formed seq and chain
// fields. Bytes after that line (a record torn by the kill, or pages the
// kernel never wrote before a power loss) are cut off; they are kept in a
// hidden side file `.<log name>.cut.<UTC stamp>` next to the log, so nothing
// is destroyed, and the cut is recorded in the chain by a recovery record:
//
//   {"time":"...","dbwarden.record_type":"recovery","dbwarden.reason":"crash",
//    "dbwarden.file":"audit.jsonl","dbwarden.last_good_seq":N,"dbwarden.bytes_cut":B,
//    "dbwarden.cut_file":".audit.jsonl.cut.<stamp>" or "","dbwarden.state_next_seq":S
//    ,"dbwarden.seq":N+1,"dbwarden.chain":"..."}
//
// last_good_seq is the seq of the record before it (null when the trail had
// none), state_next_seq what the state file said. verify-audit reports each
// recovery record and checks that it follows its last good record.
//
// A log *behind* its state file lost records the state had seen synced: that
// is removal, not a crash, and stays a verification failure (the writer cuts
// nothing then and continues from the state, so the gap shows).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "audit/chain.h"
#include "common/status.h"

namespace dbwarden::audit {

inline constexpr std::string_view kRecoveryMarker = "\"dbwarden.record_type\":\"recovery\"";

// The last complete record of a file, found from its end.
struct TailScan {
  bool found = false;  // a complete record line exists (within the scanned tail)
  uint64_t seq = 0;    // its seq and chain value
  Digest chain{};
  uint64_t good_end = 0;  // file offset just past its '\n'; 0 when !found
};
// Reads the file backward from `size` (at most 64 MiB of it).
TailScan scan_tail(int fd, uint64_t size);
// The same for a framed file (frame.h): its last complete frame, a data frame
// followed by its seal; seq is the frame's last record's, chain its link.
// Bytes after it (a frame torn by a kill) are what recovery cuts off.
TailScan scan_frame_tail(int fd, uint64_t size);
// The records in a framed file's frames before `end` (a seal's end), read
// back seal by seal.
uint64_t count_frame_records(int fd, uint64_t end);

// The newest rotated file of the log `base` in `dir`
// (`<base>.YYYYMMDDTHHMMSS.uuuuuuZ<suffix>`: suffix "" for a plain file not
// yet compressed, ".zst" for a framed one), or "" when there is none. After a
// crash during rotation the active file may be missing or empty while this
// one holds the newest records.
std::string newest_rotated_file(const std::string& dir, const std::string& base,
                                std::string_view suffix = "");

// Copies bytes [from, to) of `fd` into a new file `path` (0600, synced).
Status save_cut_bytes(int fd, uint64_t from, uint64_t to, const std::string& path);

struct RecoveryRecord {
  int64_t unix_ns = 0;
  std::string_view file;                  // the log file's base name
  std::optional<uint64_t> last_good_seq;  // nullopt: no record before it
  uint64_t bytes_cut = 0;
  std::string_view cut_file;               // base name of the side file; empty when nothing was cut
  std::optional<uint64_t> state_next_seq;  // nullopt: there was no state file
};
// Appends the record's fields without the closing brace (the writer appends
// seq and chain, then the brace).
void append_recovery_prefix(const RecoveryRecord& r, std::string& out);

// A recovery record's fields as verify-audit reads them back from its
// canonical prefix; nullopt when the line is not a well-formed one.
struct RecoveryView {
  std::string time;
  std::string file;
  std::string cut_file;
  std::optional<uint64_t> last_good_seq;
  uint64_t bytes_cut = 0;
  std::optional<uint64_t> state_next_seq;
};
std::optional<RecoveryView> parse_recovery(std::string_view prefix);

}  // namespace dbwarden::audit
