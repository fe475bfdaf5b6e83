// SPDX-License-Identifier: Apache-2.0
//
// MySQL / MariaDB through the proxy. Packets are read with the decoder's own readers
// (protocol/mysql/messages.h); every byte each side sent or was sent also goes through one
// mysql::Session, the observer's decoder, which writes the audit records and tells the
// login phase from the command phase.
//
// - The server's greeting reaches the client without the compression capabilities (the
//   proxy does not inflate) and with CLIENT_SSL only when the proxy has a certificate
//   (tls.h), whatever the server offers. A client's SSL request is then answered by the
//   proxy's own TLS handshake and never reaches the server: the plaintext HandshakeResponse
//   goes on without CLIENT_SSL, and each login packet's sequence id is shifted by one (the
//   server never saw the SSL request) until the command phase. Without a certificate a
//   client that asks for TLS anyway is refused (an opaque session could not be judged).
// - In the command phase a packet with sequence id 0 is a command. COM_QUERY and
//   COM_STMT_PREPARE are read whole (up to max_judged_bytes) and judged before any byte of
//   them is sent: allowed, sent on; blocked, answered by the proxy with an ERR packet (the
//   rule's errno and SQLSTATE) once the server has answered everything before it. The
//   session goes on. A require_approval verdict holds the whole command, none of it sent,
//   for the approvals broker: approved, it is stepped again as if just sent (masked as an
//   unheld one); denied or expired, it is answered as a blocked one naming the request id and
//   the reason (pg_relay.h). A COM_STMT_PREPARE that needs approval goes on: each
//   COM_STMT_EXECUTE of it is held instead. COM_STMT_EXECUTE of a statement
//   judged under another policy (a reload since its prepare), or not yet judged for its id, judges
//   the prepared text again.
// - Masking: a command whose statements have mask rules (Judge: JudgedStatement::masks;
//   for COM_STMT_EXECUTE those of its prepared text) waits until the server has answered
//   everything before it, so that the server's next byte starts its answer; what the text
//   alone refuses (mysql_mask_planner.h) is answered like a block. Its answer is framed and
//   rewritten by a MysqlResultMasker (mysql_results.h) and no later command goes to the
//   server until that answer has ended. Every other answer streams through untouched. A
//   cursor (COM_STMT_EXECUTE with a cursor flag) or a bulk execute of a masked statement
//   is refused: their rows would come by commands whose answers are not framed.
//   Column origins (mysql_mask_planner.h) need to know base tables from views: before a
//   masked command whose tables the connection's catalog (mysql_catalog.h) does not know
//   yet, the proxy sends its own information_schema query on the client's session, while
//   it is idle outside a transaction; its answer reaches neither the client nor the
//   records, and the client's next statement (the masked one, reading tables) resets
//   ROW_COUNT(), FOUND_ROWS() and the warnings the lookup touched. Inside a transaction an
//   unknown table fails closed instead. DDL the proxy relays clears the catalog.
//   The blast radius of a held statement (explain_estimate.h, mysql_explain.h) is read the
//   same way: an EXPLAIN of a held COM_QUERY on the idle session outside a transaction,
//   before its request goes to the broker; for a held COM_STMT_EXECUTE, the EXPLAIN of its
//   prepared text prepared by the proxy, executed with the client's parameter block and
//   closed (three commands, two answers). It leaves the server's ROW_COUNT() at -1,
//   FOUND_ROWS() and the warnings as an EXPLAIN leaves them (COM_STMT_CLOSE touches none of
//   them); the client cannot tell: the held statement itself is the next thing it runs when
//   approved (and sets all three anew), and denied it gets the proxy's error, after which
//   the server's diagnostics are the EXPLAIN's, not those of the client's earlier statement
//   (as after any block). The proxy's prepared statement takes a statement id of the
//   server's that the client never learns, and is closed before any command of the
//   client's; a client's "last prepared statement" (id -1, MariaDB) is never explained.
//   The greeting never offers result-metadata caching (MariaDB) or optional metadata
//   (MySQL): a masked result needs its column definitions every time.
// - Everything else (login exchange, LOCAL INFILE content, other commands) streams through.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "protocol/mysql/session.h"
#include "protocol/statement.h"
#include "proxy/mysql_catalog.h"
#include "proxy/mysql_explain.h"
#include "proxy/mysql_mask_planner.h"
#include "proxy/mysql_results.h"
#include "proxy/mysql_statement_scan.h"
#include "proxy/relay_base.h"

namespace dbwarden::proxy {

struct MysqlProtocol {
  using Session = mysql::Session;
  using Limits = mysql::Limits;
  using Counters = mysql::Counters;
  using StatementKey = uint32_t;  // the server's statement id
  static constexpr mysql::Direction kFromClient = mysql::Direction::kClient;
  static constexpr mysql::Direction kFromServer = mysql::Direction::kServer;
  static constexpr Dialect kDialect = Dialect::kMysql;
};

class MysqlRelay final : public RelayBase<MysqlProtocol> {
 public:
  MysqlRelay(ConnectionInfo& info, Judge& judge, RecordSink& records,
             const mysql::Limits& decoder_limits, const RelayLimits& limits,
             mysql::Counters& counters);

