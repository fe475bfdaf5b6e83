// SPDX-License-Identifier: Apache-2.0
//
// The chain bookkeeping both verifiers share (verify.cc checks a chain value
// per record, verify_frames.cc one seal per frame): where the chain starts,
// the seq and link it continues from, the records counted per file, the rules
// for the trail's own records (checkpoints and recovery records) and the
// state file's chain head. What differs between the two (how a link is
// checked, how a bad one is explained) stays in each verifier.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "audit/chain.h"
#include "audit/verify.h"
#include "audit/verify_parse.h"

namespace dbwarden::audit {

struct CursorFailure {
  std::string reason;
  bool needs_key = false;
};

class ChainCursor {
 public:
  // `summary` is the verifier's: files, records, statements, checkpoints,
  // recoveries, notes, first_seq, next_seq and head are kept here.
  ChainCursor(const VerifyOptions& options, const ChainHasher& hasher, VerifySummary& summary,
              bool framed)
      : options_(options), hasher_(hasher), summary_(summary), framed_(framed) {}

  void begin_file(const std::string& name);
  const std::string& file() const { return file_; }
  const std::string& prev_file_base() const { return prev_file_base_; }

  bool anchored() const { return anchored_; }
  // The chain's first record (or frame) has `first_seq`; `cp` is that record
  // read as a checkpoint, if it is one. Checks the chain's algorithm against
  // the key given and where the chain may start (--partial).
  std::optional<CursorFailure> anchor(uint64_t first_seq, const std::optional<CheckpointView>& cp);

  uint64_t expect_seq() const { return expect_seq_; }
  const Digest& prev() const { return prev_; }

  // One record whose chain (or frame seal) matched, in order. `link_before`
  // is what its checkpoint must name as prev_chain (the chain value before the
  // record, or the seal before its frame); `where` is the line (frame) number
  // a recovery record is listed with. Counts it; nullopt when it is fine.
  std::optional<std::string> record(uint64_t seq, std::string_view prefix,
                                    const Digest& link_before, uint64_t where);
  // The chain continues from `link`, `next_seq` next (after a record, or
  // after a frame's last record). Checks the state file's head there.
  std::optional<std::string> advance(uint64_t next_seq, const Digest& link);

  // The end of the chain: next_seq and head into the summary, and the state
  // file's verdict on the end.
  std::optional<ChainEndFailure> finish();

 private:
  const VerifyOptions& options_;
  const ChainHasher& hasher_;
  VerifySummary& summary_;
  const bool framed_;
  std::string file_, file_base_, prev_file_base_;
  uint64_t file_records_ = 0;
  bool anchored_ = false;
  uint64_t expect_seq_ = 0;
  Digest prev_{};
  bool state_seen_ = false;
  std::optional<uint64_t> open_seq_;  // seq of an "open" checkpoint just accepted
};

}  // namespace dbwarden::audit
