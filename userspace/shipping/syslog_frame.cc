// SPDX-License-Identifier: Apache-2.0
#include "shipping/syslog_frame.h"

#include <algorithm>

#include "audit/record.h"

namespace dbwarden::shipping {

std::string sanitize_header_field(std::string_view value, size_t max_len) {
  if (value.empty()) return "-";
  std::string out;
  out.reserve(std::min(value.size(), max_len));
  for (char c : value.substr(0, max_len)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 33 && u <= 126 ? c : '_');
  }
  return out;
}

void append_syslog_frame(const SyslogHeader& header, int64_t unix_ns, std::string_view msg,
                         std::string& out) {
  if (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  std::string body;
  body.reserve(msg.size() + 128);
  const int facility = std::clamp(header.facility, 0, 23);
  const int severity = std::clamp(header.severity, 0, 7);
  body.push_back('<');
  body.append(std::to_string(facility * 8 + severity));
  body.append(">1 ");
  // "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" cut to microseconds.
  std::string ts;
  audit::append_rfc3339_nanos(unix_ns, ts);
  ts.erase(ts.size() - 4, 3);
  body.append(ts);
  body.push_back(' ');
  body.append(sanitize_header_field(header.hostname, 255));
  body.push_back(' ');
  body.append(sanitize_header_field(header.app_name, 48));
  body.push_back(' ');
  body.append(sanitize_header_field(header.procid, 128));
  body.push_back(' ');
  body.append(sanitize_header_field(header.msgid, 32));
  body.append(" - ");
  body.append(msg);
  out.append(std::to_string(body.size()));
  out.push_back(' ');
  out.append(body);
}

}  // namespace dbwarden::shipping
