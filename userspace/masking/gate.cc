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
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#include <immintrin.h>
#endif
#include <algorithm>

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
    case '@': {  // a local-part character before, a domain character after
      auto alnum = [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      };
      const bool local = i > 0 && (alnum(t[i - 1]) || std::strchr("._%+-", t[i - 1]) != nullptr);
      const bool domain = i + 1 < n && (alnum(t[i + 1]) || t[i + 1] == '-');
      return local && domain ? DetectorSet{1} << kEmail : 0;
    }
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

DetectorSet builtin_candidates_scalar(std::string_view t) {
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

#if defined(__SSE2__)

namespace {

// Bit i of each mask says something of byte i of a 64-byte window: 64
// positions tested at once, with windows that overlap by kLookahead bytes so
// that every pattern prefix tested here (at most 14 bytes: classify looks at
// most 13 bytes past a start) lies whole in one.
// The first group every test starts from; the rest refine one of them and are
// filled only when it is not empty (a run of 4 digits, an '@', a '+', a 'J',
// an 'x', an 'A'): most windows of text have few of those. A mask left 0 is
// only ever ANDed with the one it refines, so leaving it out changes nothing.
struct Masks {
  uint64_t digit = 0, upper = 0, at = 0, plus = 0, under = 0, cap_j = 0, x = 0, cap_a = 0;
  uint64_t d26 = 0, three = 0, sep = 0, dash = 0;  // run4
  uint64_t lower = 0, dot_pct = 0;                 // at (and dash)
  uint64_t d19 = 0;                                // plus
  uint64_t e = 0, y = 0;                           // cap_j
  uint64_t o = 0;                                  // x
  uint64_t ksbc = 0;                               // cap_a
};

// How far past a start position classify() looks (a card's third group, `run4 >> 10`), and so
// the stride of the windows: a start in a window's first kStride bytes has all the bytes
// its tests read inside that window. Every test is an AND of byte classes, so a start
// tested again in a window that cuts its bytes off (NUL past the cut) adds nothing.
constexpr size_t kLookahead = 13;
constexpr size_t kStride = 64 - kLookahead;

// Where the windows that let a start through lie: [*lo, *hi) grows to cover each.
inline void note_window(DetectorSet found, size_t start, size_t len, size_t* lo, size_t* hi) {
  if (found == 0) return;
  *lo = std::min(*lo, start);
  *hi = start + len;
}

// Every detector found before the end: the rest is not looked at, so it may hold items.
inline DetectorSet everything(std::string_view t, size_t* hi) {
  *hi = t.size();
  return kAllBuiltins;
}

inline uint64_t run4_of(uint64_t d) {
  const uint64_t run2 = d & (d >> 1);
  return run2 & (run2 >> 2);
}

// The masks of one window, from a source `v` of eq(c) and range(lo, hi).
template <class V>
__attribute__((always_inline)) inline Masks fill(const V& v) {
  Masks m;
  m.digit = v.range('0', '9');
  m.upper = v.range('A', 'Z');
  m.at = v.eq('@');
  m.plus = v.eq('+');
  m.under = v.eq('_');
  m.cap_j = v.eq('J');
  m.x = v.eq('x');
  m.cap_a = v.eq('A');
  // Where a compare is one instruction (AVX-512), every mask is computed in every window:
  // the branches that would spare them cost more than the compares, mispredicted (a run
  // of 4 digits is in most windows of prose, dates and numbers, and not in the others).
  if (V::kEager || run4_of(m.digit) != 0 || m.at != 0) m.dash = v.eq('-');
  if (V::kEager || run4_of(m.digit) != 0) {
    m.d26 = v.range('2', '6');
    m.three = v.eq('3');
    m.sep = m.dash | v.eq(' ');
  }
  if (V::kEager || m.at != 0) {
    m.lower = v.range('a', 'z');
    m.dot_pct = v.eq('.') | v.eq('%');
  }
  if (V::kEager || m.plus != 0) m.d19 = v.range('1', '9');
  if (V::kEager || m.cap_j != 0) {
    m.e = v.eq('e');
    m.y = v.eq('y');
  }
  if (V::kEager || m.x != 0) m.o = v.eq('o');
  if (V::kEager || m.cap_a != 0) m.ksbc = v.eq('K') | v.eq('S') | v.eq('B') | v.eq('C');
  return m;
}

__attribute__((always_inline)) inline DetectorSet classify(const Masks& m) {
  const uint64_t d = m.digit;
  const uint64_t run2 = d & (d >> 1), run3 = run2 & (d >> 2), run4 = run2 & (run2 >> 2);
  const uint64_t run8 = run4 & (run4 >> 4), run12 = run8 & (run4 >> 8);
  DetectorSet out = 0;
  // Cards start "[2-6]ddd", then 9+ more digits, or are grouped: 4-4-4 (the 4-4-4-4 forms)
  // or "3ddd dddddd " (4-6-5, 4-6-4). Not just "dddd dddd": a 4-digit number before a
  // date or another number is common in prose.
  const uint64_t sep = m.sep;
  const uint64_t grouped = (sep >> 4) & (run4 >> 5) &
                           (((sep >> 9) & (run4 >> 10)) | (m.three & (run2 >> 9) & (sep >> 11)));
  if (m.d26 & run4 & ((run12 & (d >> 12)) | grouped)) {
    out |= DetectorSet{1} << kPaymentCard;
  }
  if (run3 & (m.dash >> 3) & (run2 >> 4) & (m.dash >> 6) & (run4 >> 7)) {
    out |= DetectorSet{1} << kUsSsn;
  }
  if (m.upper & (m.upper >> 1) & (run2 >> 2)) out |= DetectorSet{1} << kIban;
  // E-mail: a local-part character, '@', a domain character ("@team" in
  // prose is a handle, not an address).
  const uint64_t alnum = d | m.upper | m.lower;
  const uint64_t local = alnum | m.dot_pct | m.under | m.plus | m.dash;
  if (local & (m.at >> 1) & ((alnum | m.dash) >> 2)) out |= DetectorSet{1} << kEmail;
  if (m.plus & (m.d19 >> 1)) out |= DetectorSet{1} << kPhone;
  if (m.under | (m.e & (m.y >> 1) & (m.cap_j >> 2)) | (m.x & (m.o >> 1) & (m.x >> 2)) |
      (m.cap_a & (m.ksbc >> 1))) {
    out |= DetectorSet{1} << kToken;
  }
  return out;
}

struct Sse2Window {
  static constexpr bool kEager = false;
  __m128i v[4];
  uint64_t range(char lo, char hi) const {
    // Unsigned range check: (c - lo) <= (hi - lo), via saturating subtraction.
    const __m128i l = _mm_set1_epi8(lo), span = _mm_set1_epi8(static_cast<char>(hi - lo));
    uint64_t m = 0;
    for (int k = 0; k < 4; ++k) {
      const __m128i d = _mm_sub_epi8(v[k], l);
      const __m128i le = _mm_cmpeq_epi8(_mm_subs_epu8(d, span), _mm_setzero_si128());
      m |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(le))) << (16 * k);
    }
    return m;
  }
  uint64_t eq(char c) const {
    const __m128i b = _mm_set1_epi8(c);
    uint64_t m = 0;
    for (int k = 0; k < 4; ++k) {
      m |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v[k], b))))
           << (16 * k);
    }
    return m;
  }
};

