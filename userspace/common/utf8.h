// SPDX-License-Identifier: Apache-2.0
//
// UTF-8 well-formedness, shared by the audit JSON escaper and the metrics
// label cleaner: both replace what is not well-formed, and must agree on what
// that is. Table 3-7 of the Unicode standard / RFC 3629 section 4.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dbwarden {

// Length of the well-formed UTF-8 sequence starting at s[i] (1 for ASCII,
// 2 to 4 otherwise), or 0 when s[i] does not start one: a continuation byte,
// C0/C1, F5..FF, an overlong form, a UTF-16 surrogate, a code point above
// U+10FFFF, or a sequence cut short by the end of `s`. Requires i < s.size().
// Inline: it sits on the per-byte path of the audit writer.
inline size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto in = [](uint8_t c, uint8_t lo, uint8_t hi) { return c >= lo && c <= hi; };
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  const size_t left = s.size() - i;
  auto at = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  if (in(b0, 0xC2, 0xDF)) return left >= 2 && in(at(1), 0x80, 0xBF) ? 2 : 0;
  if (in(b0, 0xE0, 0xEF)) {
    if (left < 3) return 0;
    const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
    const uint8_t hi = b0 == 0xED ? 0x9F : 0xBF;  // no UTF-16 surrogates
    return in(at(1), lo, hi) && in(at(2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in(b0, 0xF0, 0xF4)) {
    if (left < 4) return 0;
    const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80;  // no overlong forms
    const uint8_t hi = b0 == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
    return in(at(1), lo, hi) && in(at(2), 0x80, 0xBF) && in(at(3), 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

}  // namespace dbwarden
