// SPDX-License-Identifier: Apache-2.0
#include "shipping/syslog_frame.h"

#include <catch2/catch.hpp>
#include <string>

using dbwarden::shipping::append_syslog_frame;
using dbwarden::shipping::sanitize_header_field;
using dbwarden::shipping::SyslogHeader;

namespace {
// 2026-11-26T12:34:56.123456789Z
constexpr int64_t kTime = 1795696496123456789;
}  // namespace

TEST_CASE("syslog frame: RFC 5424 header, octet counting, microseconds", "[shipping][frame]") {
  SyslogHeader h;
  h.hostname = "db1.example";
  h.app_name = "dbwarden";
  h.procid = "4242";
  std::string out;
  append_syslog_frame(h, kTime, "{\"a\":1}\n", out);
  const std::string body =
      "<110>1 2026-11-26T12:34:56.123456Z db1.example dbwarden 4242 audit - {\"a\":1}";
  CHECK(out == std::to_string(body.size()) + " " + body);
  CHECK(out.substr(0, 3) == "76 ");
}

TEST_CASE("syslog frame: priority from facility and severity", "[shipping][frame]") {
  SyslogHeader h;
  h.facility = 0;
  h.severity = 0;
  std::string out;
  append_syslog_frame(h, 0, "x", out);
  CHECK(out == "48 <0>1 1970-01-01T00:00:00.000000Z - - - audit - x");
  out.clear();
  h.facility = 23;
  h.severity = 7;
  append_syslog_frame(h, 0, "x", out);
  CHECK(out.find("<191>1 ") != std::string::npos);
}

TEST_CASE("syslog frame: header fields cannot break the header", "[shipping][frame]") {
  CHECK(sanitize_header_field("", 10) == "-");
  CHECK(sanitize_header_field("a b\nc\xc3\xa9", 10) == "a_b_c__");
  CHECK(sanitize_header_field(std::string(300, 'h'), 255).size() == 255);
  SyslogHeader h;
  h.hostname = "evil host";
  h.app_name = std::string(60, 'a');
  h.msgid = "";
  std::string out;
  append_syslog_frame(h, 0, "m", out);
  CHECK(out.find(" evil_host " + std::string(48, 'a') + " - - - m") != std::string::npos);
}

TEST_CASE("syslog frame: frames concatenate and the count is in bytes", "[shipping][frame]") {
  SyslogHeader h;
  h.hostname = "h";
  h.app_name = "a";
  h.procid = "1";
  std::string out;
  append_syslog_frame(h, 0, "\xc3\xa9", out);  // two bytes, one character
  append_syslog_frame(h, 0, "z", out);
  CHECK(out ==
        "51 <110>1 1970-01-01T00:00:00.000000Z h a 1 audit - \xc3\xa9"
        "50 <110>1 1970-01-01T00:00:00.000000Z h a 1 audit - z");
}
