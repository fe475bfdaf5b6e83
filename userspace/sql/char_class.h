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

// to_lower of each of the eight bytes of `w` at once (SWAR). Per byte, with
// the top bit cleared first so that no sum carries into the next byte:
// adding 0x80 - 'A' sets the top bit from 'A' up, adding 0x80 - 'Z' - 1 sets
// it above 'Z'; a byte that had its own top bit set (not ASCII) is left out.
// The bit left for the letters A-Z, moved down to 0x20, is the case bit.
constexpr uint64_t fold_lower8(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  const uint64_t low7 = w & (kOnes * 0x7f);
  const uint64_t from_a = low7 + kOnes * (0x80 - 'A');
  const uint64_t after_z = low7 + kOnes * (0x80 - 'Z' - 1);
  const uint64_t letters = from_a & ~after_z & ~w & (kOnes * 0x80);
  return w | (letters >> 2);
}

}  // namespace dbwarden::sql::chars
