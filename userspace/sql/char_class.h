// SPDX-License-Identifier: Apache-2.0
//
// Byte classes shared by the dialect lexers. Bytes >= 0x80 count as letters so
// that UTF-8 identifiers stay one token whatever their encoding. One table
// read per test: the lexers ask these for every byte of every statement.
#pragma once

#include <array>
#include <cstdint>

namespace dbwarden::sql::chars {

namespace detail {

enum : uint8_t { kSpace = 1, kDigit = 2, kIdentStart = 4, kIdentCont = 8 };

constexpr std::array<uint8_t, 256> kClasses = [] {
  std::array<uint8_t, 256> t{};
  for (unsigned char c : {' ', '\t', '\n', '\r', '\f', '\v'}) t[c] = kSpace;
  for (int c = '0'; c <= '9'; ++c) t[c] = kDigit | kIdentCont;
  for (int c = 0; c < 256; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80) {
      t[c] = kIdentStart | kIdentCont;
    }
  }
  t['$'] = kIdentCont;  // unquoted identifiers may contain '$' in both dialects
  return t;
}();

}  // namespace detail

constexpr bool is_space(unsigned char c) { return detail::kClasses[c] & detail::kSpace; }
constexpr bool is_digit(unsigned char c) { return detail::kClasses[c] & detail::kDigit; }
constexpr bool is_ident_start(unsigned char c) { return detail::kClasses[c] & detail::kIdentStart; }
constexpr bool is_ident_cont(unsigned char c) { return detail::kClasses[c] & detail::kIdentCont; }
constexpr unsigned char to_upper(unsigned char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<unsigned char>(c - 'a' + 'A') : c;
}
constexpr unsigned char to_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c - 'A' + 'a') : c;
}

}  // namespace dbwarden::sql::chars
