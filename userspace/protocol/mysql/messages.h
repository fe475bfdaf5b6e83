// SPDX-License-Identifier: Apache-2.0
//
// MySQL / MariaDB client/server protocol: the shared types of the decoder and
// the pure functions that read the few packet bodies we need. Nothing here
// owns or consumes bytes.
//
// Spec: https://mariadb.com/kb/en/clientserver-protocol/
//       https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html
//
// Packet (both directions):
//   int<3>  payload length, little-endian
//   int<1>  sequence id: 0 on the client's command, +1 per packet after it in
//           either direction, until the command's exchange ends
//   byte[length] payload
// A payload of exactly 0xFFFFFF bytes continues in the next packet (whose
// length may be 0): one logical message spans them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace dbwarden::mysql {

enum class Direction { kClient, kServer };  // kClient = client -> server bytes

struct Limits {
  size_t max_query_bytes = 1 << 20;  // COM_QUERY / COM_STMT_PREPARE text kept
  // Prepared statements remembered per connection; beyond these, new ids are
  // not stored and their executes come out unresolved (empty text).
  size_t max_prepared_statements = 4096;
  size_t max_prepared_bytes = 64 << 20;
  // Bytes kept per decoded bound parameter (longer values are cut).
  size_t max_parameter_bytes = 4096;
};

// Plain counters; the agent copies them to Prometheus.
struct Counters {
  uint64_t packets = 0, invalid_packets = 0, resyncs = 0, gaps = 0, gap_bytes = 0,
           truncated_queries = 0, encrypted_connections = 0, midstream_joins = 0,
           compressed_connections = 0, unmatched_responses = 0, unresolved_statements = 0,
           local_infile_bytes = 0;  // file content sent for LOAD DATA LOCAL (never stored)
  // Logins the server refused (ERR in the handshake, before it, or answering
  // COM_CHANGE_USER): bad credentials vs anything else (too many
  // connections, host blocked, unknown database, ...). See IsAuthenticationError.
  uint64_t login_failures_authentication = 0, login_failures_other = 0;
};

inline constexpr size_t kHeaderSize = 4;
inline constexpr uint32_t kMaxPacket = 0xFFFFFF;

// Capability flags (int<4> in the handshake packets).
inline constexpr uint64_t kClientConnectWithDb = 1u << 3;
inline constexpr uint64_t kClientCompress = 1u << 5;
inline constexpr uint64_t kClientLocalFiles = 1u << 7;
inline constexpr uint64_t kClientProtocol41 = 1u << 9;
inline constexpr uint64_t kClientSsl = 1u << 11;
inline constexpr uint64_t kClientSecureConnection = 1u << 15;
inline constexpr uint64_t kClientMultiStatements = 1u << 16;
inline constexpr uint64_t kClientPluginAuth = 1u << 19;
inline constexpr uint64_t kClientConnectAttrs = 1u << 20;
inline constexpr uint64_t kClientPluginAuthLenencData = 1u << 21;
inline constexpr uint64_t kClientSessionTrack = 1u << 23;
inline constexpr uint64_t kClientDeprecateEof = 1u << 24;
inline constexpr uint64_t kClientOptionalMetadata = 1u << 25;  // MySQL 8
inline constexpr uint64_t kClientZstdCompression = 1u << 26;   // MySQL 8
inline constexpr uint64_t kClientQueryAttributes = 1u << 27;   // MySQL 8
// MariaDB extended capabilities (sent in otherwise reserved bytes): bit 32+n.
inline constexpr uint64_t kMariaDbCacheMetadata = 1ull << 36;

// Column types: a column definition's type byte and a binary value's type
// (include/field_types.h, enum_field_types). The *2 types are internal to the
// server and its replication events, but named so a value is never misread.
enum ColumnType : uint8_t {
  kTypeDecimal = 0,
  kTypeTiny = 1,
  kTypeShort = 2,
  kTypeLong = 3,
  kTypeFloat = 4,
  kTypeDouble = 5,
  kTypeNull = 6,
  kTypeTimestamp = 7,
  kTypeLongLong = 8,
  kTypeInt24 = 9,
  kTypeDate = 10,
  kTypeTime = 11,
  kTypeDatetime = 12,
  kTypeYear = 13,
  kTypeNewDate = 14,
  kTypeVarchar = 15,
  kTypeBit = 16,
  kTypeTimestamp2 = 17,
  kTypeDatetime2 = 18,
  kTypeTime2 = 19,
  kTypeJson = 245,  // MySQL; MariaDB sends JSON as a LONG_BLOB with a utf8 charset
  kTypeNewDecimal = 246,
  kTypeEnum = 247,
  kTypeSet = 248,
  kTypeTinyBlob = 249,
  kTypeMediumBlob = 250,
  kTypeLongBlob = 251,
  kTypeBlob = 252,
  kTypeVarString = 253,
  kTypeString = 254,
  kTypeGeometry = 255,
};
// Column definition flags and the character set that means "binary bytes".
inline constexpr uint16_t kFlagNotNull = 0x0001;
inline constexpr uint16_t kFlagUnsigned = 0x0020;
inline constexpr uint16_t kBinaryCharset = 63;

