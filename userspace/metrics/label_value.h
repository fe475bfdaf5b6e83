// SPDX-License-Identifier: Apache-2.0
//
// Label values come from the wire (user and database names, SQLSTATEs), so
// they are made safe before they become part of a time series: the text
// exposition format needs valid UTF-8 (Prometheus rejects a scrape with an
// invalid label value), and very long values would bloat every scrape.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dbwarden::metrics {

inline constexpr size_t kMaxLabelValueBytes = 128;

// Replaces each byte that does not start a well-formed UTF-8 sequence with
// U+FFFD and cuts the result to at most kMaxLabelValueBytes, on a character
// boundary.
std::string label_value(std::string_view raw);

}  // namespace dbwarden::metrics
