// SPDX-License-Identifier: Apache-2.0
#include "metrics/label_value.h"

#include <cstdint>

namespace dbwarden::metrics {
namespace {

bool in(uint8_t c, uint8_t lo, uint8_t hi) { return c >= lo && c <= hi; }

// Length of the well-formed UTF-8 sequence at s[i], or 0 (RFC 3629 section 4).
size_t sequence_length(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  const size_t left = s.size() - i;
  auto at = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  if (in(b0, 0xC2, 0xDF)) return left >= 2 && in(at(1), 0x80, 0xBF) ? 2 : 0;
  if (in(b0, 0xE0, 0xEF)) {
    const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const uint8_t hi = b0 == 0xED ? 0x9F : 0xBF;
    return left >= 3 && in(at(1), lo, hi) && in(at(2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in(b0, 0xF0, 0xF4)) {
    const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80;
    const uint8_t hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return left >= 4 && in(at(1), lo, hi) && in(at(2), 0x80, 0xBF) && in(at(3), 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

}  // namespace

std::string label_value(std::string_view raw) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(raw.size() < kMaxLabelValueBytes ? raw.size() : kMaxLabelValueBytes);
  size_t i = 0;
  while (i < raw.size()) {
    const size_t len = sequence_length(raw, i);
    const size_t out_len = len == 0 ? kReplacement.size() : len;
    if (out.size() + out_len > kMaxLabelValueBytes) break;
    if (len == 0) {
      out.append(kReplacement);
      ++i;
    } else {
      out.append(raw.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace dbwarden::metrics
