// SPDX-License-Identifier: Apache-2.0
#include "proxy/mysql_relay.h"

#include <algorithm>
#include <string>

#include "protocol/mysql/messages.h"

namespace dbwarden::proxy {

using mysql::Direction;

namespace {

// Packet header: int<3> payload length, int<1> sequence id.
uint32_t PayloadLength(std::span<const uint8_t> h) {
  return uint32_t{h[0]} | (uint32_t{h[1]} << 8) | (uint32_t{h[2]} << 16);
}

// What the proxy cannot inspect, so does not offer.
constexpr uint32_t kNotOffered = static_cast<uint32_t>(mysql::kClientSsl | mysql::kClientCompress |
                                                       mysql::kClientZstdCompression);

// Sets CLIENT_SSL in a greeting's lower capability flags (the layout in
// mysql::ClearGreetingCapabilities): the proxy offers TLS it terminates itself.
bool OfferSsl(std::span<uint8_t> payload) {
  if (payload.empty() || payload[0] != 10) return false;
  size_t pos = 1;
  while (pos < payload.size() && payload[pos] != 0) ++pos;
  pos += 1 + 4 + 8 + 1;
  if (pos + 2 > payload.size()) return false;
  payload[pos + 1] |= static_cast<uint8_t>(mysql::kClientSsl >> 8);
  return true;
}

}  // namespace

MysqlRelay::MysqlRelay(ConnectionInfo& info, Judge& judge, RecordSink& records,
                       const mysql::Limits& decoder_limits, const RelayLimits& limits,
                       mysql::Counters& counters)
    : RelayBase(info, judge, records, decoder_limits, limits, counters) {}

void MysqlRelay::on_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) {
  if (tls_login_) return shifted_server(bytes, out, now_ns);
  if (greeting_pending_) {
    server_hold_.insert(server_hold_.end(), bytes.begin(), bytes.end());
    if (server_hold_.size() < mysql::kHeaderSize) return;
    const size_t total = mysql::kHeaderSize + PayloadLength(server_hold_);
    if (server_hold_.size() < total) return;
    greeting_pending_ = false;
    // An ERR instead of a greeting (host blocked, too many connections) passes unchanged.
    const auto payload =
        std::span<uint8_t>(server_hold_).subspan(mysql::kHeaderSize, total - mysql::kHeaderSize);
    mysql::ClearGreetingCapabilities(payload, kNotOffered);
    // With a certificate the proxy offers TLS itself, whatever the server's own.
    ssl_offered_ = out.client_tls_available() && OfferSsl(payload);
    std::vector<uint8_t> held;
    held.swap(server_hold_);
    out.to_client(held);
    session_.on_data(Direction::kServer, held, now_ns);
    return;
  }
  out.to_client(bytes);
  session_.on_data(Direction::kServer, bytes, now_ns);
  if (holding_) release_held(out, now_ns);
}

void MysqlRelay::on_upstream_failed(std::string_view why, ByteBuffer& in, RelayOutput& out,
                                    uint64_t now_ns) {
  in.consume(in.size());
  // The server speaks first: an ERR in place of the greeting, as a server refusing a host.
  refuse(2003, "HY000", "dbwarden: cannot reach the database server: " + std::string(why), 0, out,
         now_ns);
}

void MysqlRelay::on_close(uint64_t now_ns) {
  withdraw_request();
  session_.on_close(now_ns);
}

