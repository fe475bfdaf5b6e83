// SPDX-License-Identifier: Apache-2.0
//
// verify-audit for framed trails (frame.h): the chain is checked a frame at a
// time (one hash over the compressed bytes), then every record inside it
// (seqs in order, as many as the seal says, checkpoints and recovery records
// as in verify.cc). A failure names the frame, its byte offset and the record
// seqs its seal claims.
#include <algorithm>
#include <cstring>

#include "audit/frame.h"
#include "audit/verify.h"
#include "audit/verify_cursor.h"
#include "audit/verify_parse.h"

namespace dbwarden::audit {
namespace {

std::string seq_range(const Seal& s) {
  if (s.records == 1) return "record seq " + std::to_string(s.first_seq);
  return "records seq " + std::to_string(s.first_seq) + ".." +
         std::to_string(s.first_seq + s.records - 1);
}

std::string missing(uint64_t from, uint64_t to_exclusive) {
  if (to_exclusive - from == 1) return "record seq " + std::to_string(from) + " is";
  return "records seq " + std::to_string(from) + ".." + std::to_string(to_exclusive - 1) + " are";
}

class FrameChainVerifier {
 public:
  FrameChainVerifier(VerifyOptions options, std::unique_ptr<ChainHasher> hasher)
      : options_(std::move(options)),
        hasher_(std::move(hasher)),
        cursor_(options_, *hasher_, summary_, /*framed=*/true) {}

  void file(const std::string& name, std::string_view bytes) {
    cursor_.begin_file(name);
    frame_ = 0;
    if (bytes.empty()) {
      summary_.notes.push_back(name + ": empty file");
      return;
    }
    uint64_t offset = 0;
    while (!bytes.empty() && !failed()) {
      FrameUnit unit;
      std::string why;
      if (split_unit(bytes, /*at_end=*/true, unit, &why) != SplitResult::kUnit) {
        if (pending_) finalize_pending(nullptr);
        fail_at(frame_ + 1, offset, why + " (" + std::to_string(bytes.size()) + " bytes)");
        return;
      }
      unit.offset = offset;
      ++frame_;
      on_unit(unit, bytes.size() - unit.bytes < kSealBytes);
      offset += unit.bytes;
      bytes.remove_prefix(unit.bytes);
    }
    if (pending_) finalize_pending(nullptr);
  }

  void finish() {
    if (pending_) finalize_pending(nullptr);
    if (auto f = cursor_.finish()) summary_.failure = VerifyFailure{cursor_.file(), 0, f->reason};
  }

  VerifySummary& summary() { return summary_; }

 private:
  struct Pending {
    uint64_t frame, offset;
    std::string data;
    Seal seal;
  };

  bool failed() const { return summary_.failure.has_value(); }

  void fail_at(uint64_t frame, uint64_t offset, const std::string& reason, bool needs_key = false) {
    if (failed()) return;
    summary_.failure = VerifyFailure{
        cursor_.file(), 0,
        "frame " + std::to_string(frame) + " (at byte " + std::to_string(offset) + "): " + reason,
        needs_key};
  }
  void fail_unit(const FrameUnit& u, const Seal& s, const std::string& reason,
                 bool needs_key = false) {
    fail_at(frame_, u.offset, "holding " + seq_range(s) + ": " + reason, needs_key);
  }

  bool continues(const Seal& s, std::string_view data, uint64_t seq, const Digest& prev) {
    return s.first_seq == seq && seal_link(*hasher_, prev, s, data) == s.link;
  }

  void on_unit(const FrameUnit& u, bool last) {
    if (!u.seal) {
      if (pending_) finalize_pending(nullptr);
      fail_at(frame_, u.offset,
              last ? "truncated: the last frame has no seal (the file was cut)"
                   : "damaged or inserted: a frame without a seal");
      return;
    }
    if (pending_) {
      finalize_pending(&u);
      if (failed()) return;
    }
    const Seal& s = *u.seal;
    if (!cursor_.anchored() && !anchor(u)) return;
    if (continues(s, u.data, cursor_.expect_seq(), cursor_.prev())) {
      accept(u);
      return;
    }
    pending_ = std::make_unique<Pending>(Pending{frame_, u.offset, std::string(u.data), s});
  }

  // The first frame: the chain's algorithm, and where it starts.
  bool anchor(const FrameUnit& u) {
    std::optional<CheckpointView> cp;
    if (decoder_.decode(u.data, records_).ok()) {
      const size_t nl = records_.find('\n');
      if (auto rs = parse_record_seq(std::string_view(records_).substr(0, nl))) {
        cp = parse_checkpoint_view(rs->prefix);
      }
    }
    if (auto f = cursor_.anchor(u.seal->first_seq, cp)) {
      fail_unit(u, *u.seal, f->reason, f->needs_key);
      return false;
    }
    return true;
  }

