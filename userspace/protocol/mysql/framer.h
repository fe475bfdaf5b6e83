// SPDX-License-Identifier: Apache-2.0
//
// Bytes -> logical messages for one direction of one MySQL connection. Chunks
// may split a packet anywhere. A message is one packet, or several when a
// payload of exactly 0xffffff bytes continues in the next packet. The framer
// keeps only the payload prefix the session asks for (query text, OK/ERR
// fields); rows, column definitions and LOCAL INFILE content are skipped by
// length and never buffered, so a 1 GB result set costs no memory.
// Authentication payloads are kept only as long as the session needs to read
// the user and database out of them, then the copy is zeroed.
//
// Layout: see messages.h and
// https://mariadb.com/kb/en/0-packet/
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "protocol/mysql/messages.h"

namespace dbwarden::mysql {

struct Frame {
  uint8_t seq = 0;                   // sequence id of the first packet
  uint32_t packets = 0;              // packets the message spans
  uint32_t first_packet_length = 0;  // payload length of the first packet
  uint64_t length = 0;               // payload bytes over all packets
  int first = -1;                    // first payload byte; -1 for an empty payload
  std::span<const uint8_t> body;     // kept prefix of the payload
  bool body_complete = false;        // body holds the whole payload
  bool gap = false;                  // payload bytes inside this message were not captured
  uint64_t start_ns = 0;             // chunk holding the first header byte
  uint64_t end_ns = 0;               // chunk holding the last byte
  uint64_t wire_bytes() const { return length + uint64_t{kHeaderSize} * packets; }
};

// The session's answer when a message's first payload byte is known.
struct Keep {
  size_t bytes = 0;     // payload prefix to keep
  bool reject = false;  // this cannot be a message here: framing is lost
  bool wipe = false;    // zero our copy after delivery (authentication data)
};

class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  // `first` is -1 for an empty payload.
  virtual Keep keep(Direction dir, uint8_t seq, int first, uint32_t packet_length) = 0;
  virtual void on_frame(Direction dir, const Frame& frame) = 0;
  // Message boundaries were lost. The client framer scans for the next
  // plausible command header; the server framer waits for restart().
  virtual void on_framing_lost(Direction dir) = 0;
};

class Framer {
 public:
  Framer(Direction dir, Counters& counters, FrameHandler& handler);

  void feed(std::span<const uint8_t> data, uint64_t ts_ns);
  // `length` bytes were not captured. Inside a payload they are skipped
  // exactly; once they reach past a message end the framing is lost.
  void gap(uint64_t length, uint64_t ts_ns);
  // Server: a new client command was seen while waiting; its answer starts
  // at the next byte (the protocol is request/response).
  void restart();
  bool waiting() const { return mode_ == Mode::kWait || mode_ == Mode::kResync; }
  // Discard bytes until restart() (server) or a plausible command (client).
  void lose() { lose_framing(nullptr, 0); }
  // The rest of the stream is opaque (TLS, compression): ignore it.
  void stop() { mode_ = Mode::kStopped; }
  bool stopped() const { return mode_ == Mode::kStopped; }
  // Client: inside a message whose start was guessed (the first message of a
  // connection, or the first after a resync) and not yet confirmed by its
  // delivery. The server answers only whole commands, so server bytes now
  // prove the guess wrong: a false header with a long length must not swallow
  // the connection's next statements.
  bool inside_unconfirmed() const {
    return unconfirmed_ && (mode_ == Mode::kBody || header_len_ > 0 || continuation_);
  }

 private:
  enum class Mode : uint8_t { kHeader, kBody, kResync, kWait, kStopped };

  std::span<const uint8_t> read_header(std::span<const uint8_t> data, uint64_t ts_ns);
  std::span<const uint8_t> read_body(std::span<const uint8_t> data, uint64_t ts_ns);
  std::span<const uint8_t> resync(std::span<const uint8_t> data, uint64_t ts_ns);
  bool decide(uint8_t first_or_none, bool empty);
  void end_packet(std::span<const uint8_t> view, uint64_t ts_ns);
  void deliver(std::span<const uint8_t> body, uint64_t ts_ns);
  void lose_framing(const uint8_t* carry, size_t carry_len);

  const Direction dir_;
  Counters& counters_;
  FrameHandler& handler_;

  Mode mode_ = Mode::kHeader;
  uint8_t header_[kHeaderSize] = {};
  size_t header_len_ = 0;
  uint64_t msg_start_ns_ = 0;

  Frame cur_;
  bool continuation_ = false;  // the next header continues cur_
  bool decided_ = false;       // keep() was asked for cur_
  uint32_t packet_length_ = 0;
  uint32_t remaining_ = 0;  // payload bytes of the current packet still to come
  Keep keep_;
  std::vector<uint8_t> body_;

  bool unconfirmed_ = true;  // see inside_unconfirmed()
  // Client resync: trailing bytes (< 5) whose candidacy as a header is undecided.
  uint8_t carry_[kHeaderSize + 1] = {};
  size_t carry_len_ = 0;
};

// A client command header worth trying while resynchronising: sequence id 0,
// a known command byte, and a length that command can have.
bool PlausibleCommandHeader(const uint8_t* five_bytes);

}  // namespace dbwarden::mysql
