// SPDX-License-Identifier: Apache-2.0
//
// The text styles applied to a piece of text (a whole value or one detected
// item), and the JSON-safe variant used inside json/jsonb values.
#pragma once

#include <string>
#include <string_view>

#include "masking/masking.h"

namespace dbwarden::masking {

// Appends `in` masked by `style` (kNull counts as kFull here) to `out`.
// Output is ASCII wherever it differs from the input, so valid UTF-8 stays
// valid.
void append_styled(Style style, std::string_view in, std::string_view key, std::string& out);

// Appends bytes [begin, end) of `value` (a JSON document) to `out`, masked
// (`mask`) or as they are, character by character in a way that keeps any valid JSON valid:
// inside strings letters and digits become '*' (kFormat: keyed characters of
// the same class) and escapes stay; outside strings digits become non-zero
// digits and everything else stays. The lexical state (in_string, escaped,
// hex_left) carries from one call to the next: start with false, false, 0.
void append_json_masked(std::string_view value, size_t begin, size_t end, bool mask, Style style,
                        std::string_view key, bool& in_string, bool& escaped, int& hex_left,
                        std::string& out);

// HMAC-SHA256(key, data) into 32 bytes.
void hmac_sha256(std::string_view key, std::string_view data, unsigned char out[32]);

}  // namespace dbwarden::masking
