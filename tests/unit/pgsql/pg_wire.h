// SPDX-License-Identifier: Apache-2.0
//
// Test helpers: a tiny encoder for PostgreSQL v3 messages (lengths computed,
// never hand-written), a recording sink, and a runner that feeds chunks into
// a Session. Layouts: https://www.postgresql.org/docs/15/protocol-message-formats.html
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../support/capture_chunks.h"
#include "../support/recording_sink.h"
#include "protocol/pgsql/session.h"
#include "protocol/statement.h"

namespace pgtest {

using dbwarden::ConnectionInfo;
using dbwarden::Statement;
using dbwarden::pgsql::Counters;
using dbwarden::pgsql::Direction;
using dbwarden::pgsql::Limits;
using dbwarden::pgsql::Session;
using Bytes = std::string;  // raw bytes; std::string keeps the helpers short

inline std::string CStr(std::string_view s) { return std::string(s) + '\0'; }
inline std::string I16(uint16_t v) { return {char(v >> 8), char(v & 0xff)}; }
inline std::string I32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}
inline Bytes Typed(char type, std::string_view body) {
  return std::string(1, type) + I32(static_cast<uint32_t>(body.size() + 4)) + std::string(body);
}

// Frontend.
inline Bytes Startup(std::string_view user, std::string_view db, std::string_view app = "") {
  std::string body = I32(3u << 16) + CStr("user") + CStr(user);
  if (!db.empty()) body += CStr("database") + CStr(db);
  if (!app.empty()) body += CStr("application_name") + CStr(app);
  body += CStr("client_encoding") + CStr("UTF8") + '\0';
  return I32(static_cast<uint32_t>(body.size() + 4)) + body;
}
inline Bytes SslRequest() { return I32(8) + I32(80877103); }
inline Bytes GssEncRequest() { return I32(8) + I32(80877104); }
inline Bytes CancelRequest() { return I32(16) + I32(80877102) + I32(1234) + I32(0x5ec7e7); }
inline Bytes Query(std::string_view sql) { return Typed('Q', CStr(sql)); }
inline Bytes Parse(std::string_view name, std::string_view sql) {
  return Typed('P', CStr(name) + CStr(sql) + I16(0));
}
inline Bytes Bind(std::string_view portal, std::string_view stmt, std::string_view param = "") {
  std::string body = CStr(portal) + CStr(stmt) + I16(0);
  if (param.empty()) {
    body += I16(0);
  } else {
    body += I16(1) + I32(static_cast<uint32_t>(param.size())) + std::string(param);
  }
  return Typed('B', body + I16(0));
}
// Parse with parameter type OIDs.
inline Bytes ParseTyped(std::string_view name, std::string_view sql,
                        const std::vector<uint32_t>& types) {
  std::string body = CStr(name) + CStr(sql) + I16(static_cast<uint16_t>(types.size()));
  for (uint32_t t : types) body += I32(t);
  return Typed('P', body);
}
// A bound value: nullopt-like NULL when `null`, else bytes in `format` (0 text, 1 binary).
struct Value {
  std::string bytes;
  int16_t format = 0;
  bool null = false;
};
inline std::string ValuesSection(const std::vector<Value>& values, bool per_value_formats = true) {
  std::string body;
  if (per_value_formats) {
    body += I16(static_cast<uint16_t>(values.size()));
    for (const Value& v : values) body += I16(static_cast<uint16_t>(v.format));
  } else {
    body += I16(0);
  }
  body += I16(static_cast<uint16_t>(values.size()));
  for (const Value& v : values) {
    body += v.null ? I32(0xffffffffu) : I32(static_cast<uint32_t>(v.bytes.size())) + v.bytes;
  }
  return body;
}
inline Bytes BindValues(std::string_view portal, std::string_view stmt,
                        const std::vector<Value>& values) {
  return Typed('B', CStr(portal) + CStr(stmt) + ValuesSection(values) + I16(0));
}
inline Bytes FunctionCall(uint32_t oid, const std::vector<Value>& args) {
  return Typed('F', I32(oid) + ValuesSection(args) + I16(0));
}
inline Bytes CopyData(std::string_view data) { return Typed('d', data); }
inline Bytes CopyDone() { return Typed('c', ""); }
inline Bytes CopyFail(std::string_view why) { return Typed('f', CStr(why)); }
inline Bytes Describe(char what, std::string_view name) {
  return Typed('D', std::string(1, what) + CStr(name));
}
inline Bytes Execute(std::string_view portal, uint32_t max_rows = 0) {
  return Typed('E', CStr(portal) + I32(max_rows));
}
inline Bytes Close(char what, std::string_view name) {
  return Typed('C', std::string(1, what) + CStr(name));
}
inline Bytes Sync() { return Typed('S', ""); }
inline Bytes Flush() { return Typed('H', ""); }
inline Bytes Password(std::string_view pw) { return Typed('p', CStr(pw)); }
inline Bytes Terminate() { return Typed('X', ""); }

