// SPDX-License-Identifier: Apache-2.0
#include "audit/json_escape.h"

#include <array>
#include <cstdint>

namespace dbwarden::audit {
namespace {

// 1 for bytes that are copied as they are: printable ASCII except '"' and '\'.
constexpr std::array<uint8_t, 256> kPlain = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = 1;
  t['"'] = 0;
  t['\\'] = 0;
  return t;
}();

constexpr bool in(uint8_t c, uint8_t lo, uint8_t hi) { return c >= lo && c <= hi; }

// Length of the well-formed UTF-8 sequence at s[i] (lead byte >= 0x80), or 0.
// Table 3-7 of the Unicode standard / RFC 3629 section 4.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const size_t left = s.size() - i;
  const auto b0 = static_cast<uint8_t>(s[i]);
  auto at = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  if (in(b0, 0xC2, 0xDF)) {
    return left >= 2 && in(at(1), 0x80, 0xBF) ? 2 : 0;
  }
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
  return 0;  // continuation byte, C0/C1, F5..FF
}

}  // namespace

void append_json_string(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    // Copy the longest run that needs no escaping in one append.
    size_t run = i;
    while (run < n && kPlain[static_cast<uint8_t>(text[run])]) ++run;
    if (run != i) {
      out.append(text.data() + i, run - i);
      i = run;
      if (i == n) break;
    }
    const auto c = static_cast<uint8_t>(text[i]);
    if (c >= 0x80) {
      const size_t len = utf8_sequence_length(text, i);
      if (len == 0) {
        out.append("\\ufffd");
        ++i;
      } else {
        out.append(text.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(esc, sizeof(esc));
      }
    }
    ++i;
  }
  out.push_back('"');
}

}  // namespace dbwarden::audit
