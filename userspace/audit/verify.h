// SPDX-License-Identifier: Apache-2.0
//
// Checks an audit trail written by JsonlWriter (see chain.h for the chain,
// frame.h for a framed trail's,
// chain_state.h for checkpoints and the state file): recomputes every chain
// value in order across files, and names the first bad record with the most
// likely cause (edited, deleted, reordered, inserted, truncated, a missing
// file, a missing tail against the state file). Recovery records (a writer
// that continued after a crash, recovery.h) are valid records: they are
// listed apart, never taken for tampering.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/chain.h"
#include "audit/chain_state.h"
#include "audit/recovery.h"
#include "common/status.h"

namespace dbwarden::audit {

class ChainCursor;  // verify_cursor.h

struct VerifyOptions {
  std::string hmac_key;  // the key itself (see load_hmac_key); empty: SHA-256
  std::optional<ChainState> state;
  // Start at the first file's first checkpoint instead of at record 0 (for
  // trails whose oldest files were archived elsewhere).
  bool partial = false;
  size_t max_line_bytes = 64 * 1024 * 1024;
};

struct VerifyFailure {
  std::string file;
  uint64_t line = 0;  // 1-based; 0 when the problem is the file itself
  std::string reason;
  bool needs_key = false;  // the chain is keyed and no (or the wrong kind of) key was given
};

// A recovery record found in the chain.
struct VerifyRecovery {
  std::string file;
  uint64_t line = 0;  // framed: the frame's number (1-based)
  uint64_t seq = 0;
  RecoveryView record;
  bool framed = false;
};

struct VerifySummary {
  uint64_t files = 0;
  uint64_t records = 0;
  uint64_t statements = 0;
  uint64_t checkpoints = 0;
  uint64_t approvals = 0;  // approval steps (requested, approved, denied, ...)
  uint64_t first_seq = 0;
  uint64_t next_seq = 0;
  Digest head{};
  std::vector<std::string> notes;
  std::vector<VerifyRecovery> recoveries;
  std::optional<VerifyFailure> failure;
  bool valid() const { return !failure.has_value(); }
};

// Streaming verifier: begin_file, feed bytes (any split), end_file, ...,
// finish. Stops at the first failure. Memory is bounded by max_line_bytes.
class ChainVerifier {
 public:
  static Result<std::unique_ptr<ChainVerifier>> Create(VerifyOptions options);
  ~ChainVerifier();

  void begin_file(const std::string& name);
  void feed(std::string_view bytes);
  // `damaged` reports a problem with the file itself (corrupt compression).
  void end_file(std::optional<std::string> damaged = std::nullopt);
  void finish();
  const VerifySummary& summary() const { return summary_; }
  bool failed() const { return summary_.failure.has_value(); }

 private:
  struct Pending;
  explicit ChainVerifier(VerifyOptions options);
  void on_line(std::string_view line);
  void accept(const RecordChain& rc);
  void finalize_pending(const std::string_view* next);
  void fail(uint64_t line, std::string reason, bool needs_key = false);

  VerifyOptions options_;
  std::unique_ptr<ChainHasher> hasher_;
  VerifySummary summary_;
  std::unique_ptr<ChainCursor> cursor_;
  uint64_t line_ = 0;
  std::string partial_;
  std::unique_ptr<Pending> pending_;
};

// Expands directories into their log files in chain order (rotated files by
// time stamp, then the active file); files are kept as given. Sets
// *state_file to the directory's state file when there is one.
Result<std::vector<std::string>> expand_audit_paths(const std::vector<std::string>& paths,
                                                    std::string* state_file);

// Verifies the files in order (plain or .zst). An error Status means a file
// could not be read at all; a damaged file is a failure in the summary. A
// trail whose first file starts with a sealed frame is a framed one.
Result<VerifySummary> verify_audit_files(const std::vector<std::string>& files,
                                         VerifyOptions options);
// The framed trail's verifier (verify_frames.cc): a failure names the frame
// (1-based, and its byte offset) and the record seqs its seal claims.
Result<VerifySummary> verify_framed_files(const std::vector<std::string>& files,
                                          VerifyOptions options);
// The same over files already in memory (name, bytes), for the fuzzer.
Result<VerifySummary> verify_framed_buffers(
    const std::vector<std::pair<std::string, std::string_view>>& files, VerifyOptions options);
// True when the first non-empty of `files` is framed (frame.h).
Result<bool> is_framed_trail(const std::vector<std::string>& files);

}  // namespace dbwarden::audit
