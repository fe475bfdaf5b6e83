// SPDX-License-Identifier: Apache-2.0
//
// Styles and types: every style on text, every type in every encoding gives a
// value that parses back as its type; content masking keeps JSON valid.
#include <catch2/catch.hpp>
#include <charconv>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>

#include "../support/temp_dir.h"
#include "../support/value_check.h"
#include "masking/masking.h"

namespace {

using namespace dbwarden::masking;
using dbw_test::be;
using dbw_test::parses_as;
using dbw_test::TempDir;

std::unique_ptr<const Masker> make(const std::string& key) {
  MaskerOptions o;
  o.hash_key = key;
  auto r = Masker::create(o);
  REQUIRE(r.ok());
  return std::move(r.value());
}

const Masker& masker() {
  static auto m = make("0123456789abcdef0123456789abcdef");
  return *m;
}

std::string mask(Style style, const std::string& in, Column col = {}) {
  std::string out;
  const Outcome o = masker().mask_value(col, style, in, out);
  REQUIRE(o == Outcome::kReplaced);
  return out;
}

}  // namespace

TEST_CASE("masking: text styles", "[masking]") {
  CHECK(mask(Style::kFull, "alice@example.com") == "****");
  CHECK(mask(Style::kPartial, "4111 1111 1111 1234") == "**** **** **** 1234");
  CHECK(mask(Style::kPartial, "abc") == "***");  // too short to show any
  CHECK(mask(Style::kPartial,
             "Jos\xc3\xa9 Garc\xc3\xad"
             "a") ==
        "**** **rc\xc3\xad"
        "a");
  const std::string f = mask(Style::kFormat, "Ab-12 cd@x.io");
  REQUIRE(f.size() == 13);
  CHECK(std::regex_match(f, std::regex(R"([A-Z][a-z]-\d\d [a-z][a-z]@[a-z]\.[a-z][a-z])")));
  CHECK(f == mask(Style::kFormat, "Ab-12 cd@x.io"));                // stable across rows
  CHECK(mask(Style::kFormat, "J\xc3\xa9r\xc3\xb4me").size() == 6);  // one letter per character
  const std::string h = mask(Style::kHash, "alice@example.com");
  CHECK(std::regex_match(h, std::regex("h:[0-9a-f]{32}")));
  CHECK(h == mask(Style::kHash, "alice@example.com"));
  CHECK(h != mask(Style::kHash, "alice@example.org"));
  // Stable across sessions: another Masker with the same key agrees; another key does not.
  std::string other;
  make("0123456789abcdef0123456789abcdef")
      ->mask_value({}, Style::kHash, "alice@example.com", other);
  CHECK(other == h);
  make("fedcba9876543210fedcba9876543210")
      ->mask_value({}, Style::kHash, "alice@example.com", other);
  CHECK(other != h);
  // null: NULL where allowed, else the empty string.
  std::string out;
  CHECK(masker().mask_value({}, Style::kNull, "x", out) == Outcome::kNull);
  Column not_null;
  not_null.nullable = false;
  CHECK(masker().mask_value(not_null, Style::kNull, "x", out) == Outcome::kReplaced);
  CHECK(out.empty());
}

TEST_CASE("masking: every type and encoding gets a value of its type", "[masking]") {
  const ValueType types[] = {ValueType::kText,      ValueType::kBool,        ValueType::kInt1,
                             ValueType::kInt2,      ValueType::kInt4,        ValueType::kInt8,
                             ValueType::kYear,      ValueType::kNumeric,     ValueType::kFloat4,
                             ValueType::kFloat8,    ValueType::kDate,        ValueType::kTime,
                             ValueType::kTimestamp, ValueType::kTimestampTz, ValueType::kUuid,
                             ValueType::kJson,      ValueType::kJsonb,       ValueType::kBytes};
  for (ValueType t : types) {
    for (Encoding e :
         {Encoding::kPgText, Encoding::kPgBinary, Encoding::kMysqlText, Encoding::kMysqlBinary}) {
      for (Style s : {Style::kFull, Style::kPartial, Style::kFormat, Style::kHash, Style::kNull}) {
        for (bool nullable : {true, false}) {
          INFO("type " << static_cast<int>(t) << " encoding " << static_cast<int>(e) << " style "
                       << style_name(s) << " nullable " << nullable);
          std::string out = "junk";
          const Outcome o = masker().mask_value({t, e, nullable}, s, "secret value 42", out);
          if (s == Style::kNull && nullable) {
            CHECK(o == Outcome::kNull);
            continue;
          }
          REQUIRE(o == Outcome::kReplaced);
          CHECK(parses_as(t, e, out));
          CHECK(out.find("secret") == std::string::npos);
        }
      }
    }
  }
  // A type with no substitute goes NULL, whatever the style.
  std::string out;
  CHECK(masker().mask_value({ValueType::kOther, Encoding::kPgText, false}, Style::kFull, "x",
                            out) == Outcome::kNull);
}

