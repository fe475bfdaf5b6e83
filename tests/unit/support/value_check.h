// SPDX-License-Identifier: Apache-2.0
//
// Does a masked value parse as its type? The checks the clients make (digits
// for text numbers, the dates' shapes, binary widths, JSON that parses),
// shared by the masking unit tests and its fuzz target.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>
#include <string>

#include "masking/masking.h"

namespace dbw_test {

using dbwarden::masking::Encoding;
using dbwarden::masking::ValueType;

inline bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// A big-endian integer of exactly sizeof(T) bytes.
template <typename T>
T be(const std::string& s) {
  if (s.size() != sizeof(T)) throw std::length_error("be<T>: wrong width");
  T v = 0;
  for (unsigned char c : s) v = static_cast<T>((static_cast<uint64_t>(v) << 8) | c);
  return v;
}

// Does `v` parse as a value of `t` in `enc`? The checks the clients make.
inline bool parses_as(ValueType t, Encoding enc, const std::string& v) {
  const bool pg = enc == Encoding::kPgText || enc == Encoding::kPgBinary;
  const bool bin = enc == Encoding::kPgBinary || enc == Encoding::kMysqlBinary;
  static const std::regex date(R"(\d{4}-\d{2}-\d{2})");
  static const std::regex ts(R"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})");
  static const std::regex tstz(R"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{2})");
  static const std::regex uuid(R"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})");
  switch (t) {
    case ValueType::kText:
      return true;
    case ValueType::kBool:
      return bin ? v.size() == 1 : (pg ? v == "t" || v == "f" : all_digits(v));
    case ValueType::kInt1:
      return bin ? v.size() == 1 : all_digits(v);
    case ValueType::kInt2:
    case ValueType::kYear:
      return bin ? v.size() == 2 : all_digits(v);
    case ValueType::kInt4:
    case ValueType::kFloat4:
      return bin ? v.size() == 4 : all_digits(v);
    case ValueType::kInt8:
    case ValueType::kFloat8:
      return bin ? v.size() == 8 : all_digits(v);
    case ValueType::kNumeric:
      return pg && bin ? v.size() >= 8 &&
                             v.size() == 8 + 2 * static_cast<size_t>(be<uint16_t>(v.substr(0, 2)))
                       : all_digits(v);
    case ValueType::kDate:
      if (!bin) return std::regex_match(v, date);
      return pg ? v.size() == 4 : v.size() == 4 || v.size() == 0;
    case ValueType::kTime:
      if (!bin) return v == "00:00:00";
      return pg ? v.size() == 8 : v.size() == 0 || v.size() == 8 || v.size() == 12;
    case ValueType::kTimestamp:
      if (!bin) return std::regex_match(v, ts);
      return pg ? v.size() == 8 : v.size() == 0 || v.size() == 4 || v.size() == 7 || v.size() == 11;
    case ValueType::kTimestampTz:  // MySQL has none: its TIMESTAMP is kTimestamp
      if (!pg) return parses_as(ValueType::kTimestamp, enc, v);
      return bin ? v.size() == 8 : std::regex_match(v, tstz);
    case ValueType::kUuid:
      return pg && bin ? v.size() == 16 : std::regex_match(v, uuid);
    case ValueType::kJson:
      return nlohmann::json::accept(v);
    case ValueType::kJsonb:
      if (pg && bin) return v.size() >= 1 && v[0] == 1 && nlohmann::json::accept(v.substr(1));
      return nlohmann::json::accept(v);
    case ValueType::kBytes:
      return pg && !bin ? v.rfind("\\x", 0) == 0 && (v.size() % 2) == 0 : true;
    case ValueType::kOther:
      return false;
  }
  return false;
}

}  // namespace dbw_test
