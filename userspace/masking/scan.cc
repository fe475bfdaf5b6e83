// SPDX-License-Identifier: Apache-2.0
//
// Masker::scan_text: the engine says which detectors fired; each fired one's
// exact pattern then finds its candidates, and only candidates that pass the
// detector's validator count.
#include <algorithm>

#include "masking/detectors.h"
#include "masking/masker_impl.h"

namespace dbwarden::masking {
namespace {

bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool validate(uint8_t id, std::string_view text, size_t b, size_t e) {
  const std::string_view c = text.substr(b, e - b);
  switch (id) {
    case kEmail:
      return valid_email(c);
    case kPaymentCard:
      return valid_payment_card(c);
    case kIban:
      return valid_iban(c);
    case kPhone:
      // Not the tail of something longer ("x+4930...", "1+49...").
      return (b == 0 || (!is_alnum(text[b - 1]) && text[b - 1] != '+')) && valid_phone(c);
    case kUsSsn:
      // Not the middle of a longer dashed number ("12-123-45-6789").
      return (b == 0 || text[b - 1] != '-') && (e == text.size() || text[e] != '-') &&
             valid_us_ssn(c);
    case kToken:
      return valid_token(c);
    default:
      return true;  // a user's pattern: matching it is the check
  }
}

bool is_group_separator(char c) { return c == ' ' || c == '-' || c == '.'; }

// Grouped numbers (cards, IBANs, phones) may be followed by more digits in a
// separate group ("4111 1111 1111 1111 123" greedily taken as 19 digits): on
// failure, retry shorter at each group boundary, longest first.
size_t validated_end(uint8_t id, std::string_view text, size_t b, size_t e) {
  if (validate(id, text, b, e)) return e;
  if (id != kPaymentCard && id != kIban && id != kPhone) return 0;
  for (size_t k = e - 1; k > b + 1; --k) {
    if (is_group_separator(text[k]) && is_alnum(text[k - 1]) && validate(id, text, b, k)) {
      return k;
    }
  }
  return 0;
}

// Could an item of `id` start at text[s]? A cheap look at its first bytes before an
// anchored match is tried there: a card starts with an issuer digit 2-6, an IBAN with two
// capitals and two digits.
bool may_start(uint8_t id, std::string_view text, size_t s) {
  if (id == kPaymentCard) return text[s] >= '2' && text[s] <= '6';
  return text.size() - s >= 4 && text[s] >= 'A' && text[s] <= 'Z' && text[s + 1] >= 'A' &&
         text[s + 1] <= 'Z' && text[s + 2] >= '0' && text[s + 2] <= '9' && text[s + 3] >= '0' &&
         text[s + 3] <= '9';
}

// Grouped numbers may also be preceded by filler that the pattern takes as their first
// group: "ref 3803 5232 4036 2150 8295" is taken from "3803" (a 4-digit number that starts
// like a card), fails Luhn, and the card inside would be left. So a failed card or IBAN
// candidate [b, e) is tried again from each later group's start, anchored there (with the
// shorter ends above). Only group-aligned starts that may begin an item are tried, each
// match bounded by the pattern's length: the work stays linear in the text. The item found
// is [*begin, return value); 0: none. A number that fails its check from every start (a
// 16-digit number failing Luhn) stays a near-miss.
size_t regrouped_end(uint8_t id, const re2::RE2& re, std::string_view text, size_t b, size_t e,
                     size_t* begin) {
  if (id != kPaymentCard && id != kIban) return 0;
  for (size_t s = b + 2; s < e; ++s) {
    if (!is_group_separator(text[s - 1]) || !is_alnum(text[s - 2]) || !may_start(id, text, s)) {
      continue;
    }
    re2::StringPiece m;
    if (!re.Match(text, s, text.size(), re2::RE2::ANCHOR_START, &m, 1) || m.empty()) continue;
    if (const size_t end = validated_end(id, text, s, s + m.size()); end != 0) {
      *begin = s;
      return end;
    }
  }
  return 0;
}

}  // namespace

size_t Masker::scan_text(std::string_view text, DetectorSet detectors,
                         std::vector<Span>& out) const {
  detectors &= impl_->all;
  // Spans are 32-bit: a value over 4 GiB is never sent in one field anyway.
  if (text.size() > UINT32_MAX) return 0;
  DetectorSet fired = 0;
  if (const DetectorSet b = detectors & kAllBuiltins & builtin_candidates(text); b != 0) {
    // One detector left by the gate (a value holding one item, mostly): its exact search
    // decides at once; the engine's pass would only have confirmed it, one more call.
    fired |= (b & (b - 1)) == 0 ? b : impl_->builtin->scan(text, b);
  }
  if (const DetectorSet c = detectors >> kFirstCustom; c != 0 && impl_->custom) {
    fired |= impl_->custom->scan(text, c) << kFirstCustom;
  }
  if (fired == 0) return 0;
  const size_t first = out.size();
  for (uint8_t id = 0; fired != 0; ++id, fired >>= 1) {
    if ((fired & 1) == 0) continue;
    const re2::RE2& re = *impl_->exact[id];
    size_t pos = 0;
    re2::StringPiece m;
    while (pos < text.size() && re.Match(text, pos, text.size(), re2::RE2::UNANCHORED, &m, 1)) {
      const size_t b = static_cast<size_t>(m.data() - text.data());
      const size_t e = b + m.size();
      if (e == b) {  // an empty match (refused for user patterns; be safe)
        ++pos;
        continue;
      }
      size_t begin = b;
      size_t end = validated_end(id, text, b, e);
      if (end == 0) end = regrouped_end(id, re, text, b, e, &begin);
      if (end != 0) {
        out.push_back(Span{static_cast<uint32_t>(begin), static_cast<uint32_t>(end), id});
      }
      // Resume after the item found (the rest of its candidate may hold another), else
      // after the candidate: every byte is searched again at most once more, after an
      // item, so the search stays linear. Where the rest is short (one gate window) and
      // the gate rules the built-in detector out of it, the search that would find
      // nothing there is not run.
      pos = end != 0 ? end : e;
      if (id < kBuiltinDetectors && pos < text.size() && text.size() - pos <= 64 &&
          (builtin_candidates(text.substr(pos)) & (DetectorSet{1} << id)) == 0) {
        break;
      }
    }
  }
  // In order; an item overlapping an earlier one (an e-mail whose local part
  // is a phone number) is dropped: the earlier, then longer, one is masked.
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
            [](const Span& a, const Span& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
            });
  size_t keep = first;
  for (size_t i = first; i < out.size(); ++i) {
    if (keep > first && out[i].begin < out[keep - 1].end) continue;
    out[keep++] = out[i];
  }
  out.resize(keep);
  return keep - first;
}

}  // namespace dbwarden::masking
