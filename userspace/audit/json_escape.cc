// SPDX-License-Identifier: Apache-2.0
#include "audit/json_escape.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <array>
#include <cstdint>
#include <cstring>

#include "common/utf8.h"

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

// First index at or after `i` whose byte is not kPlain. Sixteen bytes at a
// time where SSE2 is there (every x86-64): statement texts are mostly long
// plain runs, and the byte loop was the agent's single hottest function.
size_t plain_run_end(std::string_view text, size_t i) {
  const size_t n = text.size();
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  while (i + 16 <= n) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data() + i));
    // Signed compare: bytes >= 0x80 are negative, so "< 0x20" also catches them.
    const __m128i special =
        _mm_or_si128(_mm_cmplt_epi8(v, space),
                     _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(special));
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(mask));
    i += 16;
  }
#endif
  while (i < n && kPlain[static_cast<uint8_t>(text[i])]) ++i;
  return i;
}

}  // namespace

char* write_json_string(std::string_view text, char* p) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  *p++ = '"';
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    // Copy the longest run that needs no escaping in one go.
    size_t run = plain_run_end(text, i);
    if (run != i) {
      put(text.substr(i, run - i));
      i = run;
      if (i == n) break;
    }
    const auto c = static_cast<uint8_t>(text[i]);
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(text, i);
      if (len == 0) {
        put("\\ufffd");
        ++i;
      } else {
        put(text.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        put("\\\"");
        break;
      case '\\':
        put("\\\\");
        break;
      case '\n':
        put("\\n");
        break;
      case '\r':
        put("\\r");
        break;
      case '\t':
        put("\\t");
        break;
      case '\b':
        put("\\b");
        break;
      case '\f':
        put("\\f");
        break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        put({esc, sizeof(esc)});
      }
    }
    ++i;
  }
  *p++ = '"';
  return p;
}

void append_json_string(std::string_view text, std::string& out) {
  const size_t at = out.size();
  out.resize(at + json_string_bound(text.size()));
  char* end = write_json_string(text, out.data() + at);
  out.resize(static_cast<size_t>(end - out.data()));
}

}  // namespace dbwarden::audit