  void on_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) override;
  void on_upstream_failed(std::string_view why, ByteBuffer& in, RelayOutput& out,
                          uint64_t now_ns) override;
  void on_close(uint64_t now_ns) override;
  bool kill_approval(uint16_t server_port, uint32_t thread_id, bool connection,
                     uint32_t by_thread) override;
  uint64_t own_server_bytes() const override { return lookup_bytes_; }

 private:
  bool step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) override;
  void release_held(RelayOutput& out, uint64_t now_ns) override;
  void deny_held(std::vector<uint8_t> message, RelayOutput& out, uint64_t now_ns) override;
  // The blast radius's EXPLAIN (mysql_explain.h), sent and read as a catalog lookup is.
  bool start_explain(std::string_view text, std::span<const uint8_t> message, const ByteBuffer& in,
                     RelayOutput& out, std::string& unavailable, ExplainJob& role) override;
  // A held COM_STMT_EXECUTE (`payload`): the COM_STMT_PREPARE of its EXPLAIN into scratch_.
  bool prepare_explain(std::string_view text, std::span<const uint8_t> payload, bool mariadb,
                       std::string& unavailable);
  // Server bytes while the EXPLAIN's answer comes; returns those after its end.
  std::span<const uint8_t> explain_answer(std::span<const uint8_t> bytes, RelayOutput& out,
                                          uint64_t now_ns);
  // The EXPLAIN's answer ended: its statement closed (an execute's), the request made.
  void finish_explain(const BlastEstimate& e, RelayOutput& out, uint64_t now_ns);
  bool judged_command(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  bool execute_command(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  bool pass_packet(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  // The login exchange of a TLS client: sequence ids one less toward the server, one more
  // toward the client.
  bool shifted_client(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  void shifted_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns);
  // An ERR packet, then the connection ends (see RelayBase::close_with).
  void refuse(uint16_t code, std::string_view sqlstate, std::string_view message, uint8_t seq,
              RelayOutput& out, uint64_t now_ns);
  // Masking.
  static bool has_masks(const MessageVerdict& v);
  // Sends the command whose statements `v` judged with mask rules, its answer masked; or
  // refuses it (held until the server is idle, as a block) when the text decides so.
  bool masked_command(ByteBuffer& in, uint32_t length, const MessageVerdict& v, bool binary,
                      std::string_view refusal, RelayOutput& out, uint64_t now_ns);
  // A block of the relay's own (masking), for the message's statements' records.
  bool refuse_masked(ByteBuffer& in, uint32_t length, const MessageVerdict& v,
                     std::string_view rule, std::string_view message, RelayOutput& out,
                     uint64_t now_ns);

  // A KILL this connection sent, on to the server while it was idle: its answer's first
  // packet says whether the server allowed it (OK), and then a held statement of the thread
  // it names is withdrawn (RelayOutput::kill_request).
  void watch_kill(std::span<const uint8_t> bytes, RelayOutput& out);

  bool greeting_pending_ = true;   // the server's first packet is still to be rewritten
  uint32_t thread_id_ = 0;         // the server's connection id (its greeting), 0: unknown
  std::optional<MysqlKill> kill_;  // a KILL whose answer is awaited
  uint8_t kill_peek_[5] = {};      // that answer's header and first payload byte
  size_t kill_have_ = 0;
  std::vector<uint8_t> server_hold_;  // its bytes until it is whole
  uint64_t stream_left_ = 0;          // payload bytes of the current packet still to pass
  bool ssl_offered_ = false;          // the greeting offered the proxy's TLS
  bool tls_login_ = false;            // TLS client in the login exchange: ids shifted
  bool clear_ssl_flag_ = false;       // the next client packet is the HandshakeResponse
  uint8_t server_header_[4] = {};     // a server packet header being read (login, TLS)
  size_t server_header_have_ = 0;
  uint64_t server_left_ = 0;  // payload bytes of the current server packet still to pass

  MysqlCatalog catalog_;
  MysqlCatalogLookup lookup_planner_;
  bool lookup_ = false;  // the server's answer is the proxy's own catalog lookup
  MysqlExplainLookup explain_;
  bool explain_running_ = false;      // ... or its EXPLAIN of a held statement
  bool explain_execute_ = false;      // ... of a held execute: prepared, executed, closed
  std::vector<uint8_t> explain_out_;  // what its answer would have given the client (bounded)
  uint64_t lookup_bytes_ = 0;
  MysqlMaskPlanner planner_;
  MysqlResultMasker results_;
  bool masking_ = false;  // the server's answer is read by results_
  std::vector<uint8_t> masked_out_;
  // The verdicts (with their mask rules) of each prepared statement, by statement id, as
  // last judged (judged_now() says whether under the policy in force).
  std::unordered_map<uint32_t, MessageVerdict> executed_;
};

}  // namespace dbwarden::proxy
