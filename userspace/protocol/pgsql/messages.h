// SPDX-License-Identifier: Apache-2.0
//
// PostgreSQL frontend/backend protocol v3: the shared types of the decoder and
// the pure functions that read message headers and the few message bodies we
// need. Nothing here owns or consumes bytes: callers pass what they have and
// get kNeedsMoreData / kInvalid / kSuccess back.
//
// Spec: https://www.postgresql.org/docs/15/protocol-message-formats.html
//       https://www.postgresql.org/docs/15/protocol-flow.html
//
// Typed message (every message after the startup phase, both directions):
//   Byte1  type         e.g. 'Q'
//   Int32  length       big-endian, counts itself and the body, not the type byte
//   Byte[length - 4]    body
// Untyped startup-phase packet (frontend only, before StartupMessage is done):
//   Int32  length       counts itself
//   Int32  code         196608 (3.0) StartupMessage, 80877103 SSLRequest,
//                       80877104 GSSENCRequest, 80877102 CancelRequest
//   Byte[length - 8]    body (StartupMessage: name\0value\0 ... \0)
// Answer to SSLRequest / GSSENCRequest (backend): one untyped byte,
//   'S' / 'G' (encryption accepted) or 'N' (refused).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace dbwarden::pgsql {

enum class Direction { kFrontend, kBackend };  // frontend = client -> server

struct Limits {
  size_t max_query_bytes = 1 << 20;  // Query/Parse text kept per statement
  // Named prepared statements remembered per connection; beyond these, new
  // names are not stored and their Executes come out with empty text (as if
  // prepared before capture). Bounds memory against hostile clients.
  size_t max_prepared_statements = 4096;
  size_t max_prepared_bytes = 64 << 20;
  // Bound parameters (parameters.h): values kept per Bind/FunctionCall, output
  // bytes per value, Bind body bytes read (values past them are marked, not
  // read), and the bytes of values held for bound-but-not-yet-executed portals.
  size_t max_parameters = 1024;
  size_t max_parameter_bytes = 4096;
  size_t max_bind_bytes = 256 << 10;
  size_t max_portal_parameter_bytes = 8 << 20;
};

// Plain counters; the agent copies them to Prometheus.
struct Counters {
  uint64_t messages = 0, invalid_messages = 0, resyncs = 0, gaps = 0, gap_bytes = 0,
           truncated_queries = 0, encrypted_connections = 0, midstream_joins = 0,
           tls_not_captured = 0,  // 'S' answered but the bytes after it were ciphertext
           unmatched_responses = 0;
  // Errors before the first ReadyForQuery: the login failed. Class 28 is
  // invalid authorization (wrong password, no pg_hba entry); the rest are
  // e.g. an unknown database (3D000) or too many connections (53300).
  uint64_t login_failures_authentication = 0, login_failures_other = 0;
  // CancelRequest packets (each on a connection of its own; the key is never kept).
  uint64_t cancel_requests = 0;
  // Records for an Execute/Bind whose Parse was never seen (prepared before
  // capture, or beyond max_prepared_*): text empty, statement_unresolved set.
  uint64_t unresolved_statements = 0;
  // Bound values cut (max_parameter_bytes, or not captured) and dropped
  // (beyond max_parameters or max_portal_parameter_bytes).
  uint64_t parameters_cut = 0, parameters_dropped = 0;
  uint64_t function_calls = 0;
  // The capture's bulk-data bound: deliberate skips of backend bytes, and how
  // the framing came back after those that lost it: anchored with as many
  // completions as were awaited, or mismatched (completions fell inside the
  // skip: the statements are marked capture_gap).
  uint64_t bulk_skips = 0, bulk_skipped_bytes = 0, bulk_anchored = 0, bulk_mismatched = 0;
};

enum class ParseState { kNeedsMoreData, kInvalid, kSuccess };

