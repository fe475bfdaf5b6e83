// SPDX-License-Identifier: Apache-2.0
#include "audit/json_escape.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace {

using dbwarden::audit::append_json_string;

std::string escape(std::string_view s) {
  std::string out;
  append_json_string(s, out);
  return out;
}

// Reference for what the escaper must produce after parsing: decode code
// points by value (not by byte tables like the code under test) and replace
// every byte that does not start a well-formed sequence with U+FFFD.
std::string reference_sanitise(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    size_t len = b < 0x80           ? 1
                 : (b >> 5) == 0x6  ? 2
                 : (b >> 4) == 0xE  ? 3
                 : (b >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len != 0 && i + len <= s.size();
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cb = static_cast<uint8_t>(s[i + k]);
      ok = (cb & 0xC0) == 0x80;
      cp = (cp << 6) | (cb & 0x3F);
    }
    if (ok) {
      const uint32_t min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
      ok = cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

std::string parse_string(const std::string& json) {
  return nlohmann::json::parse(json).get<std::string>();
}

}  // namespace

TEST_CASE("json escape: plain and special characters", "[audit][json]") {
  CHECK(escape("") == R"("")");
  CHECK(escape("SELECT 1") == R"("SELECT 1")");
  CHECK(escape(R"(a"b\c)") == R"("a\"b\\c")");
  CHECK(escape("\n\r\t\b\f") == R"("\n\r\t\b\f")");
  CHECK(escape(std::string("\0\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\x7f\"");
  CHECK(escape("/") == R"("/")");
}

TEST_CASE("json escape: UTF-8 kept, invalid bytes replaced", "[audit][json]") {
  CHECK(escape("\xc3\xa9") == "\"\xc3\xa9\"");                  // é
  CHECK(escape("\xe2\x82\xac") == "\"\xe2\x82\xac\"");          // €
  CHECK(escape("\xf0\x9f\x98\x80") == "\"\xf0\x9f\x98\x80\"");  // emoji
  CHECK(escape("\xf4\x8f\xbf\xbf") == "\"\xf4\x8f\xbf\xbf\"");  // U+10FFFF
  CHECK(escape("\xff") == R"("\ufffd")");
  CHECK(escape("\x80") == R"("\ufffd")");
  CHECK(escape("\xc0\xaf") == R"("\ufffd\ufffd")");                      // overlong '/'
  CHECK(escape("\xe0\x80\xaf") == R"("\ufffd\ufffd\ufffd")");            // overlong
  CHECK(escape("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");            // surrogate U+D800
  CHECK(escape("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // > U+10FFFF
  CHECK(escape("a\xc3") == R"("a\ufffd")");                              // truncated at the end
  CHECK(escape("\xe2\x82x") == R"("\ufffd\ufffdx")");
  CHECK(escape("\xf5\x80\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");
}

TEST_CASE("json escape: reference agrees on the hand-picked cases", "[audit][json]") {
  for (std::string_view s :
       {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xc3", "\xf0\x9f\x98\x80"}) {
    CHECK(parse_string(escape(s)) == reference_sanitise(s));
  }
}

TEST_CASE("json escape: random bytes always give valid JSON (fixed seed)", "[audit][json]") {
  // Biased towards the interesting bytes: quotes, backslash, controls, UTF-8
  // lead and continuation bytes, and the edges of the valid ranges.
  static constexpr uint8_t kInteresting[] = {'"',  '\\', 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc0,
                                             0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4,
                                             0xf5, 0xff, 0x9f, 0xa0, 0x8f, 0x90, '\n', 'a'};
  std::mt19937_64 rng(20240601);
  for (int round = 0; round < 20000; ++round) {
    const size_t len = rng() % 40;
    std::string s;
    for (size_t i = 0; i < len; ++i) {
      s.push_back(static_cast<char>(rng() % 2 ? kInteresting[rng() % sizeof(kInteresting)]
                                              : static_cast<uint8_t>(rng())));
    }
    const std::string json = escape(s);
    std::string parsed;
    REQUIRE_NOTHROW(parsed = parse_string(json));
    REQUIRE(parsed == reference_sanitise(s));
  }
}

TEST_CASE("json escape: one special byte at every position of long plain runs", "[audit][json]") {
  // The plain-run scan works sixteen bytes at a time: a special byte must stop it
  // wherever it sits in a block, in the scalar tail, and at block boundaries.
  for (uint8_t special : {uint8_t{'"'}, uint8_t{'\\'}, uint8_t{0x00}, uint8_t{0x1f},
                          uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xc3}, uint8_t{0xff}}) {
    for (size_t len = 1; len <= 70; ++len) {
      for (size_t at = 0; at < len; ++at) {
        std::string s;
        for (size_t i = 0; i < len; ++i) s.push_back(static_cast<char>('a' + i % 26));
        s[at] = static_cast<char>(special);
        std::string parsed;
        REQUIRE_NOTHROW(parsed = parse_string(escape(s)));
        REQUIRE(parsed == reference_sanitise(s));
      }
    }
  }
  // Plain text of every length comes out unchanged between its quotes.
  for (size_t len = 0; len <= 70; ++len) {
    const std::string s(len, 'x');
    REQUIRE(escape(s) == "\"" + s + "\"");
  }
}

TEST_CASE("json escape: write_json_string stays within json_string_bound", "[audit][json]") {
  // Worst cases (six output bytes per input byte) and random bytes, fixed
  // seed: the writer ends inside the bound, never past it (a canary after the
  // bound stays intact), and writes exactly what append_json_string appends.
  using dbwarden::audit::json_string_bound;
  using dbwarden::audit::write_json_string;
  std::mt19937 rng(77);
  std::vector<std::string> texts = {"", std::string(100, '\x01'), std::string(100, '\xff'),
                                    std::string(33, '"'), std::string(17, '\\')};
  for (int i = 0; i < 2000; ++i) {
    std::string t(rng() % 80, '\0');
    for (char& c : t) c = static_cast<char>(rng());
    texts.push_back(t);
  }
  for (const std::string& t : texts) {
    const size_t bound = json_string_bound(t.size());
    std::string buf(bound + 16, '#');
    const char* end = write_json_string(t, buf.data());
    const auto written = static_cast<size_t>(end - buf.data());
    REQUIRE(written <= bound);
    CHECK(buf.compare(bound, 16, std::string(16, '#')) == 0);
    CHECK(buf.substr(0, written) == escape(t));
  }
  CHECK(escape(std::string(100, '\x01')).size() == json_string_bound(100));
}
