// SPDX-License-Identifier: Apache-2.0
//
// The most frequent statement fingerprints in bounded memory: the
// space-saving algorithm (Metwally, Agrawal, El Abbadi, "Efficient
// computation of frequent and top-k elements in data streams", ICDT 2005).
// At most `capacity` candidates are counted; a fingerprint that is not a
// candidate replaces the least counted one and starts from that count + 1, so
// every count is an upper bound that is off by at most its `error`. Any
// fingerprint seen more than total/capacity times is a candidate; with
// capacity = 10 x the number exported, the exported top is exact for every
// workload whose top fingerprints stand out by more than that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dbwarden::metrics {

class TopFingerprints {
 public:
  struct Entry {
    std::string fingerprint;
    std::string summary;
    uint64_t count = 0;
    uint64_t error = 0;  // count may exceed the true number by at most this
  };

  explicit TopFingerprints(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // Counts one statement. A candidate's count is one hash lookup; a newcomer
  // in a full table scans for the least counted candidate (O(capacity)),
  // which only a stream of ever-new fingerprints pays often.
  void add(std::string_view fingerprint, std::string_view summary);

  // The `n` largest counts, largest first (ties by fingerprint).
  std::vector<Entry> top(size_t n) const;

  size_t size() const { return entries_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  // Looked up by string_view (heterogeneous lookup): a hit neither copies
  // nor allocates a key.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  size_t capacity_;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;  // key: fingerprint
  uint64_t evictions_ = 0;
};

}  // namespace dbwarden::metrics
