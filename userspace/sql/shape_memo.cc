// SPDX-License-Identifier: Apache-2.0
#include "sql/shape_memo.h"

#include <emmintrin.h>

#include <algorithm>
#include <cstring>

#include "sql/analysis_cache.h"
#include "sql/char_class.h"
#include "sql/redact.h"

namespace dbwarden::sql {
namespace {

uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

}  // namespace

ShapeMemo::ShapeMemo() : slots_(std::make_unique<Slot[]>(kBuckets * kWays)) {}

// By the bytes before the first digit or quote among the first 16: a text and
// any other of its shape have those same bytes, since its first literal
// starts with one (or it has none, and all its bytes are fixed). Found 16
// bytes at a time (SSE2): a byte loop here was most of a hit's cost.
size_t ShapeMemo::bucket_of(std::string_view text) {
  alignas(16) char head[16] = {};
  const size_t n = text.size() < sizeof(head) ? text.size() : sizeof(head);
  std::memcpy(head, text.data(), n);
  const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(head));
  // Signed compares: bytes >= 0x80 are negative, below '0'.
  const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                      _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
  const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('\''));
  const auto stops = static_cast<uint32_t>(_mm_movemask_epi8(_mm_or_si128(digit, quote)));
  const size_t i = stops == 0 ? n : std::min<size_t>(n, static_cast<size_t>(__builtin_ctz(stops)));
  uint64_t a = 0, b = 0;
  std::memcpy(&a, head, 8);
  std::memcpy(&b, head + 8, 8);
  // Only the i bytes before the stop count.
  if (i < 8) {
    a &= (uint64_t{1} << (8 * i)) - 1;
    b = 0;
  } else if (i < 16) {
    b &= (uint64_t{1} << (8 * (i - 8))) - 1;
  }
  return static_cast<size_t>(mix(a * 0x9e3779b97f4a7c15ULL ^ b ^ (uint64_t{i} << 56))) &
         (kBuckets - 1);
}

bool ShapeMemo::matches(const Slot& slot, std::string_view text) {
  const std::string_view shape(slot.text);
  size_t t = 0;  // in the remembered text
  size_t p = 0;  // in `text`
  for (const Literal& lit : slot.literals) {
    const size_t fixed = lit.begin - t;
    if (text.size() - p < fixed + 1 || std::memcmp(text.data() + p, shape.data() + t, fixed) != 0) {
      return false;
    }
    p += fixed;
    // The literal, read as the lexer reads it from here (a token starts here:
    // see the header). It must start with the same class of byte.
    const auto c = static_cast<unsigned char>(text[p]);
    if (lit.string ? c != '\'' : !chars::is_digit(c)) return false;
    const Token tok = Lexer(text.substr(p)).next();
    if (tok.unterminated || tok.kind != (lit.string ? TokenKind::kString : TokenKind::kNumber)) {
      return false;
    }
    // Redaction's first look at a string literal (redact.h), between its quotes.
    if (lit.string && tok.end > 2 &&
        literal_may_hold_credentials(text.substr(p + 1, tok.end - 2))) {
      return false;
    }
    p += tok.end;
    t = lit.end;
  }
  return text.size() - p == shape.size() - t &&
         std::memcmp(text.data() + p, shape.data() + t, shape.size() - t) == 0;
}

const Analysis* ShapeMemo::find(std::string_view text) {
  Slot* ways = &slots_[bucket_of(text) * kWays];
  for (size_t w = 0; w < kWays; ++w) {
    if (!ways[w].filled || !matches(ways[w], text)) continue;
    // Most recently used first: a bucket shared by two busy shapes finds
    // each at its first or second look.
    for (size_t k = w; k > 0; --k) std::swap(ways[k], ways[k - 1]);
    ++hits_;
    return &ways[0].analysis;
  }
  return nullptr;
}

void ShapeMemo::remember(std::string_view text, const std::vector<Token>& tokens,
                         const Analysis& a) {
  if (text.size() > kMaxTextBytes || a.unterminated || AnalysisCache::cost(a) > kMaxAnalysisBytes ||
      may_hold_credentials(text, tokens)) {
    return;
  }
  Slot* ways = &slots_[bucket_of(text) * kWays];
  Slot& slot = ways[kWays - 1];  // the least recently used way makes room
  slot.literals.clear();
  for (const Token& tok : tokens) {
    const bool number = tok.kind == TokenKind::kNumber &&
                        chars::is_digit(static_cast<unsigned char>(text[tok.begin]));
    const bool string = tok.kind == TokenKind::kString && text[tok.begin] == '\'';
    if (!number && !string) continue;
    if (slot.literals.size() == kMaxLiterals) {
      slot.filled = false;
      return;
    }
    slot.literals.push_back(
        {static_cast<uint32_t>(tok.begin), static_cast<uint32_t>(tok.end), string});
  }
  slot.filled = true;
  slot.text.assign(text);
  slot.analysis = a;
  for (size_t k = kWays - 1; k > 0; --k) std::swap(ways[k], ways[k - 1]);
}

}  // namespace dbwarden::sql