DetectorSet window_sse2(const char* p, size_t len) {
  Sse2Window w;
  if (len == 64) {
    for (int k = 0; k < 4; ++k) w.v[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p) + k);
  } else {
    alignas(16) char buf[64] = {};
    std::memcpy(buf, p, len);  // past `len`: NUL, which no test above accepts
    for (int k = 0; k < 4; ++k) w.v[k] = _mm_load_si128(reinterpret_cast<const __m128i*>(buf) + k);
  }
  return classify(fill(w));
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define DBW_GATE_AVX512 1
// AVX-512BW, where the CPU has it (chosen at run time): one compare gives a
// whole window's mask, and the window's tail is a masked load.
#define DBW_AVX512 __attribute__((target("avx512f,avx512bw")))

struct Avx512Window {
  static constexpr bool kEager = true;
  __m512i v;
  DBW_AVX512 uint64_t range(char lo, char hi) const {
    return _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8(lo)),
                                  _mm512_set1_epi8(static_cast<char>(hi - lo)));
  }
  DBW_AVX512 uint64_t eq(char c) const { return _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(c)); }
};

DBW_AVX512 DetectorSet candidates_avx512(std::string_view t, size_t* lo, size_t* hi) {
  DetectorSet out = 0;
  size_t start = 0;
  for (;;) {
    const size_t len = t.size() - start < 64 ? t.size() - start : 64;
    Avx512Window w;
    // Past `len`: NUL, which no test accepts.
    w.v = _mm512_maskz_loadu_epi8(len == 64 ? ~__mmask64{0} : (__mmask64{1} << len) - 1,
                                  t.data() + start);
    const DetectorSet found = classify(fill(w));
    note_window(found, start, len, lo, hi);
    out |= found;
    if (start + 64 >= t.size()) return out;
    if (out == kAllBuiltins) return everything(t, hi);
    start += kStride;
  }
}

bool have_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512bw") != 0;
  return yes;
}
#endif

}  // namespace

namespace {

// Windows of 64 bytes every kStride: a prefix of up to kLookahead + 1 bytes
// starting in one window's first kStride lies whole in it; the last window
// covers the rest. [*lo, *hi): the windows that let a start through.
DetectorSet candidates_sse2(std::string_view t, size_t* lo, size_t* hi) {
  DetectorSet out = 0;
  size_t start = 0;
  for (;;) {
    const size_t len = std::min<size_t>(64, t.size() - start);
    const DetectorSet found = window_sse2(t.data() + start, len);
    note_window(found, start, len, lo, hi);
    out |= found;
    if (start + 64 >= t.size()) return out;
    if (out == kAllBuiltins) return everything(t, hi);
    start += kStride;
  }
}

DetectorSet candidates(std::string_view t, size_t* lo, size_t* hi) {
  *lo = t.size();
  *hi = 0;
#ifdef DBW_GATE_AVX512
  if (have_avx512()) return candidates_avx512(t, lo, hi);
#endif
  return candidates_sse2(t, lo, hi);
}

}  // namespace

DetectorSet builtin_candidates_sse2(std::string_view t) {
  size_t lo = t.size(), hi = 0;
  return candidates_sse2(t, &lo, &hi);
}

DetectorSet builtin_candidates(std::string_view t) {
  size_t lo, hi;
  return candidates(t, &lo, &hi);
}

DetectorSet builtin_candidates_within(std::string_view t) { return builtin_candidates(t); }

DetectorSet builtin_candidates_within(std::string_view t, size_t* begin, size_t* end) {
  const DetectorSet out = candidates(t, begin, end);
  if (out == 0) *begin = *end = 0;
  return out;
}

#else

DetectorSet builtin_candidates(std::string_view t) { return builtin_candidates_scalar(t); }

DetectorSet builtin_candidates_within(std::string_view /*t*/) { return kAllBuiltins; }

DetectorSet builtin_candidates_within(std::string_view t, size_t* begin, size_t* end) {
  *begin = 0;
  *end = t.size();
  return kAllBuiltins;
}

#endif

}  // namespace dbwarden::masking
