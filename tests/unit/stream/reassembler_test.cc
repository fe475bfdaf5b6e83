// SPDX-License-Identifier: Apache-2.0
#include "stream/reassembler.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <string>

namespace dbwarden::stream {
namespace {

// Records what a decoder would see: bytes as a string, gaps as "<gap N>".
struct Recorder : Consumer {
  std::string seen;
  void on_bytes(std::span<const uint8_t> b, uint64_t) override {
    seen.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void on_gap(uint64_t n, uint64_t) override { seen += "<gap " + std::to_string(n) + ">"; }
};

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST_CASE("in-order chunks pass straight through", "[stream]") {
  Counters c;
  Reassembler r({}, c);
  Recorder out;
  r.push(0, bytes("hello "), 6, 1, out);
  r.push(6, bytes("world"), 5, 2, out);
  CHECK(out.seen == "hello world");
  CHECK(r.next_offset() == 11);
  CHECK(c.gaps == 0);
}

TEST_CASE("a partly copied chunk reports the rest as a gap of exact length", "[stream]") {
  Counters c;
  Reassembler r({}, c);
  Recorder out;
  r.push(100, bytes("abc"), 10, 1, out);  // capture joined at offset 100
  r.push(110, bytes("z"), 1, 2, out);
  CHECK(out.seen == "abc<gap 7>z");
  CHECK(c.gaps == 1);
  CHECK(c.gap_bytes == 7);
}

TEST_CASE("an early chunk waits for the one before it", "[stream]") {
  Counters c;
  Reassembler r({}, c);
  Recorder out;
  r.push(0, bytes("ab"), 2, 1, out);
  r.push(4, bytes("ef"), 2, 3, out);
  CHECK(out.seen == "ab");
  r.push(2, bytes("cd"), 2, 2, out);
  CHECK(out.seen == "abcdef");
  CHECK(c.out_of_order == 1);
  CHECK(r.pending_bytes() == 0);
}

TEST_CASE("duplicates and overlaps are trimmed", "[stream]") {
  Counters c;
  Reassembler r({}, c);
  Recorder out;
  r.push(0, bytes("abcd"), 4, 1, out);
  r.push(2, bytes("cdef"), 4, 2, out);
  r.push(0, bytes("ab"), 2, 3, out);
  CHECK(out.seen == "abcdef");
  CHECK(c.duplicate_bytes == 4);
}

TEST_CASE("pending memory is bounded: a hole that is never filled becomes a gap", "[stream]") {
  Counters c;
  Limits limits;
  limits.max_pending_chunks = 2;
  Reassembler r(limits, c);
  Recorder out;
  r.push(0, bytes("a"), 1, 1, out);
  r.push(2, bytes("c"), 1, 2, out);
  r.push(3, bytes("d"), 1, 3, out);
  CHECK(out.seen == "a");
  r.push(4, bytes("e"), 1, 4, out);  // third pending chunk: over the limit
  CHECK(out.seen == "a<gap 1>cde");
  CHECK(r.pending_bytes() == 0);
}

TEST_CASE("flush declares every remaining hole", "[stream]") {
  Counters c;
  Reassembler r({}, c);
  Recorder out;
  r.push(0, bytes("a"), 1, 1, out);
  r.push(5, bytes("f"), 1, 2, out);
  r.flush(out);
  CHECK(out.seen == "a<gap 4>f");
}

TEST_CASE("any arrival order within the bound gives the original stream", "[stream]") {
  const std::string text = "The quick brown fox jumps over the lazy dog, 0123456789.";
  std::mt19937 rng(20261126);  // fixed seed: replayable
  for (int round = 0; round < 200; round++) {
    std::vector<std::pair<uint64_t, std::string>> chunks;
    for (size_t pos = 0; pos < text.size();) {
      size_t n = std::min<size_t>(1 + rng() % 7, text.size() - pos);
      chunks.emplace_back(pos, text.substr(pos, n));
      pos += n;
    }
    // Swap neighbours only: reordering stays within the pending bound.
    for (size_t i = 1; i < chunks.size(); i++) {
      if (rng() % 3 == 0) std::swap(chunks[i - 1], chunks[i]);
    }
    Counters c;
    Reassembler r({}, c);
    Recorder out;
    // Capture must begin at the stream's start for this property.
    std::stable_partition(chunks.begin(), chunks.end(), [](auto& c) { return c.first == 0; });
    for (auto& [off, s] : chunks) r.push(off, bytes(s), s.size(), 0, out);
    r.flush(out);
    REQUIRE(out.seen == text);
  }
}

}  // namespace
}  // namespace dbwarden::stream

namespace dbwarden::stream {
namespace {

struct SkipRecorder : Consumer {
  std::string seen;
  void on_bytes(std::span<const uint8_t> b, uint64_t) override {
    seen.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void on_gap(uint64_t n, uint64_t) override { seen += "<gap " + std::to_string(n) + ">"; }
  void on_skip(uint64_t n, uint64_t) override { seen += "<skip " + std::to_string(n) + ">"; }
};

TEST_CASE("a deliberate skip is reported as a skip, never as a gap, even out of order",
          "[stream]") {
  Counters c;
  Reassembler r({}, c);
  SkipRecorder out;
  r.push(0, bytes("head"), 4, 1, out);
  // The tail committed before the skip record (another CPU): it waits.
  r.push(104, bytes("tail"), 4, 3, out);
  r.push(4, {}, 100, 2, out, /*skipped=*/true);
  CHECK(out.seen == "head<skip 100>tail");
  CHECK(c.gaps == 0);
  CHECK(c.skips == 1);
  CHECK(c.skipped_bytes == 100);
  // A real loss right after is still a gap.
  r.push(200, bytes("x"), 1, 4, out);
  r.flush(out);
  CHECK(out.seen == "head<skip 100>tail<gap 92>x");
  CHECK(c.gaps == 1);
}

TEST_CASE("a consumer that knows no skips sees them as gaps", "[stream]") {
  Counters c;
  Reassembler r({}, c);
  Recorder out;
  r.push(0, bytes("a"), 1, 1, out);
  r.push(1, {}, 10, 2, out, /*skipped=*/true);
  CHECK(out.seen == "a<gap 10>");
}

}  // namespace
}  // namespace dbwarden::stream
