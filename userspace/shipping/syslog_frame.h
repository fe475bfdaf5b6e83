// SPDX-License-Identifier: Apache-2.0
//
// One audit record as an RFC 5424 syslog message, framed for TCP with octet
// counting (RFC 6587 section 3.4.1):
//
//   LEN SP <PRI>1 SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP - SP MSG
//
// LEN is the decimal byte count of everything after the space. PRI is
// facility * 8 + severity (https://www.rfc-editor.org/rfc/rfc5424#section-6.2.1);
// TIMESTAMP is UTC with microseconds (RFC 5424 allows at most 6 fractional
// digits); STRUCTURED-DATA is always the NILVALUE "-"; MSG is the JSON record
// without its trailing newline, sent as MSG-ANY (no BOM) because the JSON is
// the payload a collector's parser expects to see unchanged. Header fields
// are PRINTUSASCII without spaces, at most 255/48/128/32 bytes; other bytes
// become '_' and an empty field becomes "-", so a hostile hostname cannot
// break the header.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dbwarden::shipping {

struct SyslogHeader {
  int facility = 13;  // 13 = "log audit" (RFC 5424 table 1)
  int severity = 6;   // 6 = informational: an audit record is not an alert
  std::string hostname;
  std::string app_name;
  std::string procid;
  std::string msgid = "audit";
};

// Appends one framed message to `out`. `unix_ns` is the record's wall-clock
// time. A trailing '\n' of `msg` is not sent (it is not part of the record).
void append_syslog_frame(const SyslogHeader& header, int64_t unix_ns, std::string_view msg,
                         std::string& out);

// Makes a header field valid: PRINTUSASCII except space, at most max_len
// bytes, "-" when empty.
std::string sanitize_header_field(std::string_view value, size_t max_len);

}  // namespace dbwarden::shipping
