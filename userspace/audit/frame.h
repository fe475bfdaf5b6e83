// SPDX-License-Identifier: Apache-2.0
//
// The framed audit trail (`--audit-format zst`, the default; issue 16): records
// are sealed a frame at a time instead of one by one.
//
// A frame is what the writer holds when it flushes (at most 100 ms or 256 KiB
// of records): JSON Lines whose records end in their seq field only,
//
//   {...record keys...,"dbwarden.seq":N}\n
//
// compressed as one zstd frame (RFC 8878 section 3.1.1, content size and
// checksum set), followed by its seal, a zstd *skippable* frame (section
// 3.1.2), which every zstd decoder skips: `zstdcat audit.jsonl.zst` prints the
// records and nothing else. The seal (64 bytes, integers little-endian):
//
//   offset  0  u32  0x184D2A5D       skippable-frame magic (variant 0xD)
//           4  u32  56               payload size
//           8  4    "DBWF"           the payload starts here
//          12  u8   1                version
//          13  3    zero
//          16  u64  first_seq        seq of the frame's first record
//          24  u32  records          how many records the frame holds (>= 1)
//          28  u32  data_bytes       size of the compressed frame just before
//          32  32   link             see below
//
//   link[k] = H(link[k-1] || seal bytes 8..32 || compressed frame k)
//
// with link[-1] = 32 zero bytes and H = SHA-256, or HMAC-SHA-256 keyed with
// the key file's bytes: the chain covers the compressed bytes (~10x fewer
// than the records) and the seal's own numbers. Checkpoints and recovery
// records (chain_state.h, recovery.h) are records inside frames; their
// prev_chain is the link of the last frame sealed before them. The state
// file's chain is the last sealed link and its next_seq the seq after that
// frame's last record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "audit/chain.h"
#include "common/status.h"

struct ZSTD_CCtx_s;  // zstd's handles, so this header needs no zstd.h
struct ZSTD_DCtx_s;

namespace dbwarden::audit {

inline constexpr uint32_t kSealMagic = 0x184D2A5D;
inline constexpr size_t kSealBytes = 64;
inline constexpr std::string_view kSealTag = "DBWF";
// A frame is sealed at this many bytes of records (or at the flush interval).
inline constexpr size_t kFrameMaxBytes = 256 * 1024;
// The largest frame a reader decompresses: more than any frame the writer
// makes (one record is at most a few MiB), so a hostile file cannot make a
// reader allocate much.
inline constexpr size_t kMaxFrameContentBytes = 64 * 1024 * 1024;

struct Seal {
  uint64_t first_seq = 0;
  uint32_t records = 0;
  uint32_t data_bytes = 0;
  Digest link{};
};

// The seal at `bytes` (at least kSealBytes), or nullopt when it is not one.
std::optional<Seal> parse_seal(std::string_view bytes);
// link[k] for the compressed frame `data` under `seal`'s numbers.
Digest seal_link(ChainHasher& hasher, const Digest& prev, const Seal& seal, std::string_view data);

// Appends `,"dbwarden.seq":N}\n` to a record body (a record without its
// closing brace) in `out`.
void append_seq_field(uint64_t seq, std::string& out);
// append_seq_field for the writer's records, which take consecutive seqs: the last
// field's digits are kept and counted up in place, so a record's field is one append
// rather than a number's formatting (~110 instructions a record on the writer thread).
class SeqFieldWriter {
 public:
  // Appends `,"dbwarden.seq":seq}\n`, as append_seq_field does, for any seq.
  void append(uint64_t seq, std::string& out);

 private:
  void format(uint64_t seq);
  // kSeqKey, the digits, "}\n"; bytes_ == 0 until the first append.
  char buf_[kSeqKey.size() + 20 + 2] = {};
  size_t bytes_ = 0;
  uint64_t last_ = 0;
};

// The seq of a framed record line (without its '\n'), and the line's body
// before the seq field; nullopt when the line does not end in one.
struct RecordSeq {
  std::string_view prefix;  // the record without `,"dbwarden.seq":N}`
  uint64_t seq = 0;
};
std::optional<RecordSeq> parse_record_seq(std::string_view line);
// The seq of a record line of either format (chain.h's or a framed one).
std::optional<uint64_t> record_seq(std::string_view line);

// Compresses a frame of records and seals it. One per writer thread.
class FrameSealer {
 public:
  static Result<std::unique_ptr<FrameSealer>> Create(int level);
  ~FrameSealer();
  FrameSealer(const FrameSealer&) = delete;
  FrameSealer& operator=(const FrameSealer&) = delete;
  // Appends the compressed `records` (records first_seq.. first_seq+count-1)
  // and their seal to `out`; `link` becomes the frame's link.
  Status seal(ChainHasher& hasher, std::string_view records, uint64_t first_seq, uint32_t count,
              Digest& link, std::string& out);

 private:
  FrameSealer() = default;
  ::ZSTD_CCtx_s* cctx_ = nullptr;
  std::unique_ptr<char[]> scratch_;  // a compressed frame, before it joins `out`
  size_t scratch_bytes_ = 0;
};

// One unit of a framed file: a zstd frame and, when the next frame is a seal,
// that seal. Rotated plain JSON Lines files compressed whole (`--audit-format
// jsonl`) hold data frames without seals.
struct FrameUnit {
  std::string_view data;     // a zstd frame (or a skippable frame that is no seal)
  std::optional<Seal> seal;  // the seal after it
  uint64_t offset = 0;       // of `data` in the input
  size_t bytes = 0;          // data plus seal
};

enum class SplitResult { kUnit, kNeedMore, kDamaged };
// split_unit's reason for a data frame whose seal was cut off.
inline constexpr std::string_view kSealTruncated = "truncated: the last frame's seal is incomplete";
// The unit at the start of `in` (more bytes may follow: a data frame at the
// very end of `in` needs more input to know whether its seal follows, unless
// `at_end`). kDamaged: the bytes are not a zstd frame; `*why` says what.
SplitResult split_unit(std::string_view in, bool at_end, FrameUnit& unit, std::string* why);

// True when `data` starts a zstd data frame (its magic number).
bool is_zstd_frame(std::string_view data);

// A whole file mapped read-only (readers of framed files walk it frame by
// frame; the page cache holds it, not the heap).
class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  MappedFile() = default;
  void* data_ = nullptr;
  size_t size_ = 0;
};

// True when the file's first frame is sealed (or its seal was cut off): a
// framed trail (--audit-format zst), not plain JSON Lines or a JSON Lines
// file compressed whole.
bool starts_with_sealed_frame(std::string_view file);

// Decompresses one data frame into `out` (replacing its contents).
class FrameDecoder {
 public:
  FrameDecoder();
  ~FrameDecoder();
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;
  Status decode(std::string_view frame, std::string& out);

 private:
  ::ZSTD_DCtx_s* dctx_;
};

}  // namespace dbwarden::audit
