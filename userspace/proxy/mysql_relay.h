// SPDX-License-Identifier: Apache-2.0
//
// MySQL / MariaDB through the proxy. Packets are read with the decoder's own readers
// (protocol/mysql/messages.h); every byte each side sent or was sent also goes through one
// mysql::Session, the observer's decoder, which writes the audit records and tells the
// login phase from the command phase.
//
// - The server's greeting reaches the client without CLIENT_SSL and the compression
//   capabilities: the proxy holds no certificate yet and does not inflate, so it offers
//   neither, and a client that asks for TLS anyway is refused (an opaque session could not
//   be judged).
// - In the command phase a packet with sequence id 0 is a command. COM_QUERY and
//   COM_STMT_PREPARE are read whole (up to max_judged_bytes) and judged before any byte of
//   them is sent: allowed, sent on; blocked, answered by the proxy with an ERR packet (the
//   rule's errno and SQLSTATE) once the server has answered everything before it. The
//   session goes on. COM_STMT_EXECUTE of a statement judged under another policy (a reload
//   since its prepare), or not yet judged for its id, judges the prepared text again.
// - Everything else (login exchange, LOCAL INFILE content, other commands) streams through.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "protocol/mysql/session.h"
#include "protocol/statement.h"
#include "proxy/annotator.h"
#include "proxy/decision_log.h"
#include "proxy/judge.h"
#include "proxy/pg_relay.h"
#include "proxy/relay.h"

namespace dbwarden::proxy {

class MysqlRelay final : public Relay {
 public:
  MysqlRelay(ConnectionInfo& info, Judge& judge, RecordSink& records,
             const mysql::Limits& decoder_limits, const RelayLimits& limits,
             mysql::Counters& counters);

  void on_client(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) override;
  void on_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) override;
  void on_upstream_failed(std::string_view why, ByteBuffer& in, RelayOutput& out,
                          uint64_t now_ns) override;
  void on_close(uint64_t now_ns) override;
  bool wants_client_bytes() const override { return !holding_ && !closing_; }

  uint64_t blocked_messages() const { return blocked_; }

 private:
  bool step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns);
  bool judged_command(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  bool execute_command(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  bool pass_packet(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  // The whole packet at the front of `in` was blocked (verdict_): hold it for the answer.
  bool block(ByteBuffer& in, size_t total, RelayOutput& out, uint64_t now_ns);
  void pass(std::span<const uint8_t> bytes, bool to_server, RelayOutput& out, uint64_t now_ns);
  void answer(const std::vector<uint8_t>& reply, RelayOutput& out, uint64_t now_ns);
  void release_held(RelayOutput& out, uint64_t now_ns);
  void refuse(uint16_t code, const char* sqlstate, std::string_view message, uint8_t seq,
              RelayOutput& out, uint64_t now_ns);

  ConnectionInfo& info_;
  Judge& judge_;
  DecisionLog decisions_;
  RecordAnnotator annotator_;
  mysql::Session session_;
  RelayLimits limits_;

  bool greeting_pending_ = true;        // the server's first packet is still to be rewritten
  std::vector<uint8_t> server_hold_;    // its bytes until it is whole
  uint64_t stream_left_ = 0;            // payload bytes of the current packet still to pass
  bool holding_ = false;
  bool closing_ = false;
  std::vector<uint8_t> held_packet_;
  MessageVerdict verdict_;
  std::vector<uint8_t> scratch_;
  uint64_t blocked_ = 0;
  std::unordered_map<uint32_t, uint64_t> judged_at_;  // statement id -> judge generation
};

}  // namespace dbwarden::proxy
