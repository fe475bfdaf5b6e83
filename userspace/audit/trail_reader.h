// SPDX-License-Identifier: Apache-2.0
//
// Reads an audit trail back as JSON Lines, for `dbwarden audit cat` and log
// shippers: the files in chain order (rotated `.zst` files decoded), then the
// active file, and with `follow` the active file as it grows and across its
// rotations (like `tail -F`, but never a partial record).
//
// Only complete lines leave the reader: a record the writer is still writing,
// or one torn by a crash (which the next agent cuts off, see recovery.h), is
// held back until its '\n' arrives, and dropped at a rotation or the end.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dbwarden::audit {

using LineSink = std::function<void(std::string_view)>;  // one or more whole lines

// Every complete line of `path` (plain, or .zst decoded). `*partial`
// (optional) receives the bytes after the last one (a record still being
// written, or torn).
Status cat_audit_file(const std::string& path, const LineSink& sink, uint64_t* partial = nullptr);

struct FollowOptions {
  std::chrono::milliseconds poll{200};  // how often to look for growth and rotation
  std::function<bool()> stop;           // checked every poll; true ends follow_audit_file
  // CLOCK_REALTIME from which on rotated files may hold records not printed
  // yet (when the caller started reading the trail); 0: now.
  int64_t since_unix_ns = 0;
};

// Prints the records of the active file `path` after seq `printed_up_to`
// (all when nullopt), as it grows; when it is renamed away (rotation), what is
// left of it and the new file from its start. Each record once, in seq order:
// files rotated while the caller or the follower was not looking are found by
// the gap in seqs. Returns when options.stop() is true (Ok) or on a read error.
Status follow_audit_file(const std::string& path, std::optional<uint64_t> printed_up_to,
                         const LineSink& sink, const FollowOptions& options);

}  // namespace dbwarden::audit
