// SPDX-License-Identifier: Apache-2.0
#include "metrics/top_fingerprints.h"

#include <algorithm>

namespace dbwarden::metrics {

void TopFingerprints::add(std::string_view fingerprint, std::string_view summary) {
  if (auto it = entries_.find(fingerprint); it != entries_.end()) {
    ++it->second.count;
    return;
  }
  Entry e;
  e.fingerprint.assign(fingerprint);
  e.summary.assign(summary);
  e.count = 1;
  if (entries_.size() >= capacity_) {
    auto least = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.count < least->second.count) least = it;
    }
    e.error = least->second.count;
    e.count = least->second.count + 1;
    entries_.erase(least);
    ++evictions_;
  }
  std::string key = e.fingerprint;
  entries_.emplace(std::move(key), std::move(e));
}

std::vector<TopFingerprints::Entry> TopFingerprints::top(size_t n) const {
  std::vector<Entry> all;
  all.reserve(entries_.size());
  for (const auto& [fp, e] : entries_) all.push_back(e);
  const auto larger = [](const Entry& a, const Entry& b) {
    return a.count != b.count ? a.count > b.count : a.fingerprint < b.fingerprint;
  };
  if (n < all.size()) {
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(), larger);
    all.resize(n);
  } else {
    std::sort(all.begin(), all.end(), larger);
  }
  return all;
}

}  // namespace dbwarden::metrics
