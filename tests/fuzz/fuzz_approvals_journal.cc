// SPDX-License-Identifier: Apache-2.0
//
// The pending requests' journal (approvals/journal.h) as a restarting agent reads it: any
// bytes (a torn write, a foreign file, a damaged disk) parse without a crash, and every
// request it yields survives being written back and read again unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "approvals/journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dbwarden::approvals::JournalAddLine;
  using dbwarden::approvals::ParseJournal;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto c = ParseJournal(in);
  std::string again;
  for (const auto& [id, r] : c.pending) {
    if (r.id != id || id >= c.next_id) abort();
    again += JournalAddLine(r) + "\n";
  }
  const auto d = ParseJournal(again);
  if (d.pending.size() != c.pending.size() || d.bad_lines != 0) abort();
  for (const auto& [id, r] : c.pending) {
    const auto& s = d.pending.at(id).spec;
    if (s.rule != r.spec.rule || s.who.db_user != r.spec.who.db_user ||
        s.who.uid != r.spec.who.uid || s.fingerprint != r.spec.fingerprint) {
      abort();
    }
  }
  return 0;
}
