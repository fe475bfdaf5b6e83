// SPDX-License-Identifier: Apache-2.0
#include "stream/reassembler.h"

#include <algorithm>

namespace dbwarden::stream {

void Reassembler::gap(uint64_t length, uint64_t ts_ns, Consumer& out) {
  if (length == 0) return;
  counters_.gaps++;
  counters_.gap_bytes += length;
  out.on_gap(length, ts_ns);
}

// Delivers a chunk that starts at or before next_, trimming what was already
// delivered.
void Reassembler::deliver(uint64_t offset, std::span<const uint8_t> data, uint64_t length,
                          uint64_t ts_ns, bool skipped, Consumer& out) {
  uint64_t end = offset + length;
  if (end <= next_) {
    counters_.duplicate_bytes += length;
    return;
  }
  uint64_t skip = next_ - offset;
  counters_.duplicate_bytes += skip;
  if (skip < data.size()) {
    auto bytes = data.subspan(static_cast<size_t>(skip));
    out.on_bytes(bytes, ts_ns);
    next_ += bytes.size();
  }
  if (skipped && end > next_) {  // left out on purpose: not a loss
    counters_.skips++;
    counters_.skipped_bytes += end - next_;
    out.on_skip(end - next_, ts_ns);
  } else {
    gap(end - next_, ts_ns, out);  // the part that was never copied
  }
  next_ = end;
}

void Reassembler::drain(Consumer& out) {
  while (!pending_.empty() && pending_.begin()->first <= next_) {
    auto node = pending_.extract(pending_.begin());
    pending_bytes_ -= node.mapped().data.size();
    deliver(node.key(), node.mapped().data, node.mapped().length, node.mapped().ts_ns,
            node.mapped().skipped, out);
  }
}

void Reassembler::push(uint64_t offset, std::span<const uint8_t> data, uint64_t length,
                       uint64_t ts_ns, Consumer& out, bool skipped) {
  data = data.first(std::min<size_t>(data.size(), length));
  if (!started_) {
    started_ = true;
    next_ = offset;  // joined wherever capture began
  }
  if (offset <= next_) {
    deliver(offset, data, length, ts_ns, skipped, out);
    drain(out);
    return;
  }
  counters_.out_of_order++;
  auto [it, inserted] = pending_.try_emplace(offset);
  if (inserted) {
    it->second.data.assign(data.begin(), data.end());
    it->second.length = length;
    it->second.ts_ns = ts_ns;
    it->second.skipped = skipped;
    pending_bytes_ += data.size();
  } else {
    counters_.duplicate_bytes += length;
  }
  // Bounded waiting: past the limit, the hole before the earliest pending
  // chunk will not be filled in time. Declare it and move on.
  while (!pending_.empty() && (pending_bytes_ > limits_.max_pending_bytes ||
                               pending_.size() > limits_.max_pending_chunks)) {
    uint64_t first = pending_.begin()->first;
    gap(first - next_, pending_.begin()->second.ts_ns, out);
    next_ = first;
    drain(out);
  }
}

void Reassembler::flush(Consumer& out) {
  while (!pending_.empty()) {
    uint64_t first = pending_.begin()->first;
    if (first > next_) {
      gap(first - next_, pending_.begin()->second.ts_ns, out);
      next_ = first;
    }
    drain(out);
  }
}

}  // namespace dbwarden::stream
