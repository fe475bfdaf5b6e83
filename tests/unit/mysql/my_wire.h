// SPDX-License-Identifier: Apache-2.0
//
// Test helpers: a tiny encoder for MySQL packets (lengths and sequence ids
// computed, never hand-written), a recording sink, and a runner that feeds
// chunks into a Session. Layouts: https://mariadb.com/kb/en/clientserver-protocol/
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../support/capture_chunks.h"
#include "../support/recording_sink.h"
#include "protocol/mysql/session.h"
#include "protocol/statement.h"

namespace mytest {

using dbwarden::ConnectionInfo;
using dbwarden::Statement;
using dbwarden::mysql::Counters;
using dbwarden::mysql::Direction;
using dbwarden::mysql::Limits;
using dbwarden::mysql::Session;
using Bytes = std::string;

inline std::string U16(uint16_t v) { return {char(v & 0xff), char(v >> 8)}; }
inline std::string U32(uint32_t v) {
  return {char(v & 0xff), char((v >> 8) & 0xff), char((v >> 16) & 0xff), char(v >> 24)};
}
inline std::string CStr(std::string_view s) { return std::string(s) + '\0'; }
inline std::string Lenenc(uint64_t v) {
  if (v < 251) return std::string(1, char(v));
  if (v < 65536) return "\xfc" + U16(uint16_t(v));
  if (v < (1u << 24)) return "\xfd" + U32(uint32_t(v)).substr(0, 3);
  return "\xfe" + U32(uint32_t(v)) + U32(uint32_t(v >> 32));
}
inline std::string LenStr(std::string_view s) { return Lenenc(s.size()) + std::string(s); }

// One packet; payloads of 0xffffff bytes or more are split the way the
// protocol does (a full packet continues in the next one).
inline Bytes Packet(uint8_t seq, std::string_view payload) {
  Bytes out;
  size_t off = 0;
  while (true) {
    const size_t n = std::min<size_t>(payload.size() - off, 0xffffff);
    out += U32(uint32_t(n)).substr(0, 3) + char(seq++) + std::string(payload.substr(off, n));
    off += n;
    if (n < 0xffffff) break;
  }
  return out;
}

constexpr uint32_t kBaseCaps = 0x00000008 | 0x00000200 | 0x00008000 | 0x00010000 | 0x00020000 |
                               0x00080000 | 0x00800000;  // db, 4.1, secure, multi, plugin, track
constexpr uint32_t kDeprecateEof = 1u << 24;

inline Bytes Greeting(uint32_t caps = kBaseCaps | kDeprecateEof | 0x800 | 0x20,
                      std::string_view version = "10.11.19-MariaDB") {
  std::string p = "\x0a" + CStr(version) + U32(42) + "abcdefgh" + '\0' + U16(uint16_t(caps | 1)) +
                  char(45) + U16(2) + U16(uint16_t(caps >> 16)) + char(21) + std::string(10, '\0') +
                  "ijklmnopqrst" + '\0' + CStr("mysql_native_password");
  return Packet(0, p);
}
inline Bytes HandshakeResponse(uint32_t caps, std::string_view user, std::string_view db,
                               std::string_view token) {
  std::string p = U32(caps) + U32(1u << 24) + char(45) + std::string(23, '\0') + CStr(user) +
                  char(token.size()) + std::string(token);
  if (caps & 8) p += CStr(db);
  p += CStr("mysql_native_password");
  return Packet(1, p);
}
inline Bytes SslRequest(uint32_t caps) {
  return Packet(1, U32(caps | 0x800) + U32(1u << 24) + char(45) + std::string(23, '\0'));
}
inline Bytes Ok(uint8_t seq, uint64_t affected = 0, uint16_t status = 2, char header = 0) {
  return Packet(seq, std::string(1, header) + Lenenc(affected) + Lenenc(0) + U16(status) + U16(0));
}
inline Bytes OkSchema(uint8_t seq, std::string_view schema, uint16_t status = 2) {
  const std::string change = std::string(1, '\x01') + LenStr(LenStr(schema));
  return Packet(seq, std::string(1, '\0') + Lenenc(0) + Lenenc(0) + U16(status | 0x4000) + U16(0) +
                         LenStr("") + LenStr(change));
}
inline Bytes Eof(uint8_t seq, uint16_t status = 2) {
  return Packet(seq, "\xfe" + U16(0) + U16(status));
}
inline Bytes Err(uint8_t seq, uint16_t code, std::string_view state, std::string_view msg) {
  return Packet(seq, "\xff" + U16(code) + "#" + std::string(state) + std::string(msg));
}
inline Bytes ColumnDef(uint8_t seq, std::string_view name) {
  return Packet(seq, LenStr("def") + LenStr("shop") + LenStr("t") + LenStr("t") + LenStr(name) +
                         LenStr(name) + Lenenc(12) + U16(45) + U32(11) + char(3) + U16(0) +
                         char(0) + U16(0));
}
// A column definition with its origin (org_table / org_name "" for an expression), type,
// flags and character set.
inline Bytes ColumnDefOf(uint8_t seq, std::string_view schema, std::string_view org_table,
                         std::string_view org_name, uint8_t type = 253, uint16_t flags = 0,
                         uint16_t charset = 45) {
  const std::string_view name = org_name.empty() ? "expr" : org_name;
  return Packet(seq, LenStr("def") + LenStr(schema) + LenStr(org_table.empty() ? "" : "c") +
                         LenStr(org_table) + LenStr(name) + LenStr(org_name) + Lenenc(12) +
                         U16(charset) + U32(64) + char(type) + U16(flags) + char(0) + U16(0));
}
// One text row: string<lenenc> per value, 0xfb for NULL.
inline Bytes TextRow(uint8_t seq, const std::vector<std::optional<std::string>>& values) {
  std::string p;
  for (const auto& v : values) p += v ? LenStr(*v) : std::string("\xfb");
  return Packet(seq, p);
}
// A text result set with one column; `eof` false = CLIENT_DEPRECATE_EOF.
inline Bytes ResultSet(uint8_t seq, const std::vector<std::string>& rows, bool eof,
                       uint16_t status = 2) {
  Bytes out = Packet(seq, Lenenc(1));
  out += ColumnDef(uint8_t(seq + 1), "c");
  seq = uint8_t(seq + 2);
  if (eof) out += Eof(seq++);
  for (const std::string& r : rows) out += Packet(seq++, LenStr(r));
  out += eof ? Eof(seq, status) : Ok(seq, 0, status, '\xfe');
  return out;
}
inline Bytes Command(uint8_t cmd, std::string_view body) {
  return Packet(0, std::string(1, char(cmd)) + std::string(body));
}
inline Bytes Query(std::string_view sql) { return Command(0x03, sql); }
inline Bytes PrepareOk(uint8_t seq, uint32_t id, uint16_t cols, uint16_t params, bool eof) {
  Bytes out =
      Packet(seq++, std::string(1, '\0') + U32(id) + U16(cols) + U16(params) + '\0' + U16(0));
  for (int i = 0; i < params; ++i) out += ColumnDef(seq++, "?");
  if (params && eof) out += Eof(seq++);
  for (int i = 0; i < cols; ++i) out += ColumnDef(seq++, "c");
  if (cols && eof) out += Eof(seq++);
  return out;
}

using Chunk = dbw_test::Chunk<Direction>;
using Recorder = dbw_test::RecordingSink;
using dbw_test::DescribeStatement;

struct Run {
  ConnectionInfo info;
  Counters counters;
  Recorder sink;
  Limits limits;
  // "<statement_name>#<index>=<value>" per observed parameter.
  std::vector<std::string> params;
};

// Feeds chunks; `max_piece` > 0 cuts every data chunk into pieces of that size.
inline void Feed(Run& run, const std::vector<Chunk>& chunks, size_t max_piece = 0,
                 bool close = true) {
  Session session(run.info, run.sink, run.limits, run.counters);
  session.set_parameter_observer([&run](const Statement& s, size_t i, std::string_view v) {
    run.params.push_back(s.statement_name + "#" + std::to_string(i) + "=" + std::string(v));
  });
  dbw_test::FeedChunks(session, chunks, max_piece, close);
}

// Golden capture files: records of Byte1 'C'|'S', Int32 big-endian length,
// bytes (see tests/data/mysql/README.md). Timestamps: 1000 * (index + 1).
inline std::vector<Chunk> LoadCapture(const std::string& name) {
  return dbw_test::LoadCapture("mysql", name, 'C', Direction::kClient, Direction::kServer);
}

}  // namespace mytest
