// SPDX-License-Identifier: Apache-2.0
//
// PostgreSQL v3 through the proxy. Client messages are read with the decoder's own header
// readers (protocol/pgsql/messages.h); every byte the client sent and every byte it was
// sent, the server's and the proxy's own, also goes through one pgsql::Session, the
// observer's decoder, which writes the audit records and says when the server is idle.
//
// Per client message:
// - Startup phase: SSLRequest is answered 'S' when the proxy has a certificate (tls.h): the
//   connection then decrypts, and the relay goes on with the plaintext; without one, and
//   for GSSENCRequest always, 'N'. The server sees a plaintext connection: it never offers
//   SCRAM-SHA-256-PLUS (channel binding to the client's TLS cannot survive termination), so
//   a client's channel_binding=prefer goes on without it and =require stops. StartupMessage and
//   CancelRequest go to the server unchanged (the cancel key is the server's own: the
//   proxy keeps one upstream connection per client and rewrites no keys).
// - Query 'Q' and Parse 'P' are read whole (up to max_judged_bytes) and judged before any
//   byte of them is sent. Allowed: sent on. Blocked: held until the server has answered
//   everything before it (Session::idle), then answered by the proxy: ErrorResponse with
//   the rule's SQLSTATE and message, and ReadyForQuery with the server's transaction
//   status (Query; a multi-statement Query is recorded as its blocking statement, since none
//   of them ran), or for a Parse everything up to the next Sync is dropped (the server
//   would skip it after an error) and that Sync is answered ReadyForQuery. Nothing of the
//   blocked message reaches the server; the session goes on.
// - A require_approval verdict (approvals/broker.h): the whole message is held, none of it
//   sent, until the broker decides; later client messages wait behind it. Approved, it goes
//   to the server as if just sent; denied or expired, it is answered as a blocked one with
//   the request id and the reason. A JIT grant lets it through at once.
// - Bind of a prepared statement judged under another policy (a reload since its Parse), or
//   never judged: its text is judged again, and a block is answered as for its Parse.
// - A Parse blocked after other extended-protocol messages of the same Sync group were
//   already sent cannot be answered in place without the server committing those on the
//   next Sync: the connection is ended with a FATAL error, so the server rolls them back.
// - Everything else streams through unchanged, its body never buffered whole.
// - Bytes that are not PostgreSQL: the client gets a protocol_violation error and only
//   this connection is closed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/pgsql/session.h"
#include "protocol/statement.h"
#include "proxy/relay_base.h"

namespace dbwarden::proxy {

struct PgProtocol {
  using Session = pgsql::Session;
  using Limits = pgsql::Limits;
  using Counters = pgsql::Counters;
  using StatementKey = std::string;  // the prepared statement's name
  static constexpr pgsql::Direction kFromClient = pgsql::Direction::kFrontend;
  static constexpr pgsql::Direction kFromServer = pgsql::Direction::kBackend;
  static constexpr Dialect kDialect = Dialect::kPostgresql;
};

class PgRelay final : public RelayBase<PgProtocol> {
 public:
  // `info`, `judge`, `records` and `counters` must outlive the relay.
  PgRelay(ConnectionInfo& info, Judge& judge, RecordSink& records,
          const pgsql::Limits& decoder_limits, const RelayLimits& limits,
          pgsql::Counters& counters);

  void on_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) override;
  void on_upstream_failed(std::string_view why, ByteBuffer& in, RelayOutput& out,
                          uint64_t now_ns) override;
  void on_close(uint64_t now_ns) override;

 private:
  bool step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) override;
  void release_held(RelayOutput& out, uint64_t now_ns) override;
  bool startup_packet(ByteBuffer& in, RelayOutput& out, uint64_t now_ns);
  bool judged_message(ByteBuffer& in, uint8_t type, uint32_t length, RelayOutput& out,
                      uint64_t now_ns);
  bool bind_message(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  // The whole message at the front of `in` was blocked (verdict_): hold it for the answer.
  bool block(ByteBuffer& in, size_t total, uint8_t type, RelayOutput& out, uint64_t now_ns);
  // The whole message at the front of `in` needs approval (verdict_): passed on under a
  // JIT grant, held for the broker, or blocked when there is none.
  bool approval(ByteBuffer& in, size_t total, uint8_t type, RelayOutput& out, uint64_t now_ns);
  void deny_held(std::vector<uint8_t> message, RelayOutput& out, uint64_t now_ns) override;
  // A FATAL ErrorResponse, then the connection ends (see RelayBase::close_with).
  void fatal(std::string_view sqlstate, std::string_view message, bool recorded, RelayOutput& out,
             uint64_t now_ns);
  void end_connection(const Verdict& v, RelayOutput& out, uint64_t now_ns) {
    fatal(v.sqlstate, v.message, /*recorded=*/true, out, now_ns);
  }
  void protocol_error(const char* what, RelayOutput& out, uint64_t now_ns);

  bool startup_ = true;                 // untyped startup-phase packets until StartupMessage
  uint64_t stream_left_ = 0;            // body bytes of the current streamed message still to pass
  bool stream_drop_ = false;            // ...dropped instead (skipping to Sync after a block)
  bool skip_to_sync_ = false;           // a blocked Parse: drop client messages up to Sync
  std::vector<uint8_t> held_reply_;     // the proxy's answer to the held message
  std::vector<uint8_t> session_error_;  // a blocked group's error, for the decoder at Sync
  bool held_is_query_ = false;
  std::string name_;  // reused for lookups
};

}  // namespace dbwarden::proxy
