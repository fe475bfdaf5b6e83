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
#include <vector>

#include "protocol/mysql/session.h"
#include "protocol/statement.h"
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

 private:
  bool step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) override;
  void release_held(RelayOutput& out, uint64_t now_ns) override;
  bool judged_command(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  bool execute_command(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  bool pass_packet(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  // An ERR packet, then the connection ends (see RelayBase::close_with).
  void refuse(uint16_t code, std::string_view sqlstate, std::string_view message, uint8_t seq,
              RelayOutput& out, uint64_t now_ns);

  bool greeting_pending_ = true;      // the server's first packet is still to be rewritten
  std::vector<uint8_t> server_hold_;  // its bytes until it is whole
  uint64_t stream_left_ = 0;          // payload bytes of the current packet still to pass
};

}  // namespace dbwarden::proxy
