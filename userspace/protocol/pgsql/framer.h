// SPDX-License-Identifier: Apache-2.0
//
// Bytes -> messages for one direction of one connection. Chunks may split a
// message anywhere; the framer keeps at most a header's worth of bytes plus the
// body prefix the session needs (query text, command tag, error fields).
// Bodies nobody reads (DataRow, CopyData, RowDescription, ...) are skipped by
// their length and never buffered, so a 100 MB DataRow costs no memory.
// Authentication bodies (PasswordMessage, SASL*, Authentication*) and the
// CancelRequest key are skipped the same way: they are never copied anywhere.
//
// Layouts: see messages.h and
// https://www.postgresql.org/docs/15/protocol-message-formats.html
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "protocol/pgsql/messages.h"

namespace dbwarden::pgsql {

struct Frame {
  uint8_t type = 0;                          // type byte; 0 for an untyped startup-phase packet
  StartupKind startup = StartupKind::kNone;  // for type 0
  bool single_byte = false;       // the backend's 'S'/'G'/'N' answer to SSL/GSSENC requests
  uint32_t length = 0;            // length field as on the wire (1 for single_byte)
  std::span<const uint8_t> body;  // kept prefix of the body (startup: after the code)
  bool body_complete = false;     // body holds the whole body, no bytes missing
  bool gap = false;               // bytes inside this message were not captured
  uint64_t start_ns = 0;          // chunk holding the first byte
  uint64_t end_ns = 0;            // chunk holding the last byte
  uint64_t wire_bytes() const { return single_byte ? 1 : (type == 0 ? length : 1ull + length); }
};

class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  virtual void on_frame(Direction dir, const Frame& frame) = 0;
  // Message boundaries were lost (invalid bytes or a gap over a header); the
  // framer is now scanning for the next plausible header.
  virtual void on_framing_lost(Direction dir) = 0;
  // After a deliberate skip lost the boundaries, a chain of messages ending
  // in ReadyForQuery anchored (anchor.h): its frames follow. `cycles`: the
  // completions before each of its ReadyForQuery; `unframed_bytes`: skipped
  // and discarded bytes that belong to no delivered frame.
  virtual void on_anchored(Direction /*dir*/, std::span<const uint32_t> /*cycles*/,
                           uint64_t /*unframed_bytes*/) {}
  // Whether a candidate chain's completions per ReadyForQuery are the ones
  // awaited; the framer anchors at the earliest accepted candidate, else at
  // the earliest one.
  virtual bool accept_anchor(Direction /*dir*/, std::span<const uint32_t> /*cycles*/) {
    return true;
  }
};

class Framer {
 public:
  Framer(Direction dir, const Limits& limits, Counters& counters, FrameHandler& handler);

  void feed(std::span<const uint8_t> data, uint64_t ts_ns);
  // `length` bytes were not captured. Inside a body they are skipped exactly;
  // once they reach past a message end the framing is lost and we resync.
  void gap(uint64_t length, uint64_t ts_ns);
  // `length` bytes were left out on purpose (backend bulk data). Inside a body
  // they are passed over like a gap but are no loss; past a message end the
  // framer keeps the following bytes (at most kMaxAnchorBytes, the newest)
  // until they anchor (anchor.h), and frames on from there.
  void skip(uint64_t length, uint64_t ts_ns);
  static constexpr size_t kMaxAnchorBytes = 32 * 1024;
  size_t anchor_bytes() const { return anchor_.size(); }
  // Backend: the next byte is the one-byte answer to an SSL/GSSENC request.
  void expect_answer(StartupKind request) { answer_for_ = request; }
  // The rest of the stream is opaque (encrypted): ignore it.
  void stop() { mode_ = Mode::kStopped; }
  bool stopped() const { return mode_ == Mode::kStopped; }
  // Between two messages: the next byte fed starts a new one.
  bool at_message_boundary() const { return mode_ == Mode::kHeader && header_len_ == 0; }

 private:
  enum class Mode : uint8_t { kHeader, kBody, kResync, kAnchor, kStopped };

  std::span<const uint8_t> read_whole(std::span<const uint8_t> data, uint64_t ts_ns);
  std::span<const uint8_t> read_header(std::span<const uint8_t> data, uint64_t ts_ns);
  std::span<const uint8_t> read_body(std::span<const uint8_t> data, uint64_t ts_ns);
  std::span<const uint8_t> resync(std::span<const uint8_t> data, uint64_t ts_ns);
  void finish_typed_header(uint64_t ts_ns);
  // The first `length` uncaptured bytes (a gap or a skip) start inside the
  // current body: passes over them, delivering the body if they reach its end.
  // True when nothing is left (they ended inside or exactly at the body's end,
  // or the framer stopped); otherwise `length` becomes what lies beyond it.
  bool pass_body(uint64_t& length, uint64_t ts_ns);
  void begin(uint8_t type, StartupKind startup, uint32_t length, uint32_t body_length);
  void deliver(std::span<const uint8_t> body, uint64_t ts_ns);
  void lose_framing(const uint8_t* carry, size_t carry_len);
  void anchor(std::span<const uint8_t> data, uint64_t ts_ns);
  void leave_startup_phase();
  size_t keep_limit(uint8_t type, StartupKind startup, uint32_t body_length) const;

  const Direction dir_;
  const Limits limits_;
  Counters& counters_;
  FrameHandler& handler_;

  Mode mode_ = Mode::kHeader;
  bool untyped_;  // frontend before StartupMessage: untyped startup packets
  StartupKind answer_for_ = StartupKind::kNone;

  uint8_t header_[kStartupHeaderSize] = {};
  size_t header_len_ = 0;
  uint64_t msg_start_ns_ = 0;

  // Current message.
  Frame cur_;
  uint32_t remaining_ = 0;  // body bytes still to come
  uint32_t body_seen_ = 0;  // body bytes already passed (kept or not)
  size_t keep_ = 0;         // body bytes to keep
  std::vector<uint8_t> body_;

  // Resync: trailing bytes (< 5) whose candidacy as a header is undecided.
  uint8_t carry_[kTypedHeaderSize] = {};
  size_t carry_len_ = 0;

  // Anchor: bytes since the last deliberate skip, and the bytes no frame holds.
  std::vector<uint8_t> anchor_;
  uint64_t unframed_ = 0;
};

}  // namespace dbwarden::pgsql
