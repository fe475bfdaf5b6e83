// SPDX-License-Identifier: Apache-2.0
//
// Byte classes shared by the dialect lexers. Bytes >= 0x80 count as letters so
// that UTF-8 identifiers stay one token whatever their encoding.
#pragma once

namespace dbwarden::sql::chars {

constexpr bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
constexpr bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
constexpr bool is_ident_start(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
// Unquoted identifiers may contain '$' in both dialects.
constexpr bool is_ident_cont(unsigned char c) {
  return is_ident_start(c) || is_digit(c) || c == '$';
}
constexpr unsigned char to_upper(unsigned char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<unsigned char>(c - 'a' + 'A') : c;
}
constexpr unsigned char to_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c - 'A' + 'a') : c;
}

}  // namespace dbwarden::sql::chars
