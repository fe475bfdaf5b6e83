// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the masking engine (masking/masking.h) with arbitrary bytes as a
// result value. The first byte picks the style, the encoding and the
// nullability; the rest is the value. Checks what masking promises:
//   - the gate that spares values the built-in scan (builtin_candidates,
//     SSE2 and scalar) never rules out a detector whose pattern matches, and
//     the range it gives a row holds every built-in item's start;
//   - Hyperscan and RE2::Set find exactly the same items (the engine is only
//     a first pass; the items come from the same exact search), in order, not
//     overlapping, inside the value, each one passing its validator again;
//   - a content-masked text value has the length the style implies (full:
//     4 bytes per item; partial and format: unchanged, items being ASCII;
//     hash: 34 bytes per item) and none of the items' bytes where they were;
//   - content-masked JSON that was valid stays valid;
//   - a column-masked value of every type parses back as that type.
#include <re2/re2.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "../unit/support/value_check.h"
#include "common/utf8.h"
#include "masking/detectors.h"
#include "masking/masking.h"

namespace {

using namespace dbwarden::masking;

std::unique_ptr<const Masker> make(bool re2_set) {
  MaskerOptions o;
  o.custom.push_back({"ticket", "TCK-[0-9A-F]{4,8}"});
  o.hash_key = "fuzz-key-0123456789abcdef";
  o.use_re2_set = re2_set;
  auto m = Masker::create(std::move(o));
  if (!m.ok()) std::abort();
  return std::move(m.value());
}

bool revalidates(const Span& s, std::string_view item) {
  switch (s.detector) {
    case kEmail:
      return valid_email(item);
    case kPaymentCard:
      return valid_payment_card(item);
    case kIban:
      return valid_iban(item);
    case kPhone:
      return valid_phone(item);
    case kUsSsn:
      return valid_us_ssn(item);
    case kToken:
      return valid_token(item);
    default:
      return s.detector == kFirstCustom;
  }
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = dbwarden::Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 64 * 1024) return 0;
  static const auto hs = make(false);
  static const auto re2 = make(true);
  const Style style = static_cast<Style>(data[0] % 5);
  const Encoding enc = static_cast<Encoding>((data[0] / 5) % 4);
  const bool nullable = (data[0] & 0x80) != 0;
  const std::string value(reinterpret_cast<const char*>(data + 1), size - 1);
  const DetectorSet all = ~DetectorSet{0};

  // The gate is a superset of the patterns that match.
  static const auto exact = [] {
    std::vector<std::unique_ptr<re2::RE2>> out;
    re2::RE2::Options o;
    o.set_encoding(re2::RE2::Options::EncodingLatin1);
    o.set_dot_nl(true);
    for (uint8_t id = 0; id < kBuiltinDetectors; ++id) {
      out.push_back(std::make_unique<re2::RE2>(std::string(builtin_pattern(id)), o));
    }
    return out;
  }();
  const DetectorSet gate = builtin_candidates(value);
  const DetectorSet scalar_gate = builtin_candidates_scalar(value);
#if defined(__SSE2__)
  // AVX-512BW (where the CPU has it) and SSE2 run the same tests.
  if (gate != builtin_candidates_sse2(value)) std::abort();
#endif
  for (uint8_t id = 0; id < kBuiltinDetectors; ++id) {
    if (re2::RE2::PartialMatch(value, *exact[id]) &&
        (!(gate & (DetectorSet{1} << id)) || !(scalar_gate & (DetectorSet{1} << id)))) {
      std::abort();
    }
  }

  // The two engines agree, item for item.
  std::vector<Span> a, b;
  hs->scan_text(value, all, a);
  re2->scan_text(value, all, b);
  if (a.size() != b.size()) std::abort();
  // Every built-in item meets the range the gate gives (the relay scans only the values of
  // a row that meet it): each pattern's tested position lies inside its item.
  size_t gate_begin = 0, gate_end = 0;
  const DetectorSet within = builtin_candidates_within(value, &gate_begin, &gate_end);
  for (const Span& s : a) {
    if (s.detector >= kBuiltinDetectors) continue;
    if (!(within & (DetectorSet{1} << s.detector))) std::abort();
    if (s.begin >= gate_end || s.end <= gate_begin) std::abort();
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].begin != b[i].begin || a[i].end != b[i].end || a[i].detector != b[i].detector) {
      std::abort();
    }
    if (a[i].begin >= a[i].end || a[i].end > value.size()) std::abort();
    if (i > 0 && a[i].begin < a[i - 1].end) std::abort();
    if (!revalidates(a[i], std::string_view(value).substr(a[i].begin, a[i].end - a[i].begin))) {
      std::abort();
    }
  }

  // Content masking of a text value.
  const Column text{ValueType::kText, enc, nullable};
  std::string out;
  std::vector<Span> found;
  const Outcome o = hs->mask_content(text, style, all, value, out, &found);
  if ((o == Outcome::kReplaced) != !a.empty() || o == Outcome::kNull) std::abort();
  if (o == Outcome::kReplaced) {
    size_t items = 0;
    for (const Span& s : found) items += s.end - s.begin;
    size_t want = value.size();
    if (style == Style::kFull || style == Style::kNull)
      want = value.size() - items + 4 * found.size();
    if (style == Style::kHash) want = value.size() - items + 34 * found.size();
    if (out.size() != want) std::abort();
    if (valid_utf8(value) && !valid_utf8(out)) std::abort();
  }

  // Content masking of JSON keeps valid JSON valid.
  for (ValueType t : {ValueType::kJson, ValueType::kJsonb}) {
    const Column json{t, enc, nullable};
    const bool version = t == ValueType::kJsonb && enc == Encoding::kPgBinary;
    const std::string in = version ? "\x01" + value : value;
    if (hs->mask_content(json, style, all, in, out) == Outcome::kReplaced &&
        nlohmann::json::accept(value)) {
      if (!dbw_test::parses_as(t, enc, out)) std::abort();
    }
  }

  // Column masking: every type gives a value of its type (or NULL).
  for (int t = 0; t <= static_cast<int>(ValueType::kOther); ++t) {
    const Column col{static_cast<ValueType>(t), enc, nullable};
    const Outcome c = hs->mask_value(col, style, value, out);
    if (c == Outcome::kUnchanged) std::abort();
    if (c == Outcome::kNull) {
      if (!nullable && col.type != ValueType::kOther) std::abort();
      continue;
    }
    if (!dbw_test::parses_as(col.type, enc, out)) std::abort();
  }
  return 0;
}