TEST_CASE("masking: substitutes are the documented values", "[masking]") {
  auto sub = [](ValueType t, Encoding e) {
    std::string out;
    REQUIRE(masker().mask_value({t, e, false}, Style::kNull, "x", out) == Outcome::kReplaced);
    return out;
  };
  CHECK(sub(ValueType::kInt4, Encoding::kPgText) == "0");
  CHECK(be<int32_t>(sub(ValueType::kInt4, Encoding::kPgBinary)) == 0);
  // 1970-01-01 is 10957 days before PostgreSQL's 2000-01-01 epoch.
  CHECK(be<int32_t>(sub(ValueType::kDate, Encoding::kPgBinary)) == -10957);
  CHECK(be<int64_t>(sub(ValueType::kTimestampTz, Encoding::kPgBinary)) == -946684800000000);
  CHECK(sub(ValueType::kTimestampTz, Encoding::kPgText) == "1970-01-01 00:00:00+00");
  CHECK(sub(ValueType::kUuid, Encoding::kPgBinary) == std::string(16, '\0'));
  CHECK(sub(ValueType::kJsonb, Encoding::kPgBinary) == std::string("\x01{}"));
  CHECK(sub(ValueType::kBytes, Encoding::kPgText) == "\\x");
  CHECK(sub(ValueType::kBytes, Encoding::kPgBinary).empty());
  CHECK(sub(ValueType::kDate, Encoding::kMysqlBinary) == std::string("\xb2\x07\x01\x01", 4));
  CHECK(sub(ValueType::kYear, Encoding::kMysqlBinary) == std::string("\xb2\x07", 2));
  CHECK(sub(ValueType::kNumeric, Encoding::kMysqlBinary) == "0");
}

TEST_CASE("masking: type lookup by PostgreSQL OID and MySQL column type", "[masking]") {
  CHECK(pg_value_type(25) == ValueType::kText);
  CHECK(pg_value_type(1043) == ValueType::kText);
  CHECK(pg_value_type(23) == ValueType::kInt4);
  CHECK(pg_value_type(1700) == ValueType::kNumeric);
  CHECK(pg_value_type(2950) == ValueType::kUuid);
  CHECK(pg_value_type(3802) == ValueType::kJsonb);
  CHECK(pg_value_type(17) == ValueType::kBytes);
  CHECK(pg_value_type(1184) == ValueType::kTimestampTz);
  CHECK(pg_value_type(869) == ValueType::kOther);  // inet
  CHECK(mysql_value_type(253, 0, 45) == ValueType::kText);
  CHECK(mysql_value_type(252, 0, 63) == ValueType::kBytes);
  CHECK(mysql_value_type(3, 1, 63) == ValueType::kInt4);
  CHECK(mysql_value_type(246, 0, 63) == ValueType::kNumeric);
  CHECK(mysql_value_type(12, 0, 63) == ValueType::kTimestamp);
  CHECK(mysql_value_type(245, 0, 63) == ValueType::kJson);
  CHECK(mysql_value_type(16, 0, 63) == ValueType::kOther);  // BIT
}

TEST_CASE("masking: content rules mask the items inside a value", "[masking]") {
  const std::string in = "reach alice@example.com or card 4111111111111111, ref 4111111111111112";
  std::string out;
  std::vector<Span> found;
  REQUIRE(masker().mask_content({}, Style::kFull, kAllBuiltins, in, out, &found) ==
          Outcome::kReplaced);
  CHECK(out == "reach **** or card ****, ref 4111111111111112");
  CHECK(found.size() == 2);
  REQUIRE(masker().mask_content({}, Style::kPartial, kAllBuiltins, in, out) == Outcome::kReplaced);
  CHECK(out == "reach *****@******e.com or card ************1111, ref 4111111111111112");
  // Nothing found: unchanged, `out` untouched.
  out = "keep";
  CHECK(masker().mask_content({}, Style::kFull, kAllBuiltins, "plain text", out) ==
        Outcome::kUnchanged);
  CHECK(out == "keep");
  // Not text: left alone (a column rule covers those).
  CHECK(masker().mask_content({ValueType::kInt8, Encoding::kPgText, true}, Style::kFull,
                              kAllBuiltins, "4111111111111111", out) == Outcome::kUnchanged);
}

TEST_CASE("masking: content masking keeps JSON valid", "[masking]") {
  const std::string doc =
      R"({"email":"alice@example.com","card":4111111111111111,"n":"a\u00e9 +14155552671"})";
  for (ValueType t : {ValueType::kJson, ValueType::kJsonb}) {
    for (Style s : {Style::kFull, Style::kFormat, Style::kHash, Style::kPartial}) {
      for (Encoding e : {Encoding::kPgText, Encoding::kPgBinary}) {
        INFO("style " << style_name(s) << " encoding " << static_cast<int>(e));
        const bool version = t == ValueType::kJsonb && e == Encoding::kPgBinary;
        const std::string in = version ? "\x01" + doc : doc;
        std::string out;
        REQUIRE(masker().mask_content({t, e, true}, s, kAllBuiltins, in, out) ==
                Outcome::kReplaced);
        CHECK(parses_as(t, e, out));
        CHECK(out.find("alice") == std::string::npos);
        CHECK(out.find("4111111111111111") == std::string::npos);
        CHECK(out.find("4155552671") == std::string::npos);
      }
    }
  }
}

TEST_CASE("masking: hash key file", "[masking]") {
  TempDir dir;
  const std::string path = dir.path + "/key";
  std::ofstream(path) << "short";
  auto short_key = load_hash_key(path);
  REQUIRE_FALSE(short_key.ok());
  CHECK(short_key.status().message().find("16-4096 bytes") != std::string::npos);
  std::ofstream(path, std::ios::app) << "0123456789abcdef";
  auto key = load_hash_key(path);
  REQUIRE(key.ok());
  CHECK(key.value() == "short0123456789abcdef");
  CHECK_FALSE(load_hash_key(dir.path + "/missing").ok());
  CHECK_FALSE(load_hash_key(dir.path).ok());
}
