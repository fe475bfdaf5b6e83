// SPDX-License-Identifier: Apache-2.0
#include "metrics/label_value.h"

#include "common/utf8.h"

namespace dbwarden::metrics {
std::string label_value(std::string_view raw) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(raw.size() < kMaxLabelValueBytes ? raw.size() : kMaxLabelValueBytes);
  size_t i = 0;
  while (i < raw.size()) {
    const size_t len = Utf8SequenceLength(raw, i);
    const size_t out_len = len == 0 ? kReplacement.size() : len;
    if (out.size() + out_len > kMaxLabelValueBytes) break;
    if (len == 0) {
      out.append(kReplacement);
      ++i;
    } else {
      out.append(raw.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace dbwarden::metrics
