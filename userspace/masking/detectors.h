// SPDX-License-Identifier: Apache-2.0
//
// The built-in detectors: each one's pattern (for the multi-pattern engine and,
// exactly, for locating its items) and its validator (the check a candidate
// must pass to count: Luhn, mod-97, ...). Exposed for tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "masking/masking.h"

namespace dbwarden::masking {

// The pattern of built-in detector `id` (< kBuiltinDetectors).
std::string_view builtin_pattern(uint8_t id);

// The built-in detectors that may have an item in `text`: a superset of
// those whose pattern matches, computed in one cheap pass (gate.cc).
// SSE2 tests 64 positions at once; the scalar form is the portable one (and
// the stricter: it follows digit runs), kept for other targets and tests.
// On x86-64 it runs AVX-512BW where the CPU has it, else SSE2: the same tests
// either way (builtin_candidates_sse2 is exposed so that tests compare them).
DetectorSet builtin_candidates(std::string_view text);
DetectorSet builtin_candidates_scalar(std::string_view text);
#if defined(__SSE2__)
DetectorSet builtin_candidates_sse2(std::string_view text);
#endif
// The same for every part of `text` at once: a superset of builtin_candidates(p) for each
// substring p. The SSE2 gate tests only for the presence of byte patterns, so it is one;
// the scalar gate follows runs that a longer text may extend, so without SSE2 this
// rules nothing out.
DetectorSet builtin_candidates_within(std::string_view text);
// The same, and where: every position its tests let through lies in [*begin, *end) (empty
// when none; the whole text where the gate cannot say). Each pattern's tested position lies
// inside its item (a card's first digit, the byte before an e-mail's '@', ...), so every
// item meets that range: a part of `text` that does not meet it holds no built-in item.
DetectorSet builtin_candidates_within(std::string_view text, size_t* begin, size_t* end);

// Validators take the candidate as the pattern matched it.
bool luhn_ok(std::string_view digits);  // digits only
bool valid_payment_card(std::string_view candidate);
bool valid_iban(std::string_view candidate);
bool valid_phone(std::string_view candidate);
bool valid_us_ssn(std::string_view candidate);
bool valid_token(std::string_view candidate);
bool valid_email(std::string_view candidate);

}  // namespace dbwarden::masking
