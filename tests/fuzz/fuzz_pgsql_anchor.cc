// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the anchoring after a bulk-data skip (protocol/pgsql/anchor.h) on
// arbitrary bytes: the tail of a server write is untrusted row data. Besides
// crashes and over-reads (ASan), it checks the contract: anchors come earliest
// first, each one's chain of validated messages, with possible neighbours only,
// ends exactly at the end of the bytes on a ReadyForQuery, and its cycles
// count one entry per ReadyForQuery of the chain.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "protocol/pgsql/anchor.h"

using dbwarden::pgsql::FindAnchor;
using dbwarden::pgsql::FindAnchors;
using dbwarden::pgsql::MayFollow;
using dbwarden::pgsql::ValidBackendMessage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  const auto anchors = FindAnchors(bytes, 8);
  if (anchors.size() > 8) std::abort();
  size_t previous_start = 0;
  for (size_t k = 0; k < anchors.size(); ++k) {
    const auto& a = anchors[k];
    if (a.start >= size || (k > 0 && a.start <= previous_start)) std::abort();
    previous_start = a.start;
    size_t pos = a.start;
    uint8_t prev = 0;
    size_t ready = 0;
    while (pos < size) {
      const size_t n = ValidBackendMessage(bytes, pos);
      if (n == 0 || n > size - pos) std::abort();  // the chain must be valid throughout
      if (prev != 0 && !MayFollow(prev, bytes[pos])) std::abort();
      prev = bytes[pos];
      if (prev == 'Z') ++ready;
      pos += n;
    }
    if (pos != size || prev != 'Z' || a.cycles.size() != ready) std::abort();
  }
  const auto first = FindAnchor(bytes);
  if (first.has_value() != !anchors.empty()) std::abort();
  if (first && first->start != anchors.front().start) std::abort();
  // Every validated message stays inside the bytes, wherever it starts.
  for (size_t pos = 0; pos < size; ++pos) {
    if (ValidBackendMessage(bytes, pos) > size - pos) std::abort();
  }
  return 0;
}