  // A frame whose link matched: its records must be the ones the seal names.
  void accept(const FrameUnit& u) {
    const Seal& s = *u.seal;
    if (Status st = decoder_.decode(u.data, records_); !st.ok()) {
      fail_unit(u, s, st.message() + " (yet its seal matches: written damaged)");
      return;
    }
    const Digest frame_prev = cursor_.prev();
    std::string_view rest = records_;
    uint64_t seq = s.first_seq;
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) {
        fail_unit(u, s, "damaged: the frame's last record has no newline");
        return;
      }
      const std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl + 1);
      const auto rs = parse_record_seq(line);
      if (!rs || rs->seq != seq) {
        fail_unit(u, s,
                  "damaged: the record for seq " + std::to_string(seq) +
                      (rs ? " says seq " + std::to_string(rs->seq)
                          : " does not end in a \"dbwarden.seq\" field"));
        return;
      }
      if (auto f = cursor_.record(seq, rs->prefix, frame_prev, frame_)) {
        fail_unit(u, s, "record seq " + std::to_string(seq) + ": " + *f);
        return;
      }
      ++seq;
    }
    if (seq - s.first_seq != s.records) {
      fail_unit(u, s,
                "damaged: the frame holds " + std::to_string(seq - s.first_seq) +
                    " records, its seal says " + std::to_string(s.records));
      return;
    }
    if (auto f = cursor_.advance(seq, s.link)) fail_unit(u, s, *f);
  }

  // A frame whose link did not match, judged once the next frame is known.
  void finalize_pending(const FrameUnit* next) {
    const std::unique_ptr<Pending> p = std::move(pending_);
    const uint64_t s = p->seal.first_seq, e = cursor_.expect_seq();
    const std::string& prev_file_base = cursor_.prev_file_base();
    auto fail = [&](const std::string& reason) {
      fail_at(p->frame, p->offset, "holding " + seq_range(p->seal) + ": " + reason);
    };
    if (next != nullptr && next->seal && continues(*next->seal, next->data, e, cursor_.prev())) {
      if (s == e + next->seal->records && continues(p->seal, p->data, s, next->seal->link)) {
        fail("reordered: this frame belongs after the next one (seq " + std::to_string(e) + ")");
      } else {
        fail("inserted: this frame is not part of the chain (the next frame continues it)");
      }
      return;
    }
    if (s == e) {
      fail("edited: the frame does not match its seal");
      return;
    }
    if (s < e) {
      fail("reordered or duplicated: seq " + std::to_string(s) + " comes after seq " +
           std::to_string(e == 0 ? 0 : e - 1));
      return;
    }
    std::optional<CheckpointView> cp;
    if (p->frame == 1 && decoder_.decode(p->data, records_).ok()) {
      if (auto rs = parse_record_seq(std::string_view(records_).substr(0, records_.find('\n')))) {
        cp = parse_checkpoint_view(rs->prefix);
      }
    }
    if (cp && cp->reason == "rotation" && cp->prev_file != prev_file_base) {
      fail("file missing: '" + cp->prev_file + "' comes before this file (" + missing(e, s) +
           " missing)");
    } else if (p->frame == 1 && summary_.files > 1) {
      fail("deleted: " + missing(e, s) + " missing before this file (the end of '" +
           prev_file_base + "' was removed)");
    } else {
      fail("deleted: " + missing(e, s) + " missing before this frame");
    }
  }

  VerifyOptions options_;
  std::unique_ptr<ChainHasher> hasher_;
  VerifySummary summary_;
  ChainCursor cursor_;
  FrameDecoder decoder_;
  std::string records_;  // the frame being checked, decompressed
  uint64_t frame_ = 0;
  std::unique_ptr<Pending> pending_;
};

}  // namespace

Result<VerifySummary> verify_framed_buffers(
    const std::vector<std::pair<std::string, std::string_view>>& files, VerifyOptions options) {
  auto h = ChainHasher::Create(options.hmac_key);
  if (!h.ok()) return h.status();
  FrameChainVerifier v(std::move(options), std::move(h.value()));
  for (const auto& [name, bytes] : files) {
    v.file(name, bytes);
    if (v.summary().failure) break;
  }
  v.finish();
  return std::move(v.summary());
}

Result<VerifySummary> verify_framed_files(const std::vector<std::string>& files,
                                          VerifyOptions options) {
  std::vector<std::unique_ptr<MappedFile>> maps;
  std::vector<std::pair<std::string, std::string_view>> buffers;
  for (const std::string& file : files) {
    auto m = MappedFile::Open(file);
    if (!m.ok()) return m.status();
    maps.push_back(std::move(m.value()));
    buffers.emplace_back(file, maps.back()->bytes());
  }
  return verify_framed_buffers(buffers, std::move(options));
}

}  // namespace dbwarden::audit
