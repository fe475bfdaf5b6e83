// SPDX-License-Identifier: Apache-2.0
//
// builtin_candidates: one cheap pass over a value that rules built-in
// detectors out before the engine runs. Most values of a result are names,
// words and small numbers that no built-in pattern can match; for those the
// engine (whose cost per call and per byte is several times this loop's) is
// not called at all. Each condition is NECESSARY for its pattern to match
// (detectors.cc), never sufficient: the engine and the validators decide.
// The fuzz target checks that against the patterns themselves.
#include <array>
#include <cstdint>

#include "masking/detectors.h"
#include "masking/masking.h"

namespace dbwarden::masking {
namespace {

// Byte classes: most bytes of a value are kPlain and cost one table load and
// two predictable branches.
enum : uint8_t { kPlain = 0, kDigit = 1, kTrigger = 2 };

constexpr std::array<uint8_t, 256> kClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = kDigit;
  for (char c : {'@', '+', '_', 'e', 'x', 'A'}) t[static_cast<unsigned char>(c)] = kTrigger;
  return t;
}();

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }

// A byte that may start a built-in item on its own: '@' (e-mail), "+1".."+9"
// (phone), '_' (sk_live_, ghp_), "eyJ" (JWT), "xox" (Slack), "AK" "AS" "AB"
// "AC" (AWS key ids).
DetectorSet trigger(std::string_view t, size_t i) {
  const size_t n = t.size();
  switch (t[i]) {
    case '@':
      return DetectorSet{1} << kEmail;
    case '+':
      return i + 1 < n && t[i + 1] >= '1' && t[i + 1] <= '9' ? DetectorSet{1} << kPhone : 0;
    case '_':
      return DetectorSet{1} << kToken;
    case 'e':
      return i + 2 < n && t[i + 1] == 'y' && t[i + 2] == 'J' ? DetectorSet{1} << kToken : 0;
    case 'x':
      return i + 2 < n && t[i + 1] == 'o' && t[i + 2] == 'x' ? DetectorSet{1} << kToken : 0;
    default:  // 'A'
      return i + 3 < n && (t[i + 1] == 'K' || t[i + 1] == 'S' || t[i + 1] == 'B' || t[i + 1] == 'C')
                 ? DetectorSet{1} << kToken
                 : 0;
  }
}

}  // namespace

DetectorSet builtin_candidates(std::string_view t) {
  DetectorSet out = 0;
  const size_t n = t.size();
  size_t run = 0;       // digits so far in the current run
  bool group4 = false;  // the previous run was 4 digits ended by ' ' or '-' (a card group)
  int ssn = 0;          // 1: "ddd-" just seen; 2: "ddd-dd-" just seen
  for (size_t i = 0; i < n; ++i) {
    const uint8_t k = kClass[static_cast<unsigned char>(t[i])];
    if (k == kDigit) {
      // IBAN: two capitals, then two digits.
      if (++run == 2 && i >= 3 && is_upper(t[i - 2]) && is_upper(t[i - 3])) {
        out |= DetectorSet{1} << kIban;
      }
      continue;
    }
    if (run > 0) {
      // A digit run ended at t[i]. Cards: 13+ contiguous, or a 4-digit group
      // followed by another group of 4+ (4-4-4-4, 4-6-5).
      const char c = t[i];
      if (run >= 13 || (group4 && run >= 4)) out |= DetectorSet{1} << kPaymentCard;
      group4 = run == 4 && (c == ' ' || c == '-');
      // SSN: exactly ddd-dd-dddd.
      if (ssn == 2 && run == 4) out |= DetectorSet{1} << kUsSsn;
      ssn = c == '-' ? (run == 3 ? 1 : (ssn == 1 && run == 2 ? 2 : 0)) : 0;
      run = 0;
    } else {
      group4 = false;
      ssn = 0;
    }
    if (k == kTrigger) out |= trigger(t, i);
  }
  if (run >= 13 || (group4 && run >= 4)) out |= DetectorSet{1} << kPaymentCard;
  if (ssn == 2 && run == 4) out |= DetectorSet{1} << kUsSsn;
  return out;
}

}  // namespace dbwarden::masking
