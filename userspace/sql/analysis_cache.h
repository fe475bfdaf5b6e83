// SPDX-License-Identifier: Apache-2.0
//
// A bounded least-recently-used cache of analyses, keyed by (dialect,
// normalised text) through its 64-bit fingerprint; the full text is compared
// on every hit, so a fingerprint collision is a miss, never a wrong answer.
// Bounded both in entries and in (estimated) bytes; a lookup that hits
// allocates nothing.
#pragma once

#include <cstdint>
#include <list>
#include <string_view>
#include <unordered_map>

#include "sql/analysis.h"

namespace dbwarden::sql {

struct CacheLimits {
  size_t max_entries = 10000;
  size_t max_bytes = 32u << 20;
};

struct CacheCounters {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t rejected = 0;  // one analysis larger than max_bytes: not cached
};

class AnalysisCache {
 public:
  explicit AnalysisCache(CacheLimits limits) : limits_(limits) {}

  // The cached analysis of `normalized` (now most recently used), or nullptr.
  const Analysis* find(uint64_t key, Dialect dialect, bool unterminated,
                       std::string_view normalized);
  // Stores a copy of `a` under `key`, evicting least recently used entries
  // until both limits hold. Returns the stored copy, or nullptr when `a` alone
  // is over the byte limit.
  const Analysis* insert(uint64_t key, const Analysis& a);

  size_t entries() const { return map_.size(); }
  size_t bytes() const { return bytes_; }
  const CacheCounters& counters() const { return counters_; }

  // Estimated heap footprint of one entry.
  static size_t cost(const Analysis& a);

 private:
  struct Entry {
    uint64_t key;
    size_t cost;
    Analysis analysis;
  };
  void erase(std::list<Entry>::iterator it);

  CacheLimits limits_;
  std::list<Entry> lru_;  // front = most recently used
  std::unordered_map<uint64_t, std::list<Entry>::iterator> map_;
  size_t bytes_ = 0;
  CacheCounters counters_;
};

}  // namespace dbwarden::sql
