// SPDX-License-Identifier: Apache-2.0
//
// JSON string output for audit records (RFC 8259 section 7). The input is
// whatever bytes came off the wire, so the output must be valid JSON for any
// input: quote and backslash are escaped, control characters become \u00XX
// (or \n, \t, ...), and bytes that are not well-formed UTF-8 (RFC 3629
// section 4: no overlong forms, no surrogates, nothing above U+10FFFF) each
// become U+FFFD, written as \ufffd.
#pragma once

#include <string>
#include <string_view>

namespace dbwarden::audit {

// Appends `text` as a JSON string, including the surrounding quotes.
void append_json_string(std::string_view text, std::string& out);

}  // namespace dbwarden::audit
