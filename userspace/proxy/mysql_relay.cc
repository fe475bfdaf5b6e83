// SPDX-License-Identifier: Apache-2.0
#include "proxy/mysql_relay.h"

#include <algorithm>
#include <string>

#include "protocol/mysql/messages.h"
#include "proxy/mysql_statement_scan.h"

namespace dbwarden::proxy {

using mysql::Direction;

namespace {

// Packet header: int<3> payload length, int<1> sequence id.
uint32_t PayloadLength(std::span<const uint8_t> h) {
  return uint32_t{h[0]} | (uint32_t{h[1]} << 8) | (uint32_t{h[2]} << 16);
}

// What the proxy cannot inspect, so does not offer; and result-metadata caching, which
// would leave a masked result without the column definitions it is masked by.
constexpr uint64_t kNotOffered = mysql::kClientSsl | mysql::kClientCompress |
                                 mysql::kClientZstdCompression | mysql::kClientOptionalMetadata |
                                 mysql::kMariaDbCacheMetadata;
// ER_COLUMNACCESS_DENIED_ERROR: the refusals of masking.
constexpr uint16_t kMaskErrno = 1143;
constexpr std::string_view kMaskSqlstate = "42000";
// COM_STMT_EXECUTE flags: any cursor type.
constexpr uint8_t kCursorFlags = 0x07;

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
    : RelayBase(info, judge, records, decoder_limits, limits, counters),
      results_(MysqlResultLimits{limits.max_masked_message_bytes}) {
  annotator_.set_tallies(&planner_.tallies());
}

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
    if (mysql::Greeting g; mysql::ParseGreeting(payload, &g)) thread_id_ = g.connection_id;
    mysql::ClearGreetingCapabilities(payload, kNotOffered);
    // With a certificate the proxy offers TLS itself, whatever the server's own.
    ssl_offered_ = out.client_tls_available() && OfferSsl(payload);
    std::vector<uint8_t> held;
    held.swap(server_hold_);
    out.to_client(held);
    session_.on_data(Direction::kServer, held, now_ns);
    return;
  }
  if (explain_running_) {
    bytes = explain_answer(bytes, out, now_ns);
    if (bytes.empty() || closing_) return;
  }
  if (kill_) watch_kill(bytes, out);
  if (lookup_) {
    masked_out_.clear();
    const size_t used = results_.feed(bytes, masked_out_);  // the proxy's own: dropped
    if (results_.state() == MysqlResultMasker::State::kRunning) return;
    lookup_ = false;
    if (results_.state() == MysqlResultMasker::State::kBroken) {
      closing_ = true;
      out.close_after_flush();
      return;
    }
    lookup_planner_.fill(catalog_, results_.state() == MysqlResultMasker::State::kDone &&
                                       results_.refusal().empty());
    bytes = bytes.subspan(used);
    if (bytes.empty()) return;
  }
  if (masking_) {
    masked_out_.clear();
    const size_t used = results_.feed(bytes, masked_out_);
    if (!masked_out_.empty()) {
      out.to_client(masked_out_);
      session_.on_data(Direction::kServer, masked_out_, now_ns);
    }
    switch (results_.state()) {
      case MysqlResultMasker::State::kRunning:
        return;  // every byte taken
      case MysqlResultMasker::State::kBroken:
        // Its framing is lost: nothing more of it may reach the client.
        masking_ = false;
        closing_ = true;
        out.close_after_flush();
        return;
      default:  // done, or a LOCAL INFILE exchange that streams on
        masking_ = false;
        break;
    }
    bytes = bytes.subspan(used);
    if (bytes.empty()) {
      if (holding_) release_held(out, now_ns);
      return;
    }
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

void MysqlRelay::watch_kill(std::span<const uint8_t> bytes, RelayOutput& out) {
  const size_t n = std::min(bytes.size(), sizeof kill_peek_ - kill_have_);
  std::copy_n(bytes.begin(), n, kill_peek_ + kill_have_);
  kill_have_ += n;
  if (kill_have_ < sizeof kill_peek_) return;
  const MysqlKill k = *kill_;
  kill_.reset();
  // OK (0x00): the server found the thread and this user may kill it. ERR: it did not.
  if (kill_peek_[mysql::kHeaderSize] == 0x00) {
    out.kill_request(info_.server_port, k.thread_id, k.connection, thread_id_);
  }
}

bool MysqlRelay::kill_approval(uint16_t server_port, uint32_t thread_id, bool connection,
                               uint32_t by_thread) {
  if (!awaiting_approval() || thread_id_ == 0 || thread_id != thread_id_ ||
      server_port != info_.server_port) {
    return false;
  }
  // The statement never reached the server, so the server's KILL found the thread idle (a
  // no-op there): the proxy ends the wait as the server would have ended the statement.
  cancel_held(std::string("canceled by KILL ") + (connection ? "CONNECTION" : "QUERY") +
                  " from connection " + std::to_string(by_thread),
              connection);
  return true;
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
    // A masked answer (or the proxy's lookup) is read packet by packet: the next command
    // waits for its end.
    if (masking_ || lookup_ || explain_running_) return false;
    if (in.size() < mysql::kHeaderSize + 1) return false;
    const uint8_t command = in.data()[mysql::kHeaderSize];
    if (command == mysql::kComQuery || command == mysql::kComStmtPrepare) {
      return judged_command(in, length, out, now_ns);
    }
    if (command == mysql::kComStmtExecute || command == mysql::kComStmtBulkExecute) {
      return execute_command(in, length, out, now_ns);
    }
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
  // DDL clears the catalog even when it is then held or blocked: a lookup again costs little.
  for (const JudgedStatement& s : verdict_.statements) {
    if (IsMysqlDdl(s.text, session_.backslash_escapes())) catalog_.clear();
  }
  const bool prepare = in.data()[mysql::kHeaderSize] == mysql::kComStmtPrepare;
  if (whole && verdict_.decisive.approvals != 0) {
    if (prepare) {
      // Preparing runs nothing: each execute is held instead (execute_command), under the
      // rule and the grants in force then.
      verdict_.decisive.block = false;
    } else if (ask_approval(in, total, out, now_ns) == Approval::kHeld) {
      return false;
    }
    // Passed (approved or granted): on as an allowed statement, masked as one; else blocked.
  }
  if (!verdict_.decisive.block) {
    // A prepare's answer carries no rows: its executes are masked.
    if (!prepare && has_masks(verdict_)) {
      if (!whole) {
        ++blocked_;
        refuse(kMaskErrno, kMaskSqlstate, "dbwarden: statement too large for masking", 1, out,
               now_ns);
        return false;
      }
      // It may yet be refused (its mask plan): a PREPARE in it keeps the statement it would
      // replace beside the new one.
      sent_judged(/*sure=*/false);
      return masked_command(in, length, verdict_, /*binary=*/false, {}, out, now_ns);
    }
    if (whole && !prepare) sent_judged();
    MysqlKill kill;
    if (!prepare && whole && session_.idle() &&
        ParseMysqlKill(text, session_.backslash_escapes(), &kill)) {
      // Its answer is the server's next packet: watched (watch_kill).
      kill_ = kill;
      kill_have_ = 0;
    }
    return pass_packet(in, length, out, now_ns);
  }
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
  // COM_STMT_EXECUTE: int<1> 0x17, int<4> statement id, int<1> flags, then parameters.
  // MariaDB's COM_STMT_BULK_EXECUTE: int<1> 0xfa, int<4> statement id, int<2> flags, ...
  if (length < 6) return pass_packet(in, length, out, now_ns);
  if (in.size() < mysql::kHeaderSize + 6) return false;
  const auto head = in.data().subspan(mysql::kHeaderSize, 6);
  const bool bulk = head[0] == mysql::kComStmtBulkExecute;
  const uint32_t id = uint32_t{head[1]} | (uint32_t{head[2]} << 8) | (uint32_t{head[3]} << 16) |
                      (uint32_t{head[4]} << 24);
  const std::string* text = session_.prepared_text(id);
  if (text == nullptr) {
    // Not kept (beyond the decoder's bounds): what it reads is unknown. Under mask rules
    // it is refused rather than answered unmasked.
    judge({}, /*complete=*/true, session_.backslash_escapes());
    if (verdict_.policy == nullptr || verdict_.policy->mask_rule_count() == 0) {
      return pass_packet(in, length, out, now_ns);
    }
    if (length >= mysql::kMaxPacket ||
        mysql::kHeaderSize + size_t{length} > limits_.max_judged_bytes) {
      ++blocked_;
      refuse(kMaskErrno, kMaskSqlstate, "dbwarden: statement too large for masking", 1, out,
             now_ns);
      return false;
    }
    if (in.size() < mysql::kHeaderSize + size_t{length}) return false;
    return refuse_masked(in, length, verdict_, "",
                         "dbwarden: a prepared statement the proxy does not know cannot be "
                         "masked and is refused",
                         out, now_ns);
  }
  // Id 0xffffffff names whichever statement was prepared last: never taken from the map.
  auto it = executed_.find(id);
  if (id == 0xffffffffu || !judged_now(id) || it == executed_.end()) {
    judge(*text, /*complete=*/true, session_.backslash_escapes());
    note_judged(id);
    if (executed_.size() >= 4096) executed_.clear();  // bounded: they are judged again
    it = executed_.insert_or_assign(id, verdict_).first;
  } else {
    verdict_ = it->second;  // the verdict this execute goes by (held, blocked, masked)
  }
  const MessageVerdict& v = verdict_;  // it->second, as decided for this execute
  const size_t total = mysql::kHeaderSize + size_t{length};
  const bool whole = length < mysql::kMaxPacket && total <= limits_.max_judged_bytes;
  if (v.decisive.block) {
    if (!whole) {
      ++blocked_;
      refuse(v.decisive.mysql_errno, v.decisive.sqlstate, v.decisive.message, 1, out, now_ns);
      return false;
    }
    if (in.size() < total) return false;
    // Each execute asks again: the grants in force now decide, and an approval covers
    // this one execute. Passed, it goes on as an allowed one (masked as one).
    const Approval asked =
        v.decisive.approvals != 0 ? ask_approval(in, total, out, now_ns) : Approval::kBlock;
    if (asked == Approval::kHeld) return false;
    if (asked == Approval::kBlock) {
      ++blocked_;
      return hold(in, total, out, now_ns);
    }
  }
  if (!has_masks(v)) return pass_packet(in, length, out, now_ns);
  if (!whole) {
    ++blocked_;
    refuse(kMaskErrno, kMaskSqlstate, "dbwarden: statement too large for masking", 1, out, now_ns);
    return false;
  }
  if (bulk || (head[5] & kCursorFlags) != 0) {
    return masked_command(in, length, v, /*binary=*/true,
                          "dbwarden: a cursor or bulk execute of a masked statement is refused",
                          out, now_ns);
  }
  return masked_command(in, length, v, /*binary=*/true, {}, out, now_ns);
}

bool MysqlRelay::has_masks(const MessageVerdict& v) {
  for (const JudgedStatement& s : v.statements) {
    if (!s.masks.empty()) return true;
  }
  return false;
}

bool MysqlRelay::masked_command(ByteBuffer& in, uint32_t length, const MessageVerdict& v,
                                bool binary, std::string_view refusal, RelayOutput& out,
                                uint64_t now_ns) {
  const size_t total = mysql::kHeaderSize + size_t{length};
  if (in.size() < total) return false;  // read whole (callers checked it fits)
  std::string rule;
  std::string why = planner_.prepare(v.statements, v.policy, info_.database,
                                     session_.backslash_escapes(), catalog_, rule);
  if (!refusal.empty() && why.empty()) {
    why.assign(refusal);
    rule = v.policy ? v.policy->mask_rule_name(*v.statements.front().masks.front()) : "";
  }
  if (!why.empty()) return refuse_masked(in, length, v, rule, why, out, now_ns);
  // No detector, and no masked column among what it reads: the cheap path.
  if (!planner_.needs_results()) return pass_packet(in, length, out, now_ns);
  // Its answer must start at the server's next byte.
  if (!session_.idle()) return false;
  if (!planner_.unknown_tables().empty() && !session_.in_transaction()) {
    std::vector<std::string> schemas;
    for (const MysqlTableName& t : planner_.unknown_tables()) {
      if (std::find(schemas.begin(), schemas.end(), t.schema) == schemas.end()) {
        schemas.push_back(t.schema);
      }
    }
    // Asked once until the next DDL: what the answer does not list stays unknown.
    for (const std::string& s : schemas) catalog_.add_schema(s);
    scratch_.clear();
    if (lookup_planner_.query(schemas, scratch_)) {
      results_.start(lookup_planner_, /*binary=*/false, session_.deprecate_eof(),
                     session_.metadata_flag());
      lookup_ = true;
      lookup_bytes_ += scratch_.size();
      out.to_server(scratch_);
      return false;  // the command goes once the answer is in (drive() comes back)
    }
  }
  results_.start(planner_, binary, session_.deprecate_eof(), session_.metadata_flag());
  masking_ = true;
  return pass_packet(in, length, out, now_ns);
}

bool MysqlRelay::refuse_masked(ByteBuffer& in, uint32_t length, const MessageVerdict& v,
                               std::string_view rule, std::string_view message, RelayOutput& out,
                               uint64_t now_ns) {
  if (&v != &verdict_) verdict_ = v;  // `v` may be verdict_ itself
  Verdict& d = verdict_.decisive;
  d.block = true;
  d.rule.assign(rule);
  d.action = "block";
  d.message.assign(message);
  d.sqlstate.assign(kMaskSqlstate);
  d.mysql_errno = kMaskErrno;
  for (JudgedStatement& s : verdict_.statements) {
    if (s.masks.empty()) continue;
    s.verdict = d;
    decisions_.remember(s);
  }
  ++blocked_;
  return hold(in, mysql::kHeaderSize + size_t{length}, out, now_ns);
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

bool MysqlRelay::start_explain(std::string_view text, std::span<const uint8_t> message,
                               const ByteBuffer& /*in*/, RelayOutput& out, std::string& unavailable,
                               ExplainJob& role) {
  const uint8_t command = message.size() > mysql::kHeaderSize ? message[mysql::kHeaderSize] : 0;
  const bool mariadb = info_.db_system == "mariadb";
  if (command != mysql::kComQuery && command != mysql::kComStmtExecute) {
    unavailable = "not estimated for a bulk execute (COM_STMT_BULK_EXECUTE)";
    return false;
  }
  // Why the session cannot run it now: the agent's role may instead, for a text statement
  // (a prepared execution's values are bound on the client's session only).
  if (closing_ || masking_ || lookup_ || explain_running_ || holding_) {
    unavailable = "the proxy was busy on the session";
  } else if (session_.in_transaction()) {
    unavailable = "the session is inside a transaction";
  } else if (!session_.idle()) {
    unavailable = "the session was still answering earlier statements";
  }
  if (!unavailable.empty()) {
    if (command == mysql::kComQuery) {
      role.text.assign(text);
      role.mariadb = mariadb;
      role.server_port = info_.server_port;
      role.database = info_.database;
    }
    return false;
  }
  if (command == mysql::kComStmtExecute) {
    if (!prepare_explain(text, message.subspan(mysql::kHeaderSize), mariadb, unavailable)) {
      return false;
    }
    // The prepare's answer comes first (explain_answer()), then the execute's rows.
    explain_execute_ = true;
  } else {
    if (!explain_.query(text, mariadb, scratch_, unavailable)) return false;
    results_.start(explain_, /*binary=*/false, session_.deprecate_eof(), session_.metadata_flag());
    explain_execute_ = false;
  }
  explain_running_ = true;
  explain_out_.clear();
  lookup_bytes_ += scratch_.size();
  out.to_server(scratch_);  // not to the decoder: no record of it
  return true;
}

bool MysqlRelay::prepare_explain(std::string_view text, std::span<const uint8_t> payload,
                                 bool mariadb, std::string& unavailable) {
  const uint32_t id = uint32_t{payload[1]} | (uint32_t{payload[2]} << 8) |
                      (uint32_t{payload[3]} << 16) | (uint32_t{payload[4]} << 24);
  mysql::Session::PreparedParams params;
  if (id == 0xffffffffu) {
    // MariaDB's "the statement prepared last": the EXPLAIN's own prepare would become that.
    unavailable = "not estimated for a direct execute (statement id -1)";
    return false;
  }
  if (session_.query_attributes()) {
    unavailable = "not estimated for an execute with query attributes (MySQL)";
    return false;
  }
  if (!session_.prepared_params(id, &params)) {
    unavailable = "the prepared statement's parameters are not known to the proxy";
    return false;
  }
  if (params.long_data) {
    // Its value waits in the client's statement on the server, not in the execute.
    unavailable = "a parameter value was sent as long data (COM_STMT_SEND_LONG_DATA)";
    return false;
  }
  std::vector<uint8_t> execute;
  if (!RebindExecute(payload, params.count, *params.types, 0, execute, unavailable)) return false;
  return explain_.prepare(text, mariadb, session_.deprecate_eof(), params.count, std::move(execute),
                          scratch_, unavailable);
}

std::span<const uint8_t> MysqlRelay::explain_answer(std::span<const uint8_t> bytes,
                                                    RelayOutput& out, uint64_t now_ns) {
  if (explain_execute_ && !explain_.prepare_done()) {
    bytes = bytes.subspan(explain_.prepare_answer(bytes));
    if (!explain_.prepare_done()) return {};
    BlastEstimate failed;
    if (!explain_.execute(scratch_, failed)) {
      finish_explain(failed, out, now_ns);
      return bytes;
    }
    results_.start(explain_, /*binary=*/true, session_.deprecate_eof(), session_.metadata_flag());
    lookup_bytes_ += scratch_.size();
    out.to_server(scratch_);
    if (bytes.empty()) return {};
  }
  masked_out_.clear();
  const size_t used = results_.feed(bytes, masked_out_);  // the proxy's own: dropped
  // Kept only to find an ERR in it (small): a plan's rows past the bound are not needed.
  if (explain_out_.size() + masked_out_.size() <= 2 * kMaxExplainJson) {
    explain_out_.insert(explain_out_.end(), masked_out_.begin(), masked_out_.end());
  }
  if (results_.state() == MysqlResultMasker::State::kRunning) return {};
  if (results_.state() == MysqlResultMasker::State::kBroken) {
    explain_running_ = false;
    closing_ = true;
    out.close_after_flush();
    return {};
  }
  const BlastEstimate e =
      explain_.result(explain_out_, results_.state() == MysqlResultMasker::State::kDone);
  explain_out_.clear();
  finish_explain(e, out, now_ns);
  return bytes.subspan(used);
}

void MysqlRelay::finish_explain(const BlastEstimate& e, RelayOutput& out, uint64_t now_ns) {
  explain_running_ = false;
  // The EXPLAIN's own prepared statement goes (COM_STMT_CLOSE has no answer), before any
  // command of the client's.
  if (explain_execute_ && explain_.close(scratch_)) {
    lookup_bytes_ += scratch_.size();
    out.to_server(scratch_);
  }
  explain_execute_ = false;
  explained(e, out, now_ns);
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