// Server status flags (OK / EOF packets).
inline constexpr uint16_t kStatusInTransaction = 0x0001;
inline constexpr uint16_t kStatusMoreResults = 0x0008;
inline constexpr uint16_t kStatusCursorExists = 0x0040;
inline constexpr uint16_t kStatusNoBackslashEscapes = 0x0200;
inline constexpr uint16_t kStatusSessionStateChanged = 0x4000;

// Command bytes (first payload byte of a client packet with sequence id 0).
enum Command : uint8_t {
  kComSleep = 0x00,
  kComQuit = 0x01,
  kComInitDb = 0x02,
  kComQuery = 0x03,
  kComFieldList = 0x04,
  kComStatistics = 0x09,
  kComPing = 0x0e,
  kComChangeUser = 0x11,
  kComBinlogDump = 0x12,
  kComStmtPrepare = 0x16,
  kComStmtExecute = 0x17,
  kComStmtSendLongData = 0x18,
  kComStmtClose = 0x19,
  kComStmtReset = 0x1a,
  kComSetOption = 0x1b,
  kComStmtFetch = 0x1c,
  kComBinlogDumpGtid = 0x1e,
  kComResetConnection = 0x1f,
  kComStmtBulkExecute = 0xfa,  // MariaDB
};

// Commands a client sends in the command phase (0x00..0x1f, MariaDB's 0xfa
// bulk execute and 0xfe COM_MULTI).
bool IsKnownCommand(uint8_t byte);

// Little-endian readers over a (possibly cut) payload. Every read checks
// bounds; after a failed read the reader stays failed.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  bool u8(uint8_t* v);
  bool u16(uint16_t* v);
  bool u24(uint32_t* v);
  bool u32(uint32_t* v);
  bool u64(uint64_t* v);
  // Length-encoded integer: < 0xfb itself, 0xfc + int<2>, 0xfd + int<3>,
  // 0xfe + int<8>. 0xfb (NULL) and 0xff are not integers: false.
  bool lenenc(uint64_t* v);
  bool lenenc_string(std::string_view* s);  // int<lenenc> length, then bytes
  bool cstring(std::string_view* s);        // up to a NUL (consumed)
  bool bytes(size_t n, std::string_view* s);
  bool skip(size_t n);
  std::string_view rest();  // everything left (string<EOF>)
  size_t remaining() const { return ok_ ? b_.size() - pos_ : 0; }
  bool ok() const { return ok_; }

 private:
  bool need(size_t n);
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// HandshakeV10 (server greeting, sequence 0):
//   int<1> 10, string<NUL> version, int<4> connection id, byte<8> scramble 1,
//   int<1> 0, int<2> capabilities low, int<1> charset, int<2> status,
//   int<2> capabilities high, int<1> scramble length, byte<6> filler,
//   int<4> MariaDB extended capabilities (when capability bit 0 is clear),
//   ... rest of the scramble and the plugin name (never kept).
struct Greeting {
  uint64_t capabilities = 0;
  uint32_t connection_id = 0;
  std::string_view version;
};
bool ParseGreeting(std::span<const uint8_t> payload, Greeting* out);

// HandshakeResponse41 (client, sequence 1):
//   int<4> capabilities, int<4> max packet, int<1> charset, byte<19> filler,
//   int<4> MariaDB extended capabilities, string<NUL> user,
//   auth response (lenenc / int<1> length / NUL-terminated, per capabilities:
//   skipped, never returned), string<NUL> database if CLIENT_CONNECT_WITH_DB,
//   ... plugin name and attributes. A 32-byte payload with CLIENT_SSL is the
//   SSLRequest: TLS starts after it.
struct HandshakeResponse {
  uint64_t capabilities = 0;
  bool ssl_request = false;
  std::string_view user;
  std::string_view database;
  bool has_database = false;
};
bool ParseHandshakeResponse(std::span<const uint8_t> payload, HandshakeResponse* out);

// COM_CHANGE_USER: int<1> 0x11, string<NUL> user, auth (int<1> length +
// data with CLIENT_SECURE_CONNECTION, else NUL-terminated; skipped),
// string<NUL> database, ...
struct ChangeUser {
  std::string_view user;
  std::string_view database;
};
bool ParseChangeUser(std::span<const uint8_t> payload, uint64_t capabilities, ChangeUser* out);

