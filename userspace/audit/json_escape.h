// SPDX-License-Identifier: Apache-2.0
//
// JSON string output for audit records (RFC 8259 section 7). The input is
// whatever bytes came off the wire, so the output must be valid JSON for any
// input: quote and backslash are escaped, control characters become \u00XX
// (or \n, \t, ...), and bytes that are not well-formed UTF-8 (RFC 3629
// section 4: no overlong forms, no surrogates, nothing above U+10FFFF) each
// become U+FFFD, written as \ufffd.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dbwarden::audit {

// Appends `text` as a JSON string, including the surrounding quotes.
void append_json_string(std::string_view text, std::string& out);

// The most bytes `text` of `length` bytes can take as a JSON string: each
// byte becomes at most six (\u00XX, or \ufffd for a byte that is not
// UTF-8), plus the quotes.
constexpr size_t json_string_bound(size_t length) { return 6 * length + 2; }

// The same as append_json_string, written at `p`, which has room for
// json_string_bound(text.size()) bytes. Returns the end of what it wrote.
char* write_json_string(std::string_view text, char* p);

}  // namespace dbwarden::audit
