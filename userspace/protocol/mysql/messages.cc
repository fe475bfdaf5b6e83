// SPDX-License-Identifier: Apache-2.0
#include "protocol/mysql/messages.h"

#include <cstring>
#include <string>

namespace dbwarden::mysql {

bool IsKnownCommand(uint8_t byte) { return byte <= 0x1f || byte == 0xfa || byte == 0xfe; }

bool Reader::need(size_t n) {
  if (!ok_ || b_.size() - pos_ < n) ok_ = false;
  return ok_;
}

bool Reader::u8(uint8_t* v) {
  if (!need(1)) return false;
  *v = b_[pos_++];
  return true;
}

bool Reader::u16(uint16_t* v) {
  if (!need(2)) return false;
  *v = static_cast<uint16_t>(b_[pos_] | (b_[pos_ + 1] << 8));
  pos_ += 2;
  return true;
}

bool Reader::u24(uint32_t* v) {
  if (!need(3)) return false;
  *v = b_[pos_] | (uint32_t{b_[pos_ + 1]} << 8) | (uint32_t{b_[pos_ + 2]} << 16);
  pos_ += 3;
  return true;
}

bool Reader::u32(uint32_t* v) {
  if (!need(4)) return false;
  *v = b_[pos_] | (uint32_t{b_[pos_ + 1]} << 8) | (uint32_t{b_[pos_ + 2]} << 16) |
       (uint32_t{b_[pos_ + 3]} << 24);
  pos_ += 4;
  return true;
}

bool Reader::u64(uint64_t* v) {
  uint32_t lo = 0, hi = 0;
  if (!u32(&lo) || !u32(&hi)) return false;
  *v = lo | (uint64_t{hi} << 32);
  return true;
}

bool Reader::lenenc(uint64_t* v) {
  uint8_t c = 0;
  if (!u8(&c)) return false;
  if (c < 0xfb) {
    *v = c;
    return true;
  }
  if (c == 0xfc) {
    uint16_t x = 0;
    if (!u16(&x)) return false;
    *v = x;
    return true;
  }
  if (c == 0xfd) {
    uint32_t x = 0;
    if (!u24(&x)) return false;
    *v = x;
    return true;
  }
  if (c == 0xfe) return u64(v);
  ok_ = false;  // 0xfb is NULL, 0xff is not an integer
  return false;
}

bool Reader::bytes(size_t n, std::string_view* s) {
  if (!need(n)) return false;
  *s = {reinterpret_cast<const char*>(b_.data()) + pos_, n};
  pos_ += n;
  return true;
}

bool Reader::lenenc_string(std::string_view* s) {
  uint64_t n = 0;
  if (!lenenc(&n)) return false;
  if (n > remaining()) {
    ok_ = false;
    return false;
  }
  return bytes(static_cast<size_t>(n), s);
}

bool Reader::cstring(std::string_view* s) {
  if (!ok_) return false;
  const void* nul = std::memchr(b_.data() + pos_, 0, b_.size() - pos_);
  if (nul == nullptr) {
    ok_ = false;
    return false;
  }
  const size_t n = static_cast<const uint8_t*>(nul) - (b_.data() + pos_);
  *s = {reinterpret_cast<const char*>(b_.data()) + pos_, n};
  pos_ += n + 1;
  return true;
}

bool Reader::skip(size_t n) {
  if (!need(n)) return false;
  pos_ += n;
  return true;
}

std::string_view Reader::rest() {
  if (!ok_) return {};
  std::string_view s(reinterpret_cast<const char*>(b_.data()) + pos_, b_.size() - pos_);
  pos_ = b_.size();
  return s;
}

bool ParseGreeting(std::span<const uint8_t> payload, Greeting* out) {
  Reader r(payload);
  uint8_t version = 0, filler = 0, charset = 0, scramble_len = 0;
  uint16_t caps_lo = 0, status = 0, caps_hi = 0;
  uint32_t ext = 0;
  if (!r.u8(&version) || version != 10) return false;
  if (!r.cstring(&out->version) || !r.u32(&out->connection_id) || !r.skip(8) || !r.u8(&filler) ||
      !r.u16(&caps_lo)) {
    return false;
  }
  out->capabilities = caps_lo;
  // Pre-4.1 servers stop here; the rest is optional.
  if (!r.u8(&charset) || !r.u16(&status) || !r.u16(&caps_hi) || !r.u8(&scramble_len) ||
      !r.skip(6) || !r.u32(&ext)) {
    return true;
  }
  out->capabilities |= uint64_t{caps_hi} << 16;
  // MariaDB clears CLIENT_LONG_PASSWORD (bit 0) to say "extended capabilities follow".
  if ((caps_lo & 1) == 0) out->capabilities |= uint64_t{ext} << 32;
  return true;
}

bool ParseHandshakeResponse(std::span<const uint8_t> payload, HandshakeResponse* out) {
  Reader r(payload);
  uint32_t caps = 0, ext = 0;
  if (!r.u32(&caps) || !r.skip(4 + 1 + 19) || !r.u32(&ext)) return false;
  out->capabilities = caps | (uint64_t{ext} << 32);
  if ((caps & kClientProtocol41) == 0) return false;  // pre-4.1 clients are not supported
  if (r.remaining() == 0) {
    out->ssl_request = (caps & kClientSsl) != 0;
    return out->ssl_request;
  }
  if (!r.cstring(&out->user)) return false;
  // Skip the authentication response without looking at it.
  if (caps & kClientPluginAuthLenencData) {
    std::string_view auth;
    if (!r.lenenc_string(&auth)) return true;
  } else if (caps & kClientSecureConnection) {
    uint8_t n = 0;
    if (!r.u8(&n) || !r.skip(n)) return true;
  } else {
    std::string_view auth;
    if (!r.cstring(&auth)) return true;
  }
  if (caps & kClientConnectWithDb) out->has_database = r.cstring(&out->database);
  return true;
}

bool ParseChangeUser(std::span<const uint8_t> payload, uint64_t capabilities, ChangeUser* out) {
  Reader r(payload);
  uint8_t cmd = 0;
  if (!r.u8(&cmd) || cmd != kComChangeUser || !r.cstring(&out->user)) return false;
  if (capabilities & kClientSecureConnection) {
    uint8_t n = 0;
    if (!r.u8(&n) || !r.skip(n)) return true;
  } else {
    std::string_view auth;
    if (!r.cstring(&auth)) return true;
  }
  r.cstring(&out->database);
  return true;
}

bool ParseOk(std::span<const uint8_t> payload, uint64_t capabilities, OkPacket* out) {
  Reader r(payload);
  uint8_t header = 0;
  uint64_t insert_id = 0;
  uint16_t warnings = 0;
  if (!r.u8(&header) || (header != 0x00 && header != 0xfe) || !r.lenenc(&out->affected_rows) ||
      !r.lenenc(&insert_id)) {
    return false;
  }
  if (!r.u16(&out->status)) return true;  // pre-4.1 OK: no status
  r.u16(&warnings);
  if ((capabilities & kClientSessionTrack) == 0 || r.remaining() == 0) return true;
  std::string_view info, state;
  if (!r.lenenc_string(&info)) return true;
  if ((out->status & kStatusSessionStateChanged) == 0 || !r.lenenc_string(&state)) return true;
  Reader s({reinterpret_cast<const uint8_t*>(state.data()), state.size()});
  uint8_t type = 0;
  std::string_view data;
  while (s.u8(&type) && s.lenenc_string(&data)) {
    if (type == 1) {  // SESSION_TRACK_SCHEMA
      Reader d({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
      if (d.lenenc_string(&out->schema)) out->schema_changed = true;
    }
  }
  return true;
}

bool ParseEofStatus(std::span<const uint8_t> payload, uint16_t* status) {
  Reader r(payload);
  uint8_t header = 0;
  uint16_t warnings = 0;
  *status = 0;
  return r.u8(&header) && header == 0xfe && r.u16(&warnings) && r.u16(status);
}

bool ParseErr(std::span<const uint8_t> payload, ErrPacket* out) {
  Reader r(payload);
  uint8_t header = 0;
  if (!r.u8(&header) || header != 0xff || !r.u16(&out->code)) return false;
  out->sqlstate = "HY000";
  std::string_view rest = r.rest();
  if (rest.size() >= 6 && rest[0] == '#') {
    out->sqlstate = rest.substr(1, 5);
    rest.remove_prefix(6);
  }
  out->message = rest;
  return true;
}

bool IsAuthenticationError(const ErrPacket& err) {
  return err.code == 1045 || err.code == 1698 || err.sqlstate.substr(0, 2) == "28";
}

bool ParsePrepareOk(std::span<const uint8_t> payload, PrepareOk* out) {
  Reader r(payload);
  uint8_t header = 0;
  return r.u8(&header) && header == 0 && r.u32(&out->statement_id) && r.u16(&out->columns) &&
         r.u16(&out->params);
}

void AppendErrPacket(uint8_t seq, uint16_t code, std::string_view sqlstate,
                     std::string_view message, std::vector<uint8_t>* out) {
  std::string state(sqlstate.substr(0, 5));
  state.resize(5, '0');
  // Keep the packet one packet: a message is never near 16 MiB, but cut to be sure.
  message = message.substr(0, 65535);
  const auto length = static_cast<uint32_t>(1 + 2 + 1 + 5 + message.size());
  out->push_back(static_cast<uint8_t>(length));
  out->push_back(static_cast<uint8_t>(length >> 8));
  out->push_back(static_cast<uint8_t>(length >> 16));
  out->push_back(seq);
  out->push_back(0xff);
  out->push_back(static_cast<uint8_t>(code));
  out->push_back(static_cast<uint8_t>(code >> 8));
  out->push_back('#');
  out->insert(out->end(), state.begin(), state.end());
  out->insert(out->end(), message.begin(), message.end());
}

void AppendQueryPacket(std::string_view text, std::vector<uint8_t>* out) {
  text = text.substr(0, kMaxPacket - 2);
  const auto length = static_cast<uint32_t>(1 + text.size());
  out->push_back(static_cast<uint8_t>(length));
  out->push_back(static_cast<uint8_t>(length >> 8));
  out->push_back(static_cast<uint8_t>(length >> 16));
  out->push_back(0);
  out->push_back(kComQuery);
  out->insert(out->end(), text.begin(), text.end());
}

bool ClearGreetingCapabilities(std::span<uint8_t> payload, uint64_t mask) {
  // int<1> 10, string<NUL> version, int<4> id, 8 bytes scramble, 1 filler, int<2> caps
  // (lower), then int<1> charset, int<2> status, int<2> caps (upper).
  if (payload.empty() || payload[0] != 10) return false;
  size_t pos = 1;
  while (pos < payload.size() && payload[pos] != 0) ++pos;
  pos += 1 + 4 + 8 + 1;
  if (pos + 2 > payload.size()) return false;
  payload[pos] &= static_cast<uint8_t>(~mask);
  payload[pos + 1] &= static_cast<uint8_t>(~(mask >> 8));
  const size_t upper = pos + 2 + 1 + 2;
  if (upper + 2 <= payload.size()) {
    payload[upper] &= static_cast<uint8_t>(~(mask >> 16));
    payload[upper + 1] &= static_cast<uint8_t>(~(mask >> 24));
  }
  // MariaDB: CLIENT_LONG_PASSWORD (bit 0) clear says int<4> extended capabilities follow
  // int<1> scramble length and byte<6> filler.
  const size_t ext = upper + 2 + 1 + 6;
  if ((payload[pos] & 1) == 0 && ext + 4 <= payload.size()) {
    for (size_t i = 0; i < 4; ++i)
      payload[ext + i] &= static_cast<uint8_t>(~(mask >> (32 + 8 * i)));
  }
  return true;
}

bool ParseColumnDefinition(std::span<const uint8_t> payload, ColumnDefinition* out) {
  Reader r(payload);
  std::string_view catalog;
  uint64_t fixed = 0;
  uint32_t length = 0;
  if (!r.lenenc_string(&catalog) || !r.lenenc_string(&out->schema) ||
      !r.lenenc_string(&out->table) || !r.lenenc_string(&out->org_table) ||
      !r.lenenc_string(&out->name) || !r.lenenc_string(&out->org_name) || !r.lenenc(&fixed)) {
    return false;
  }
  // The fixed fields take exactly 12 bytes. Anything else is MariaDB's extended metadata
  // (MARIADB_CLIENT_EXTENDED_METADATA: int<lenenc> length, then (int<1> kind,
  // string<lenenc> value)*), skipped, before them.
  if (fixed != 0x0c || r.remaining() != 0x0c) {
    if (fixed > r.remaining() || !r.skip(static_cast<size_t>(fixed)) || !r.lenenc(&fixed) ||
        fixed != 0x0c) {
      return false;
    }
  }
  return r.u16(&out->charset) && r.u32(&length) && r.u8(&out->type) && r.u16(&out->flags);
}

void AppendLenenc(uint64_t v, std::vector<uint8_t>* out) {
  size_t n = 0;
  if (v < 0xfb) {
    out->push_back(static_cast<uint8_t>(v));
    return;
  }
  if (v <= 0xffff) {
    out->push_back(0xfc);
    n = 2;
  } else if (v <= 0xffffff) {
    out->push_back(0xfd);
    n = 3;
  } else {
    out->push_back(0xfe);
    n = 8;
  }
  for (size_t i = 0; i < n; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void AppendLenencString(std::string_view s, std::vector<uint8_t>* out) {
  AppendLenenc(s.size(), out);
  out->insert(out->end(), s.begin(), s.end());
}

}  // namespace dbwarden::mysql