bool MysqlRelay::step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) {
  if (stream_left_ > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), stream_left_));
    pass(in.data().first(n), /*to_server=*/true, out, now_ns);
    in.consume(n);
    stream_left_ -= n;
    return true;
  }
  if (in.size() < mysql::kHeaderSize) return false;
  const auto header = in.data().first(mysql::kHeaderSize);
  const uint32_t length = PayloadLength(header);
  const uint8_t seq = header[3];
  if (!session_.in_command_phase()) {
    // The login exchange. A bare SSLRequest (CLIENT_SSL, no user yet) means the client
    // wants TLS although it was not offered: refuse rather than relay what cannot be read.
    if (seq == 1 && length == 32 && in.size() >= mysql::kHeaderSize + 32) {
      mysql::HandshakeResponse r;
      if (mysql::ParseHandshakeResponse(in.data().subspan(mysql::kHeaderSize, 32), &r) &&
          r.ssl_request) {
        if (ssl_offered_ && out.client_tls_available()) {
          // Terminated here: the server never hears of it. Every later login packet is one
          // behind on the server's side (it did not see this one), as shifted_*() correct.
          pass(in.data().first(mysql::kHeaderSize + 32), /*to_server=*/false, out, now_ns);
          in.consume(mysql::kHeaderSize + 32);
          out.start_client_tls();
          tls_login_ = true;
          clear_ssl_flag_ = true;
          return true;
        }
        refuse(1045, "28000", "dbwarden: TLS to the database is not available through the proxy", 2,
               out, now_ns);
        return false;
      }
    } else if (seq == 1 && length == 32) {
      return false;  // wait for the whole packet to tell
    }
    if (tls_login_) return shifted_client(in, length, out, now_ns);
  } else if (seq == 0 && length > 0) {
    if (in.size() < mysql::kHeaderSize + 1) return false;
    const uint8_t command = in.data()[mysql::kHeaderSize];
    if (command == mysql::kComQuery || command == mysql::kComStmtPrepare) {
      return judged_command(in, length, out, now_ns);
    }
    if (command == mysql::kComStmtExecute) return execute_command(in, length, out, now_ns);
  }
  return pass_packet(in, length, out, now_ns);
}

bool MysqlRelay::judged_command(ByteBuffer& in, uint32_t length, RelayOutput& out,
                                uint64_t now_ns) {
  const size_t total = mysql::kHeaderSize + size_t{length};
  const bool whole = length < mysql::kMaxPacket && total <= limits_.max_judged_bytes;
  const size_t need = whole ? total : limits_.max_judged_bytes;
  if (in.size() < need) return false;
  const auto text_bytes = in.data().subspan(mysql::kHeaderSize + 1, need - mysql::kHeaderSize - 1);
  const std::string_view text(reinterpret_cast<const char*>(text_bytes.data()), text_bytes.size());
  judge(text, whole, session_.backslash_escapes());
  if (whole && verdict_.decisive.approvals != 0) {
    const auto asked = ask_approval(in, total, now_ns);
    if (asked == Approval::kPass) return pass_packet(in, length, out, now_ns);
    if (asked == Approval::kHeld) return false;
  }
  if (!verdict_.decisive.block) return pass_packet(in, length, out, now_ns);
  if (!whole) {
    // Its continuation packets cannot be told from commands without reading them all.
    ++blocked_;
    refuse(verdict_.decisive.mysql_errno, verdict_.decisive.sqlstate, verdict_.decisive.message, 1,
           out, now_ns);
    return false;
  }
  ++blocked_;
  return hold(in, total, out, now_ns);
}

bool MysqlRelay::execute_command(ByteBuffer& in, uint32_t length, RelayOutput& out,
                                 uint64_t now_ns) {
  // COM_STMT_EXECUTE: int<1> 0x17, int<4> statement id, then flags and parameters.
  if (length < 5) return pass_packet(in, length, out, now_ns);
  if (in.size() < mysql::kHeaderSize + 5) return false;
  const auto id_bytes = in.data().subspan(mysql::kHeaderSize + 1, 4);
  const uint32_t id = uint32_t{id_bytes[0]} | (uint32_t{id_bytes[1]} << 8) |
                      (uint32_t{id_bytes[2]} << 16) | (uint32_t{id_bytes[3]} << 24);
  const std::string* text = session_.prepared_text(id);
  if (text != nullptr && !judged_now(id)) {
    judge(*text, /*complete=*/true, session_.backslash_escapes());
    note_judged(id);
    if (verdict_.decisive.block) {
      const size_t total = mysql::kHeaderSize + size_t{length};
      if (length >= mysql::kMaxPacket || total > limits_.max_judged_bytes) {
        ++blocked_;
        refuse(verdict_.decisive.mysql_errno, verdict_.decisive.sqlstate, verdict_.decisive.message,
               1, out, now_ns);
        return false;
      }
      if (in.size() < total) return false;
      if (verdict_.decisive.approvals != 0) {
        const auto asked = ask_approval(in, total, now_ns);
        if (asked == Approval::kPass) return pass_packet(in, length, out, now_ns);
        if (asked == Approval::kHeld) return false;
      }
      ++blocked_;
      return hold(in, total, out, now_ns);
    }
  }
  return pass_packet(in, length, out, now_ns);
}