// Backend.
inline Bytes AuthCleartext() { return Typed('R', I32(3)); }
inline Bytes AuthOk() { return Typed('R', I32(0)); }
inline Bytes ParamStatus(std::string_view n, std::string_view v) {
  return Typed('S', CStr(n) + CStr(v));
}
inline Bytes KeyData() { return Typed('K', I32(42) + I32(7)); }
inline Bytes Ready(char status = 'I') { return Typed('Z', std::string(1, status)); }
inline Bytes RowDesc() {
  return Typed('T', I16(1) + CStr("c") + I32(0) + I16(0) + I32(23) + I16(4) + I32(0) + I16(0));
}
inline Bytes DataRow(std::string_view value) {
  return Typed('D', I16(1) + I32(static_cast<uint32_t>(value.size())) + std::string(value));
}
inline Bytes Complete(std::string_view tag) { return Typed('C', CStr(tag)); }
inline Bytes Error(std::string_view sqlstate, std::string_view msg) {
  return Typed('E', "SERROR" + std::string(1, '\0') + "C" + CStr(sqlstate) + "M" + CStr(msg) +
                        std::string(1, '\0'));
}
inline Bytes ParseComplete() { return Typed('1', ""); }
inline Bytes BindComplete() { return Typed('2', ""); }
inline Bytes CloseComplete() { return Typed('3', ""); }
inline Bytes NoData() { return Typed('n', ""); }
inline Bytes EmptyQuery() { return Typed('I', ""); }
inline Bytes Suspended() { return Typed('s', ""); }
// CopyInResponse / CopyOutResponse: Int8 overall format, Int16 n, Int16[n] column formats.
inline Bytes CopyInResponse() { return Typed('G', std::string(1, '\0') + I16(1) + I16(0)); }
inline Bytes CopyOutResponse() { return Typed('H', std::string(1, '\0') + I16(1) + I16(0)); }
inline Bytes Notice(std::string_view msg) {
  return Typed('N', "SNOTICE" + std::string(1, '\0') + "C" + CStr("00000") + "M" + CStr(msg) +
                        std::string(1, '\0'));
}
inline Bytes Notification(uint32_t pid, std::string_view channel, std::string_view payload) {
  return Typed('A', I32(pid) + CStr(channel) + CStr(payload));
}
inline Bytes FunctionResult(std::string_view value) {
  return Typed('V', I32(static_cast<uint32_t>(value.size())) + std::string(value));
}

inline Bytes Handshake() {
  return AuthOk() + ParamStatus("server_version", "15.18") + KeyData() + Ready();
}

using Chunk = dbw_test::Chunk<Direction>;
using Recorder = dbw_test::RecordingSink;
using dbw_test::DescribeStatement;

struct Run {
  ConnectionInfo info;
  Counters counters;
  Recorder sink;
  Limits limits;
};

// Feeds chunks; `max_piece` > 0 cuts every data chunk into pieces of that size.
inline void Feed(Run& run, const std::vector<Chunk>& chunks, size_t max_piece = 0,
                 bool close = true) {
  Session session(run.info, run.sink, run.limits, run.counters);
  dbw_test::FeedChunks(session, chunks, max_piece, close);
}

// Golden capture files: records of Byte1 'F'|'B', Int32 length, bytes (see
// tests/data/pgsql/README.md). Timestamps are synthetic: 1000 * (index + 1).
inline std::vector<Chunk> LoadCapture(const std::string& name) {
  return dbw_test::LoadCapture("pgsql", name, 'F', Direction::kFrontend, Direction::kBackend);
}

}  // namespace pgtest
