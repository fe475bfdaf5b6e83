// SPDX-License-Identifier: Apache-2.0
//
// The verdicts a connection's statements were given when they were judged, kept until the
// decoder emits their records (which happens at completion, after the server answered).
// Keyed by statement text, because that is what both sides share: the judge splits a
// message with the same splitter the decoder uses. A prepared statement is judged once and
// executed many times, so lookups do not consume. Bounded: the oldest entry goes first, and
// a record whose verdict has gone is judged again by the caller.
//
// Every statement passes through here twice (remember, find), so both look at a hash of
// the text before comparing texts, and the slots are reused: a full log of different texts
// (pgbench's) costs one pass over 128 integers and no allocation per statement.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/judge.h"

namespace dbwarden::proxy {

class DecisionLog {
 public:
  static constexpr size_t kMaxEntries = 128;

  void remember(const JudgedStatement& s) {
    const uint64_t h = hash(s.text);
    // An older verdict for the same text goes: the newest one answers, and it takes the
    // newest slot (the one after the last written, the oldest in the ring).
    if (const size_t old = lookup(s.text, h); old != kNone) slots_[old].used = false;
    if (slots_.size() < kMaxEntries) slots_.emplace_back();  // grown as used: idle is empty
    Slot& slot = slots_[next_];
    next_ = (next_ + 1) % kMaxEntries;
    slot.used = true;
    slot.hash = h;
    slot.entry = s;  // member-wise: each string keeps its capacity
  }
  // The newest verdict for `text`, or null.
  const Verdict* find(std::string_view text) const {
    const size_t i = lookup(text, hash(text));
    return i != kNone ? &slots_[i].entry.verdict : nullptr;
  }
  void clear() {
    for (Slot& s : slots_) s.used = false;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    bool used = false;
    JudgedStatement entry;
  };

  static uint64_t hash(std::string_view text) { return std::hash<std::string_view>{}(text); }
  // At most one used slot holds a text (remember retires the older one).
  static constexpr size_t kNone = ~size_t{0};
  size_t lookup(std::string_view text, uint64_t h) const {
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.used && s.hash == h && s.entry.text == text) return i;
    }
    return kNone;
  }

  std::vector<Slot> slots_;
  size_t next_ = 0;  // the slot remember() writes next: the oldest once all are in use
};

}  // namespace dbwarden::proxy