bool MysqlRelay::shifted_client(ByteBuffer& in, uint32_t length, RelayOutput& out,
                                uint64_t now_ns) {
  // The HandshakeResponse after the SSL request also loses CLIENT_SSL (in its first
  // payload bytes): the server's leg is plaintext.
  const size_t rewritten =
      mysql::kHeaderSize + (clear_ssl_flag_ ? std::min<uint32_t>(length, 2) : 0);
  if (in.size() < rewritten) return false;
  const auto original = in.data().first(rewritten);
  uint8_t copy[mysql::kHeaderSize + 2];
  std::copy(original.begin(), original.end(), copy);
  copy[3] = static_cast<uint8_t>(copy[3] - 1);
  if (clear_ssl_flag_ && rewritten == sizeof(copy)) {
    copy[mysql::kHeaderSize + 1] &= static_cast<uint8_t>(~(mysql::kClientSsl >> 8));
  }
  clear_ssl_flag_ = false;
  out.to_server({copy, rewritten});
  pass(original, /*to_server=*/false, out, now_ns);  // the decoder: the client's own view
  in.consume(rewritten);
  stream_left_ = length - (rewritten - mysql::kHeaderSize);
  return true;
}

void MysqlRelay::shifted_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) {
  // Server packets of the login exchange, one sequence id ahead for the client; the
  // decoder sees them as the client does. Once it is in the command phase (the login's OK)
  // ids start at 0 each command on both sides and bytes pass unchanged.
  while (!bytes.empty()) {
    if (!tls_login_) {
      out.to_client(bytes);
      session_.on_data(Direction::kServer, bytes, now_ns);
      break;
    }
    if (server_left_ == 0) {
      const size_t n = std::min(bytes.size(), mysql::kHeaderSize - server_header_have_);
      std::copy_n(bytes.begin(), n, server_header_ + server_header_have_);
      server_header_have_ += n;
      bytes = bytes.subspan(n);
      if (server_header_have_ < mysql::kHeaderSize) break;
      server_header_have_ = 0;
      server_header_[3] = static_cast<uint8_t>(server_header_[3] + 1);
      out.to_client({server_header_, mysql::kHeaderSize});
      session_.on_data(Direction::kServer, {server_header_, mysql::kHeaderSize}, now_ns);
      server_left_ = PayloadLength({server_header_, mysql::kHeaderSize});
    } else {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), server_left_));
      out.to_client(bytes.first(n));
      session_.on_data(Direction::kServer, bytes.first(n), now_ns);
      bytes = bytes.subspan(n);
      server_left_ -= n;
    }
    if (server_left_ == 0 && server_header_have_ == 0 && session_.in_command_phase()) {
      tls_login_ = false;
    }
  }
  if (holding_) release_held(out, now_ns);
}

bool MysqlRelay::pass_packet(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns) {
  const auto header = in.data().first(mysql::kHeaderSize);
  pass(header, /*to_server=*/true, out, now_ns);
  in.consume(header.size());
  stream_left_ = length;
  return true;
}

void MysqlRelay::release_held(RelayOutput& out, uint64_t now_ns) {
  if (!session_.idle()) return;
  holding_ = false;
  if (verdict_.statements.size() > 1) {
    // Recorded as the statement that blocked the message (see pg_relay.h).
    for (const JudgedStatement& s : verdict_.statements) {
      if (!decides(s.verdict)) continue;
      held_.clear();
      mysql::AppendQueryPacket(s.text, &held_);
      break;
    }
  }
  pass(held_, /*to_server=*/false, out, now_ns);
  held_.clear();
  const Verdict& v = verdict_.decisive;
  scratch_.clear();
  mysql::AppendErrPacket(1, v.mysql_errno, v.sqlstate, v.message, &scratch_);
  answer(scratch_, out, now_ns);
}

void MysqlRelay::deny_held(std::vector<uint8_t> message, RelayOutput& out, uint64_t now_ns) {
  held_ = std::move(message);
  holding_ = true;
  release_held(out, now_ns);
}

void MysqlRelay::refuse(uint16_t code, std::string_view sqlstate, std::string_view message,
                        uint8_t seq, RelayOutput& out, uint64_t now_ns) {
  scratch_.clear();
  mysql::AppendErrPacket(seq, code, sqlstate, message, &scratch_);
  close_with(scratch_, /*recorded=*/false, out, now_ns);
}

}  // namespace dbwarden::proxy