inline constexpr uint32_t kProtocolMajor3 = 3;
inline constexpr uint32_t kSslRequestCode = 80877103;     // (1234 << 16) | 5679
inline constexpr uint32_t kGssEncRequestCode = 80877104;  // (1234 << 16) | 5680
inline constexpr uint32_t kCancelRequestCode = 80877102;  // (1234 << 16) | 5678
// The server refuses startup packets longer than this (MAX_STARTUP_PACKET_LENGTH).
inline constexpr uint32_t kMaxStartupPacket = 10000;
// Anything claiming more than 1 GiB is not PostgreSQL (the server's own limit
// for a message is 1 GiB - 1, PQ_LARGE_MESSAGE_LIMIT).
inline constexpr uint32_t kMaxMessageLength = 1u << 30;
inline constexpr size_t kTypedHeaderSize = 5;
inline constexpr size_t kStartupHeaderSize = 8;

inline uint16_t ReadBe16(const uint8_t* p) {
  return static_cast<uint16_t>((uint16_t{p[0]} << 8) | p[1]);
}

inline uint32_t ReadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

struct Header {
  uint8_t type = 0;
  uint32_t length = 0;  // as on the wire: includes the 4 length bytes
};

// True for type bytes that `dir` may send in protocol 3.
bool IsKnownType(Direction dir, uint8_t type);

// Reads a typed header from the first 5 bytes of `buf`. kInvalid for an
// unknown type, length < 4, length > 1 GiB, or a length that the type cannot
// have (Sync is always 4, ReadyForQuery always 5, ...).
ParseState ParseTypedHeader(Direction dir, std::span<const uint8_t> buf, Header* out);

// Stricter test used while resynchronising inside garbage: a valid header whose
// length is also below 16 MiB (real messages that big are rare; random bytes
// claiming a small length are far more likely to be a false start).
bool PlausibleHeader(Direction dir, const uint8_t* five_bytes);

enum class StartupKind : uint8_t { kNone, kStartup, kSsl, kGssEnc, kCancel };

struct StartupHeader {
  uint32_t length = 0;  // includes the 8 header bytes
  uint32_t code = 0;
  StartupKind kind = StartupKind::kNone;
};

// Reads an untyped startup-phase header. kInvalid when the bytes cannot be one
// (which means the capture joined a connection already past its startup).
ParseState ParseStartupHeader(std::span<const uint8_t> buf, StartupHeader* out);

// Sequential reader over a (possibly cut) message body.
class BodyReader {
 public:
  explicit BodyReader(std::span<const uint8_t> body) : body_(body) {}
  // A NUL-terminated string. False if no NUL before the end of the body.
  bool cstring(std::string_view* out);
  // The rest of the body up to a NUL or the end, whichever comes first;
  // `terminated` tells which.
  std::string_view until_nul(bool* terminated);
  bool byte(uint8_t* out);
  bool empty() const { return pos_ >= body_.size(); }

 private:
  std::span<const uint8_t> body_;
  size_t pos_ = 0;
};

// StartupMessage parameters we keep (body = bytes after the protocol code).
struct StartupParams {
  std::string_view user, database, application_name;
};
void ParseStartupParams(std::span<const uint8_t> body, StartupParams* out);

// ErrorResponse / NoticeResponse: (Byte1 code, String value)* then Byte1 0.
struct ErrorFields {
  std::string_view sqlstate;  // field 'C'
  std::string_view message;   // field 'M'
};
void ParseErrorFields(std::span<const uint8_t> body, ErrorFields* out);

// Rows from a CommandComplete tag: the last number for the commands that
// report rows (SELECT n, INSERT oid n, UPDATE n, DELETE n, MERGE n, FETCH n,
// MOVE n, COPY n); false for tags that carry none (CREATE TABLE, BEGIN, ...).
bool RowsFromCommandTag(std::string_view tag, uint64_t* rows);

// Encoders, mirroring the readers above, for the enforcement proxy's own answers.
// ErrorResponse: 'E', Int32 length, then fields (Byte1 code, String value): 'S' and 'V'
// severity, 'C' SQLSTATE, 'M' message, ended by a zero byte.
void AppendErrorResponse(std::string_view severity, std::string_view sqlstate,
                         std::string_view message, std::vector<uint8_t>* out);
// Query: 'Q', Int32 length, String text.
void AppendQuery(std::string_view text, std::vector<uint8_t>* out);
// ReadyForQuery: 'Z', Int32 5, Byte1 transaction status ('I' idle, 'T' in a transaction
// block, 'E' in a failed one).
void AppendReadyForQuery(uint8_t status, std::vector<uint8_t>* out);

}  // namespace dbwarden::pgsql
