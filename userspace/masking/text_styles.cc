// SPDX-License-Identifier: Apache-2.0
#include "masking/text_styles.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>

namespace dbwarden::masking {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_alnum(char c) { return is_digit(c) || is_lower(c) || is_upper(c); }

// Length of the UTF-8 sequence led by `c` (1 for ASCII and for stray bytes:
// each stray byte is then one masked character).
size_t utf8_len(unsigned char c) {
  if (c < 0xc0) return 1;
  if (c < 0xe0) return 2;
  if (c < 0xf0) return 3;
  return 4;
}

// A keyed byte stream for kFormat: HMAC(key, "fmt" || counter || text),
// 32 bytes per block. Same text and key, same output: stable across rows.
class KeyStream {
 public:
  KeyStream(std::string_view key, std::string_view text) : key_(key), text_(text) {}
  uint8_t next() {
    if (used_ == sizeof(block_)) refill();
    return block_[used_++];
  }

 private:
  void refill() {
    msg_.assign("fmt");
    msg_.append(reinterpret_cast<const char*>(&counter_), sizeof(counter_));
    msg_.append(text_);
    hmac_sha256(key_, msg_, block_);
    ++counter_;
    used_ = 0;
  }
  std::string_view key_, text_;
  std::string msg_;  // refill()'s HMAC input, kept to reuse its buffer
  unsigned char block_[32] = {};
  size_t used_ = sizeof(block_);
  uint32_t counter_ = 0;
};

char same_class(char c, KeyStream& ks, bool nonzero_digit = false) {
  const uint8_t r = ks.next();
  if (is_digit(c))
    return nonzero_digit ? static_cast<char>('1' + r % 9) : static_cast<char>('0' + r % 10);
  if (is_lower(c)) return static_cast<char>('a' + r % 26);
  return static_cast<char>('A' + r % 26);
}

void append_format(std::string_view in, std::string_view key, std::string& out) {
  KeyStream ks(key, in);
  for (size_t i = 0; i < in.size();) {
    const char c = in[i];
    if (is_alnum(c)) {
      out.push_back(same_class(c, ks));
      ++i;
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      // A non-ASCII character (a letter, most likely): one lower-case letter,
      // so the character count stays.
      out.push_back(static_cast<char>('a' + ks.next() % 26));
      i += utf8_len(static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
      ++i;
    }
  }
}

void append_partial(std::string_view in, std::string& out) {
  // Characters that carry the secret: letters, digits, non-ASCII characters.
  size_t secret = 0;
  for (size_t i = 0; i < in.size(); i += utf8_len(static_cast<unsigned char>(in[i]))) {
    if (is_alnum(in[i]) || static_cast<unsigned char>(in[i]) >= 0x80) ++secret;
  }
  // The last 4 stay only when at least as many are hidden: a short value
  // shown 4 from the end would be shown whole.
  const size_t keep = secret >= 8 ? 4 : 0;
  size_t seen = 0;
  for (size_t i = 0; i < in.size();) {
    const char c = in[i];
    const size_t len = utf8_len(static_cast<unsigned char>(c));
    if (is_alnum(c) || static_cast<unsigned char>(c) >= 0x80) {
      ++seen;
      if (seen > secret - keep) {
        out.append(in.substr(i, len));
      } else {
        out.push_back('*');
      }
    } else {
      out.push_back(c);
    }
    i += len;
  }
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

void hmac_sha256(std::string_view key, std::string_view data, unsigned char out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
}

void append_styled(Style style, std::string_view in, std::string_view key, std::string& out) {
  switch (style) {
    case Style::kFull:
    case Style::kNull:
      out += "****";
      return;
    case Style::kPartial:
      append_partial(in, out);
      return;
    case Style::kFormat:
      append_format(in, key, out);
      return;
    case Style::kHash: {
      unsigned char mac[32];
      hmac_sha256(key, in, mac);
      out += "h:";
      for (int i = 0; i < 16; ++i) {
        out.push_back(kHex[mac[i] >> 4]);
        out.push_back(kHex[mac[i] & 15]);
      }
      return;
    }
  }
}

void append_json_masked(std::string_view value, size_t begin, size_t end, bool mask, Style style,
                        std::string_view key, bool& in_string, bool& escaped, int& hex_left,
                        std::string& out) {
  KeyStream ks(key, value.substr(begin, end - begin));
  for (size_t i = begin; i < end; ++i) {
    const char c = value[i];
    // Track the JSON lexical state; the masked character never changes it.
    if (!in_string) {
      if (c == '"') in_string = true;
      out.push_back(!mask         ? c
                    : is_digit(c) ? (style == Style::kFormat ? same_class(c, ks, true) : '1')
                                  : c);
      continue;
    }
    if (hex_left > 0) {  // \uXXXX: the hex digits stay hex
      --hex_left;
      out.push_back(c);
      continue;
    }
    if (escaped) {
      escaped = false;
      if (c == 'u') hex_left = 4;
      out.push_back(c);
      continue;
    }
    if (c == '\\') {
      escaped = true;
      out.push_back(c);
    } else if (c == '"') {
      in_string = false;
      out.push_back(c);
    } else if (!mask) {
      out.push_back(c);
    } else if (is_alnum(c)) {
      out.push_back(style == Style::kFormat ? same_class(c, ks) : '*');
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      // Any byte of a multi-byte character: '*' each (ASCII is valid in a
      // string; the character count grows, the JSON stays valid).
      out.push_back('*');
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace dbwarden::masking
