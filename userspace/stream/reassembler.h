// SPDX-License-Identifier: Apache-2.0
//
// Rebuilds one direction of a byte stream from captured chunks. Each chunk
// carries its position in the stream and the true number of bytes it stands
// for, of which only a prefix may have been copied. The reassembler delivers
// bytes in order and reports every hole as a gap of exact length, so a
// length-framed decoder can skip it instead of losing the connection.
//
// Chunks normally arrive in order; a chunk that arrives early (another CPU
// committed it first) waits in a bounded pending set. When that set is full
// the missing span is declared a gap: memory stays bounded, nothing is lost
// silently.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace dbwarden::stream {

class Consumer {
 public:
  virtual ~Consumer() = default;
  virtual void on_bytes(std::span<const uint8_t> bytes, uint64_t ts_ns) = 0;
  virtual void on_gap(uint64_t length, uint64_t ts_ns) = 0;
  // `length` bytes left out on purpose by the capture (the bulk-data bound,
  // DBW_DATA_BULK_SKIPPED): not a loss. A consumer that cannot tell them from
  // a loss treats them as one.
  virtual void on_skip(uint64_t length, uint64_t ts_ns) { on_gap(length, ts_ns); }
};

struct Limits {
  size_t max_pending_bytes = 256 * 1024;
  size_t max_pending_chunks = 64;
};

struct Counters {
  uint64_t gaps = 0;             // holes reported to a consumer
  uint64_t gap_bytes = 0;        // bytes in those holes
  uint64_t out_of_order = 0;     // chunks that had to wait for an earlier one
  uint64_t duplicate_bytes = 0;  // bytes at offsets already delivered
  uint64_t skips = 0;            // deliberate skips reported (never counted as gaps)
  uint64_t skipped_bytes = 0;
};

class Reassembler {
 public:
  Reassembler(const Limits& limits, Counters& counters) : limits_(limits), counters_(counters) {}

  // `data` holds the first data.size() of the `length` bytes at `offset`.
  // `skipped`: the bytes not in `data` were left out on purpose (on_skip).
  void push(uint64_t offset, std::span<const uint8_t> data, uint64_t length, uint64_t ts_ns,
            Consumer& out, bool skipped = false);
  // Delivers everything pending, declaring each hole a gap (connection end).
  void flush(Consumer& out);
  uint64_t next_offset() const { return next_; }
  size_t pending_bytes() const { return pending_bytes_; }

 private:
  struct Chunk {
    std::vector<uint8_t> data;
    uint64_t length = 0;
    uint64_t ts_ns = 0;
    bool skipped = false;
  };
  void deliver(uint64_t offset, std::span<const uint8_t> data, uint64_t length, uint64_t ts_ns,
               bool skipped, Consumer& out);
  void drain(Consumer& out);
  void gap(uint64_t length, uint64_t ts_ns, Consumer& out);

  Limits limits_;
  Counters& counters_;
  bool started_ = false;
  uint64_t next_ = 0;
  std::map<uint64_t, Chunk> pending_;
  size_t pending_bytes_ = 0;
};

}  // namespace dbwarden::stream
