// SPDX-License-Identifier: Apache-2.0
//
// Built-in detector patterns and validators. Patterns use only what both
// Hyperscan and RE2 run the same way (no look-around, no back-references,
// ASCII classes, \b), since one pattern serves both the engine and the exact
// search.
#include "masking/detectors.h"

#include <array>
#include <cstdint>
#include <string>

#include "masking/masking.h"

namespace dbwarden::masking {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }

constexpr std::array<std::string_view, kBuiltinDetectors> kNames = {
    "email", "payment_card", "iban", "phone", "us_ssn", "token"};

// Card: 13-19 digits, starting with an issuer digit 2-6 (Mastercard 2/5,
// Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6), contiguous or grouped as
// printed: 4-4-4-4 (-3), or Amex/Diners 4-6-5 / 4-6-4, by spaces or dashes
// (digits grouped any other way are numbers in prose, not a card). IBAN: country, 2 check digits,
// 11-30 alphanumerics in optional groups. Phone: E.164, "+", country code, 8-15 digits in all, with
// optional single separators. SSN: AAA-GG-SSSS. Tokens: a JWT (two base64url
// segments starting with `{"` = "eyJ", then a signature), AWS access key ids,
// Stripe-style sk_/rk_ live/test keys, GitHub tokens, Slack tokens.
constexpr std::array<std::string_view, kBuiltinDetectors> kPatterns = {
    R"([A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}\b)",
    R"(\b[2-6][0-9]{12,18}\b|)"
    R"(\b[2-6][0-9]{3}[ \-][0-9]{4}[ \-][0-9]{4}[ \-][0-9]{4}(?:[ \-][0-9]{3})?\b|)"
    R"(\b3[0-9]{3}[ \-][0-9]{6}[ \-][0-9]{4,5}\b)",
    R"(\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b)",
    R"(\+[1-9](?:[ .\-]?[0-9]){7,14}\b)",
    R"(\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b)",
    R"(\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*|)"
    R"(\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b|)"
    R"(\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}\b|)"
    R"(\bgh[pousr]_[A-Za-z0-9]{36}\b|)"
    R"(\bxox[abposr]-[A-Za-z0-9\-]{10,72}\b)",
};

int b64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (is_digit(c)) return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// The first bytes of a base64url segment, decoded.
std::string b64url_prefix(std::string_view seg, size_t max_out) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : seg) {
    const int v = b64url_value(c);
    if (v < 0) break;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
      if (out.size() >= max_out) break;
    }
  }
  return out;
}

}  // namespace

std::string_view builtin_detector_name(uint8_t id) {
  return id < kBuiltinDetectors ? kNames[id] : std::string_view();
}

int builtin_detector_id(std::string_view name) {
  for (uint8_t i = 0; i < kBuiltinDetectors; ++i) {
    if (kNames[i] == name) return i;
  }
  return -1;
}

std::string_view builtin_pattern(uint8_t id) {
  return id < kBuiltinDetectors ? kPatterns[id] : std::string_view();
}

bool luhn_ok(std::string_view digits) {
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return !digits.empty() && sum % 10 == 0;
}

bool valid_payment_card(std::string_view c) {
  std::string digits;
  char separator = 0;
  for (char ch : c) {
    if (is_digit(ch)) {
      digits.push_back(ch);
    } else if (separator == 0) {
      separator = ch;
    } else if (ch != separator) {
      return false;  // "4111 1111-1111 1111": mixed separators are not a card as written
    }
  }
  if (digits.size() < 13 || digits.size() > 19) return false;
  // All one digit passes Luhn for some lengths and is never an issued card.
  if (digits.find_first_not_of(digits[0]) == std::string::npos) return false;
  return luhn_ok(digits);
}

bool valid_iban(std::string_view c) {
  std::string s;
  for (char ch : c) {
    if (ch != ' ') s.push_back(ch);
  }
  if (s.size() < 15 || s.size() > 34) return false;
  if (!is_upper(s[0]) || !is_upper(s[1]) || !is_digit(s[2]) || !is_digit(s[3])) return false;
  // ISO 13616: move the first four characters to the end, letters become
  // 10..35, the number mod 97 must be 1. Computed digit by digit.
  uint32_t rem = 0;
  const std::string rotated = s.substr(4) + s.substr(0, 4);
  for (char ch : rotated) {
    if (is_digit(ch)) {
      rem = (rem * 10 + static_cast<uint32_t>(ch - '0')) % 97;
    } else if (is_upper(ch)) {
      rem = (rem * 100 + static_cast<uint32_t>(ch - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return rem == 1;
}

bool valid_phone(std::string_view c) {
  size_t digits = 0;
  for (char ch : c) digits += is_digit(ch) ? 1 : 0;
  return c.size() > 1 && c[0] == '+' && digits >= 8 && digits <= 15;
}

bool valid_us_ssn(std::string_view c) {
  if (c.size() != 11) return false;
  const std::string_view area = c.substr(0, 3), group = c.substr(4, 2), serial = c.substr(7, 4);
  // Never issued: area 000, 666, 900-999; group 00; serial 0000.
  if (area == "000" || area == "666" || area[0] == '9') return false;
  return group != "00" && serial != "0000";
}

bool valid_token(std::string_view c) {
  if (c.substr(0, 3) != "eyJ") return true;  // the other token forms are exact formats
  // A JWT's header is a JSON object naming its algorithm.
  const std::string header = b64url_prefix(c.substr(0, c.find('.')), 96);
  return header.size() >= 2 && header[0] == '{' && header.find("\"alg\"") != std::string::npos;
}

bool valid_email(std::string_view c) {
  const size_t at = c.find('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return false;
  const std::string_view local = c.substr(0, at), domain = c.substr(at + 1);
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return false;
  }
  // Domain labels: 1-63 characters, not starting or ending with '-'.
  size_t start = 0;
  while (start <= domain.size()) {
    size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    const std::string_view label = domain.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    start = dot + 1;
  }
  return domain.size() <= 253;
}

}  // namespace dbwarden::masking
