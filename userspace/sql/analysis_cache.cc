// SPDX-License-Identifier: Apache-2.0
#include "sql/analysis_cache.h"

namespace dbwarden::sql {

size_t AnalysisCache::cost(const Analysis& a) {
  // List node + hash node + the strings' heap blocks (short strings live
  // inline: counting their capacity over-estimates, which is the safe side).
  size_t n = sizeof(Entry) + 64 + a.normalized.capacity() + a.operation.capacity() +
             a.summary.capacity() + a.fingerprint.capacity() + a.object_type.capacity();
  for (const std::string& c : a.collections) n += sizeof(std::string) + c.capacity();
  return n;
}

const Analysis* AnalysisCache::find(uint64_t key, Dialect dialect, bool unterminated,
                                    std::string_view normalized) {
  const auto it = map_.find(key);
  if (it == map_.end() || it->second->analysis.dialect != dialect ||
      it->second->analysis.unterminated != unterminated ||
      it->second->analysis.normalized != normalized) {
    ++counters_.misses;
    return nullptr;
  }
  ++counters_.hits;
  if (it->second != lru_.begin()) lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->analysis;
}

void AnalysisCache::erase(std::list<Entry>::iterator it) {
  bytes_ -= it->cost;
  map_.erase(it->key);
  lru_.erase(it);
}

const Analysis* AnalysisCache::insert(uint64_t key, const Analysis& a) {
  const size_t c = cost(a);
  if (c > limits_.max_bytes || limits_.max_entries == 0) {
    ++counters_.rejected;
    return nullptr;
  }
  // A colliding key (different text, same hash) gives way to the newer text.
  if (const auto it = map_.find(key); it != map_.end()) erase(it->second);
  while (!lru_.empty() && (map_.size() >= limits_.max_entries || bytes_ + c > limits_.max_bytes)) {
    erase(std::prev(lru_.end()));
    ++counters_.evictions;
  }
  lru_.push_front(Entry{key, c, a});
  map_.emplace(key, lru_.begin());
  bytes_ += c;
  return &lru_.front().analysis;
}

}  // namespace dbwarden::sql
