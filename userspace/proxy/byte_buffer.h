// SPDX-License-Identifier: Apache-2.0
//
// A FIFO of bytes for one direction of a proxied connection: appended at the back,
// consumed from the front, contiguous (the relay decodes in place; no ring arithmetic). The
// proxy bounds what is queued by backpressure (proxy.cc, drive()), never here; this class
// keeps the memory behind it close to what is queued.
//
// Memory: a buffer that is appended to while its front is consumed slowly (a client reading
// a large result slowly) once held up to twice what was queued and more: the consumed prefix
// was kept until it outgrew the live bytes, and std::vector doubled its capacity on top of
// that (a connection queuing ~320 KiB took a 1 MiB block, ~576 KiB of it touched). Now the
// consumed prefix is dropped before the buffer grows, and it grows by an eighth: capacity
// stays within ~1.13 x (queued + the append) + 4 KiB (bench/README.md, "proxy_memory.py").
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace dbwarden::proxy {

class ByteBuffer {
 public:
  std::span<const uint8_t> data() const { return {bytes_.data() + head_, bytes_.size() - head_}; }
  size_t size() const { return bytes_.size() - head_; }
  size_t capacity() const { return bytes_.capacity(); }  // the memory behind it
  bool empty() const { return size() == 0; }

  void append(std::span<const uint8_t> more) {
    if (bytes_.size() + more.size() > bytes_.capacity()) make_room(more.size());
    bytes_.insert(bytes_.end(), more.begin(), more.end());
  }
  void append(const std::vector<uint8_t>& more) { append(std::span<const uint8_t>(more)); }
  void consume(size_t n) {
    head_ += n;
    if (head_ == bytes_.size()) {
      bytes_.clear();
      head_ = 0;
    } else if (head_ > 4096 && head_ > size()) {
      bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  // Gives memory back once a burst is over (an idle connection keeps little).
  void shrink_if_idle() {
    if (empty() && bytes_.capacity() > 16 * 1024) std::vector<uint8_t>().swap(bytes_);
  }

 private:
  // Before growing: the consumed prefix goes (unless it is too small to be worth moving the
  // live bytes for: then growing is cheaper), then the capacity grows geometrically but by
  // an eighth, not double, so that appends stay amortised O(1) per byte.
  void make_room(size_t more) {
    if (head_ >= kMinCompact) {
      bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    const size_t need = bytes_.size() + more;
    if (need <= bytes_.capacity()) return;
    const size_t grown = (need + need / 8 + kPage - 1) / kPage * kPage;
    bytes_.reserve(grown);
  }
  static constexpr size_t kMinCompact = 4096;
  static constexpr size_t kPage = 4096;

  std::vector<uint8_t> bytes_;
  size_t head_ = 0;
};

}  // namespace dbwarden::proxy
