// SPDX-License-Identifier: Apache-2.0
//
// The proxy's per-direction FIFO (proxy/byte_buffer.h): bytes come out in order across
// compactions, and a buffer fed while its front drains slowly (a slow reader of a large
// result, the proxy's backpressure holding it near the high watermark) keeps its memory close
// to what is queued. Before the growth policy it took a 1 MiB block for ~320 KiB queued.
#include "proxy/byte_buffer.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace dbwarden::proxy {
namespace {

constexpr size_t kHigh = 256 << 10;  // Options::high_watermark's default
constexpr size_t kRead = 64 << 10;   // one upstream read (proxy.cc, kReadChunk)

// Appends `n` bytes numbered from `next` on, as the upstream's reads would.
void feed(ByteBuffer& b, size_t n, uint32_t& next) {
  std::vector<uint8_t> chunk(n);
  for (auto& c : chunk) c = static_cast<uint8_t>(next++ * 2654435761u >> 24);
  b.append(chunk);
}

TEST_CASE("byte buffer: slowly drained, bytes in order, memory near what is queued", "[proxy]") {
  ByteBuffer b;
  uint32_t written = 0, read = 0;
  size_t most_queued = 0, most_capacity = 0;
  for (int step = 0; step < 20000; ++step) {
    // The proxy reads upstream only below the high watermark (drive()).
    if (b.size() < kHigh) feed(b, kRead, written);
    most_queued = std::max(most_queued, b.size());
    most_capacity = std::max(most_capacity, b.capacity());
    // The client takes 4 KiB at a time; every byte is the one expected.
    const size_t n = std::min<size_t>(4096, b.size());
    const auto d = b.data();
    for (size_t i = 0; i < n; ++i) {
      REQUIRE(d[i] == static_cast<uint8_t>(read++ * 2654435761u >> 24));
    }
    b.consume(n);
  }
  INFO("most queued " << most_queued << ", most capacity " << most_capacity);
  CHECK(most_queued <= kHigh + kRead);
  // ~1.13 x (queued + one read) + a page: well under the 2 x of std::vector's doubling.
  CHECK(most_capacity <= (most_queued + kRead) * 9 / 8 + 8192);
  CHECK(most_capacity < 2 * kHigh);
}

TEST_CASE("byte buffer: many small appends grow it geometrically, an idle one gives memory back",
          "[proxy]") {
  ByteBuffer b;
  uint32_t written = 0;
  size_t growths = 0, last = b.capacity();
  for (int i = 0; i < 100000; ++i) {
    feed(b, 7, written);
    if (b.capacity() != last) {
      ++growths;
      last = b.capacity();
    }
  }
  CHECK(b.size() == 700000);
  CHECK(growths < 60);  // by an eighth at least: amortised O(1) per byte
  b.consume(b.size());
  CHECK(b.empty());
  b.shrink_if_idle();
  CHECK(b.capacity() == 0);
}

}  // namespace
}  // namespace dbwarden::proxy
