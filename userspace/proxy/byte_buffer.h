// SPDX-License-Identifier: Apache-2.0
//
// A FIFO of bytes for one direction of a proxied connection: appended at the back,
// consumed from the front, compacted when the consumed prefix outgrows what is left
// (amortised O(1) per byte, no ring arithmetic). The proxy bounds its size by
// backpressure (connection.h), never here.
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
  bool empty() const { return size() == 0; }

  void append(std::span<const uint8_t> more) {
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
  std::vector<uint8_t> bytes_;
  size_t head_ = 0;
};

}  // namespace dbwarden::proxy
