// SPDX-License-Identifier: Apache-2.0
//
// The verdicts a connection's statements were given when they were judged, kept until the
// decoder emits their records (which happens at completion, after the server answered).
// Keyed by statement text, because that is what both sides share: the judge splits a
// message with the same splitter the decoder uses. A prepared statement is judged once and
// executed many times, so lookups do not consume. Bounded: the oldest entry goes first, and
// a record whose verdict has gone is judged again by the caller.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <utility>

#include "proxy/judge.h"

namespace dbwarden::proxy {

class DecisionLog {
 public:
  static constexpr size_t kMaxEntries = 128;

  void remember(const JudgedStatement& s) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->text == s.text) {
        entries_.erase(it);
        break;
      }
    }
    if (entries_.size() == kMaxEntries) entries_.pop_front();
    entries_.push_back(s);
  }
  // The newest verdict for `text`, or null.
  const Verdict* find(std::string_view text) const {
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
      if (it->text == text) return &it->verdict;
    }
    return nullptr;
  }
  void clear() { entries_.clear(); }

 private:
  std::deque<JudgedStatement> entries_;
};

}  // namespace dbwarden::proxy