// OK packet: int<1> 0x00 (or 0xfe closing a result set with
// CLIENT_DEPRECATE_EOF), int<lenenc> affected rows, int<lenenc> last insert
// id, int<2> status, int<2> warnings, then with CLIENT_SESSION_TRACK:
// string<lenenc> info and, if SESSION_STATE_CHANGED, string<lenenc> state
// changes (int<1> type, string<lenenc> data)*; type 1 (schema) holds
// string<lenenc> the new default database.
struct OkPacket {
  uint64_t affected_rows = 0;
  uint16_t status = 0;
  std::string_view schema;  // from session state, when reported
  bool schema_changed = false;
};
bool ParseOk(std::span<const uint8_t> payload, uint64_t capabilities, OkPacket* out);

// EOF packet: int<1> 0xfe, int<2> warnings, int<2> status (payload < 9 bytes).
bool ParseEofStatus(std::span<const uint8_t> payload, uint16_t* status);

// ERR packet: int<1> 0xff, int<2> code, then with protocol 4.1 '#' +
// byte<5> SQLSTATE, then the message (string<EOF>). Code 0xffff is a MariaDB
// progress report, not an error.
struct ErrPacket {
  uint16_t code = 0;
  std::string_view sqlstate;  // "HY000" when the packet carries none
  std::string_view message;
};
bool ParseErr(std::span<const uint8_t> payload, ErrPacket* out);

// The server refused the credentials: ER_ACCESS_DENIED_ERROR (1045),
// ER_ACCESS_DENIED_NO_PASSWORD_ERROR (1698) or any SQLSTATE of class 28
// (invalid authorization). Error codes:
// https://mariadb.com/kb/en/mariadb-error-code-reference/
bool IsAuthenticationError(const ErrPacket& err);

// COM_STMT_PREPARE OK: int<1> 0, int<4> statement id, int<2> columns,
// int<2> parameters, int<1> 0, int<2> warnings.
struct PrepareOk {
  uint32_t statement_id = 0;
  uint16_t columns = 0;
  uint16_t params = 0;
};
bool ParsePrepareOk(std::span<const uint8_t> payload, PrepareOk* out);

// True when a packet starting with 0xfe terminates a result set (EOF, or OK
// with CLIENT_DEPRECATE_EOF) rather than being a text row whose first value
// has an 8-byte length (such rows are at least 0xffffff bytes).
inline bool IsEndOfRows(uint8_t first, uint64_t first_packet_length, bool deprecate_eof) {
  return first == 0xfe &&
         (deprecate_eof ? first_packet_length < kMaxPacket : first_packet_length < 9);
}

// Encoders, mirroring the readers above, for the enforcement proxy's own answers.
// ERR packet: header (int<3> payload length, int<1> sequence id), then 0xff, int<2> error
// code, '#', string[5] SQLSTATE, string<EOF> message (CLIENT_PROTOCOL_41 layout).
void AppendErrPacket(uint8_t seq, uint16_t code, std::string_view sqlstate,
                     std::string_view message, std::vector<uint8_t>* out);
// COM_QUERY packet (sequence id 0): 0x03, string<EOF> text; one packet (text < 16 MiB).
void AppendQueryPacket(std::string_view text, std::vector<uint8_t>* out);
// Clears `mask` in a server greeting's capability flags in place (the lower and upper
// 16 bits, and MariaDB's extended capabilities above bit 31 where the greeting carries
// them). False when the payload is no protocol-10 greeting.
bool ClearGreetingCapabilities(std::span<uint8_t> payload, uint64_t mask);

// Column definition (protocol 4.1, ColumnDefinition41):
//   string<lenenc> catalog ("def"), schema, table (alias), org_table, name (alias),
//   org_name, int<lenenc> 0x0c, int<2> charset, int<4> length, int<1> type,
//   int<2> flags, int<1> decimals, int<2> 0
// org_table / org_name are empty for an expression. MariaDB puts its extended metadata
// (type name such as "json", format) between org_name and the fixed fields when the client
// asked for it (MARIADB_CLIENT_EXTENDED_METADATA): skipped.
struct ColumnDefinition {
  std::string_view schema, table, org_table, name, org_name;
  uint16_t charset = 0;
  uint8_t type = 0;
  uint16_t flags = 0;
};
bool ParseColumnDefinition(std::span<const uint8_t> payload, ColumnDefinition* out);

// Appends a length-encoded integer / string (the Reader's lenenc in reverse).
void AppendLenenc(uint64_t v, std::vector<uint8_t>* out);
void AppendLenencString(std::string_view s, std::vector<uint8_t>* out);

}  // namespace dbwarden::mysql
