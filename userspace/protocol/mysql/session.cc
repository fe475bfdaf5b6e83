// SPDX-License-Identifier: Apache-2.0
#include "protocol/mysql/session.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace dbwarden::mysql {
namespace {

// Commands waiting for answers. Clients pipeline a few at most; beyond this
// the oldest are emitted with an unknown outcome rather than held forever.
constexpr size_t kMaxPendingOps = 1024;
constexpr size_t kNameBytes = 1024;   // COM_INIT_DB schema names
constexpr size_t kReplyBytes = 8192;  // OK (session state), ERR messages
constexpr size_t kExecuteBytes = size_t{1} << 16;

bool Has(uint64_t caps, uint64_t flag) { return (caps & flag) != 0; }

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "USE `";
  for (char c : name) {
    if (c == '`') out.push_back('`');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

// OpenTelemetry's MySQL and MariaDB conventions: db.response.status_code is
// the error number as a string; the SQLSTATE goes to dbwarden.sqlstate.
void set_error(Statement& s, const ErrPacket& err) {
  char number[8];
  const auto end = std::to_chars(number, number + sizeof(number), err.code).ptr;
  s.status_code.assign(number, end);
  s.sqlstate.assign(err.sqlstate);
  s.error_message.assign(err.message);
}

}  // namespace

// "5.5.5-10.11.6-MariaDB-0+deb12u1": MariaDB names itself in the version
// (the "5.5.5-" prefix is for old replication clients); MySQL never does.
bool IsMariaDbVersion(std::string_view version) {
  return version.find("MariaDB") != std::string_view::npos;
}

Session::Session(ConnectionInfo& info, StatementSink& sink, const Limits& limits,
                 Counters& counters)
    : info_(info),
      sink_(sink),
      limits_(limits),
      counters_(counters),
      client_(Direction::kClient, counters, *this),
      server_(Direction::kServer, counters, *this) {
  if (info_.db_system.empty()) info_.db_system = "mysql";
}

Session::~Session() = default;

void Session::on_data(Direction dir, std::span<const uint8_t> bytes, uint64_t ts_ns) {
  if (tls_pending_) {
    on_data_after_ssl_request(dir, bytes, ts_ns);
    return;
  }
  if (dir == Direction::kServer && client_.inside_unconfirmed()) {
    // The server answers only whole commands: the client message we took to
    // start here is not one. Look for the next command instead of reading on
    // through a false length (up to 16 MiB: a connection's worth of statements).
    ++counters_.invalid_packets;
    client_.lose();
  }
  (dir == Direction::kClient ? client_ : server_).feed(bytes, ts_ns);
}

// A TLS record starts with its content type (0x16: handshake) and the major
// version 3; a plaintext MySQL packet here is the HandshakeResponse (three
// length bytes, sequence 2), whose length would have to be 790 + 65536 * n
// bytes to start the same way.
void Session::on_data_after_ssl_request(Direction dir, std::span<const uint8_t> bytes,
                                        uint64_t ts_ns) {
  std::vector<uint8_t>& hold = tls_hold_[dir == Direction::kClient ? 0 : 1];
  hold.insert(hold.end(), bytes.begin(), bytes.end());
  if (hold.size() < 2) return;
  if (hold[0] == 0x16 && hold[1] == 0x03) {
    // Ciphertext: the TLS library of this connection is not captured.
    ++counters_.encrypted_connections;
    tls_pending_ = false;
    for (std::vector<uint8_t>& h : tls_hold_) h.clear();
    stop_decoding();
    return;
  }
  if (dir == Direction::kClient) tls_pending_ = false;  // plaintext from the TLS probes
  const std::vector<uint8_t> held = std::move(hold);
  hold.clear();
  (dir == Direction::kClient ? client_ : server_).feed(held, ts_ns);
  if (!tls_pending_ && !tls_hold_[1].empty()) {
    const std::vector<uint8_t> server_held = std::move(tls_hold_[1]);
    tls_hold_[1].clear();
    server_.feed(server_held, ts_ns);
  }
}

void Session::on_gap(Direction dir, uint64_t length, uint64_t ts_ns) {
  if (length == 0) return;
  ++counters_.gaps;
  counters_.gap_bytes += length;
  Framer& framer = dir == Direction::kClient ? client_ : server_;
  if (framer.stopped()) return;
  mark_gap(dir);
  framer.gap(length, ts_ns);
}

void Session::on_close(uint64_t ts_ns) { abandon_pending(ts_ns); }

void Session::abandon_pending(uint64_t ts_ns) {
  while (!ops_.empty()) {
    emit_unknown(ops_.front(), ts_ns);
    ops_.pop_front();
  }
  resp_ = Resp::kFirst;
  infile_ = false;
  rows_ = exec_rows_ = response_bytes_ = 0;
  exec_rowsets_ = false;
}

void Session::on_framing_lost(Direction dir) {
  mark_gap(dir);
  if (dir == Direction::kServer) server_lost_ = true;
}

void Session::mark_gap(Direction dir) {
  for (Cmd& c : ops_) c.gap = true;
  if (dir == Direction::kClient) client_gap_ = true;
}

void Session::stop_decoding() {
  phase_ = Phase::kStopped;
  client_.stop();
  server_.stop();
}

// ---- what to keep ------------------------------------------------------------

Keep Session::keep(Direction dir, uint8_t seq, int first, uint32_t packet_length) {
  return dir == Direction::kClient ? keep_client(seq, first, packet_length)
                                   : keep_server(seq, first, packet_length);
}

Keep Session::keep_client(uint8_t seq, int first, uint32_t len) {
  switch (phase_) {
    case Phase::kStopped:
      return {};
    case Phase::kStart:
      if (seq == 1 && first >= 0) return {len, false, true};  // HandshakeResponse (wiped)
      if (seq == 0 && first >= 0 && IsKnownCommand(static_cast<uint8_t>(first))) break;
      return {0, true, false};
    case Phase::kAuth:
      if (!handshake_seen_ && seq == response_seq_ && first >= 0) return {len, false, true};
      return {0, false, true};  // authentication data: never kept
    case Phase::kCommand:
      break;
  }
  if (seq != 0) {
    // File content for LOCAL INFILE, or authentication for COM_CHANGE_USER.
    const bool expected = infile_ || (!ops_.empty() && ops_.front().command == kComChangeUser);
    if (expected) return {0, false, true};
    return {0, true, false};
  }
  if (first < 0 || !IsKnownCommand(static_cast<uint8_t>(first))) return {0, true, false};
  switch (first) {
    case kComQuery:
    case kComStmtPrepare:
      return {limits_.max_query_bytes + 1, false, false};
    case kComInitDb:
      return {kNameBytes, false, false};
    case kComStmtExecute:
      return {kExecuteBytes, false, false};
    case kComStmtSendLongData:
      return {7 + limits_.max_parameter_bytes, false, false};
    case kComChangeUser:
      return {kNameBytes + 256 + kNameBytes, false, true};
    case kComStmtClose:
    case kComStmtReset:
    case kComStmtFetch:
    case kComSetOption:
      return {16, false, false};
    default:
      return {0, false, false};
  }
}

Keep Session::keep_server(uint8_t seq, int first, uint32_t len) {
  switch (phase_) {
    case Phase::kStopped:
      return {};
    case Phase::kStart:
      // Only a greeting (sequence 0, protocol 10) or an ERR refusing us can
      // open a connection; anything else means we joined mid-stream and
      // wait for the client's next command.
      if (seq == 0 && (first == 10 || first == 0xff)) return {kReplyBytes};
      return {0, true, false};
    case Phase::kAuth:
      // OK and ERR carry no authentication data; the rest (auth switch, more
      // data) is never kept.
      if (first == 0x00 || first == 0xff) return {kReplyBytes};
      return {0, false, true};
    case Phase::kCommand:
      break;
  }
  if (ops_.empty() || first < 0) return {};
  const Cmd& c = ops_.front();
  if (c.command == kComChangeUser && resp_ == Resp::kFirst) {
    return {first == 0x00 || first == 0xff ? kReplyBytes : 0, false, true};
  }
  switch (resp_) {
    case Resp::kFirst:
    case Resp::kInfile:
      return {kReplyBytes};
    case Resp::kColumnsEof:
      return {first == 0xfe || first == 0xff ? kReplyBytes : 0};
    case Resp::kRows:
      return {first == 0xfe || first == 0xff ? kReplyBytes : 0};
    case Resp::kColumns:
    case Resp::kPrepareDefs:
    case Resp::kFieldList:
      return {first == 0xff || first == 0xfe ? kReplyBytes : 0};
  }
  return {};
}

void Session::on_frame(Direction dir, const Frame& f) {
  if (dir == Direction::kClient) {
    on_client(f);
  } else {
    on_server(f);
  }
}

// ---- client --------------------------------------------------------------------

void Session::on_client(const Frame& f) {
  switch (phase_) {
    case Phase::kStopped:
      return;
    case Phase::kStart:
      if (f.seq == 1) {
        phase_ = Phase::kAuth;
        on_handshake_response(f);
        return;
      }
      ++counters_.midstream_joins;
      phase_ = Phase::kCommand;
      on_command(f);
      return;
    case Phase::kAuth:
      if (!handshake_seen_ && f.seq == response_seq_) on_handshake_response(f);
      return;  // authentication data
    case Phase::kCommand:
      break;
  }
  if (f.seq != 0) {
    if (infile_ && !ops_.empty()) {
      ops_.front().request_bytes += f.wire_bytes();
      counters_.local_infile_bytes += f.length;
    }
    return;  // LOCAL INFILE content or COM_CHANGE_USER authentication
  }
  on_command(f);
}

void Session::on_handshake_response(const Frame& f) {
  HandshakeResponse hr;
  if (!ParseHandshakeResponse(f.body, &hr)) {
    ++counters_.invalid_packets;
    return;
  }
  if (hr.ssl_request) {
    // TLS follows. With the TLS library's calls captured the plaintext goes on
    // in this stream (the full HandshakeResponse, sequence 2); without, the
    // bytes are ciphertext and are never decoded (on_data_after_ssl_request).
    tls_pending_ = true;
    response_seq_ = 2;
    return;
  }
  handshake_seen_ = true;
  caps_ = server_caps_ ? (hr.capabilities & server_caps_) : hr.capabilities;
  info_.user.assign(hr.user);
  if (hr.has_database) info_.database.assign(hr.database);
  multi_statements_ = Has(caps_, kClientMultiStatements);
  deprecate_eof_ = Has(caps_, kClientDeprecateEof);
  metadata_byte_ = Has(caps_, kClientOptionalMetadata) || Has(caps_, kMariaDbCacheMetadata);
}

Session::Cmd& Session::push(uint8_t command, const Frame& f) {
  if (ops_.size() >= kMaxPendingOps) {
    emit_unknown(ops_.front(), f.start_ns);
    ops_.pop_front();
    resp_ = Resp::kFirst;
  }
  Cmd& c = ops_.emplace_back();
  c.command = command;
  c.gap = client_gap_ || f.gap;
  c.start_ns = f.start_ns;
  c.request_bytes = f.wire_bytes();
  client_gap_ = false;
  return c;
}

void Session::on_command(const Frame& f) {
  if (server_lost_ || server_.waiting()) {
    // The answers to what is pending were lost with the server framing; the
    // server answers this command from its next byte on.
    abandon_pending(f.start_ns);
    server_.restart();
    server_lost_ = false;
  }
  Reader r(f.body);
  uint8_t command = 0;
  // Commands whose body keep_client() does not keep (COM_STATISTICS, COM_PING,
  // ...) arrive with an empty body: their command byte is the frame's first.
  // Read as 0 (COM_SLEEP), COM_STATISTICS's bare-string answer was taken for a
  // result set of 'U' (85) columns, and the session never came back to idle.
  if (!r.u8(&command) && f.first >= 0) command = static_cast<uint8_t>(f.first);
  switch (command) {
    case kComQuery:
      on_query(f);
      break;
    case kComStmtPrepare: {
      Cmd& c = push(command, f);
      std::string_view text = r.rest();
      auto p = std::make_shared<Prepared>();
      p->truncated = text.size() > limits_.max_query_bytes || !f.body_complete;
      if (text.size() > limits_.max_query_bytes) text = text.substr(0, limits_.max_query_bytes);
      if (p->truncated) ++counters_.truncated_queries;
      p->text.assign(text);
      c.prepared = p;
      last_prepared_ = std::move(p);
      break;
    }
    case kComStmtExecute:
      on_execute(f);
      break;
    case kComStmtSendLongData:
      on_long_data(f);
      break;
    case kComStmtClose:
    case kComStmtReset:
      on_statement_id_command(f);
      break;
    case kComInitDb: {
      Cmd& c = push(command, f);
      c.database.assign(r.rest());
      break;
    }
    case kComChangeUser: {
      ChangeUser cu;
      Cmd& c = push(command, f);
      if (ParseChangeUser(f.body, caps_, &cu)) {
        c.user.assign(cu.user);
        c.database.assign(cu.database);
      }
      break;
    }
    case kComSetOption: {
      Cmd& c = push(command, f);
      r.u16(&c.option);
      break;
    }
    case kComQuit:
      break;  // no answer; the connection closes
    case kComBinlogDump:
    case kComBinlogDumpGtid:
      // A replica: the answer is an endless event stream, not statements.
      stop_decoding();
      break;
    default:
      push(command, f);  // COM_PING, COM_STATISTICS, ...: one answer, no record
      break;
  }
}

void Session::on_query(const Frame& f) {
  Cmd& c = push(kComQuery, f);
  std::string_view text(reinterpret_cast<const char*>(f.body.data()), f.body.size());
  text.remove_prefix(std::min<size_t>(1, text.size()));
  c.truncated = text.size() > limits_.max_query_bytes || !f.body_complete;
  if (text.size() > limits_.max_query_bytes) text = text.substr(0, limits_.max_query_bytes);
  if (c.truncated) ++counters_.truncated_queries;
  c.text.assign(text);
  if (multi_statements_) SplitStatements(c.text, backslash_escapes_, &c.pieces);
  if (c.pieces.empty()) {
    // One statement as sent (or nothing: the server answers an empty query
    // with ERR 1065, which still deserves a record).
    size_t b = 0, e = c.text.size();
    while (b < e && static_cast<unsigned char>(c.text[b]) <= ' ') ++b;
    while (e > b && static_cast<unsigned char>(c.text[e - 1]) <= ' ') --e;
    c.pieces.push_back({b, e - b});
  }
}

void Session::on_execute(const Frame& f) {
  Cmd& c = push(kComStmtExecute, f);
  ExecuteHeader h;
  if (!ParseExecuteHeader(f.body, &h)) return;
  c.statement_id = h.statement_id;
  std::shared_ptr<Prepared> p;
  if (h.statement_id == 0xffffffffu) {
    p = last_prepared_;  // MariaDB: "the statement prepared last" (pipelined)
  } else if (auto it = prepared_.find(h.statement_id); it != prepared_.end()) {
    p = it->second;
  }
  if (!p) {
    // Prepared before capture (or beyond our limits): recorded by id.
    c.unresolved = true;
    ++counters_.unresolved_statements;
    return;
  }
  c.prepared = p;
  if (p->known) {
    DecodeParameters(f.body, p->params, Has(caps_, kClientQueryAttributes),
                     limits_.max_parameter_bytes, &p->bound, p->long_data, p->has_long_data,
                     &c.params);
  }
  // The server forgets long data after each execute.
  p->long_data.clear();
  p->has_long_data.clear();
}

void Session::on_long_data(const Frame& f) {
  // int<1> 0x18, int<4> statement id, int<2> parameter, byte<n> data. No answer.
  Reader r(f.body);
  uint8_t cmd = 0;
  uint32_t id = 0;
  uint16_t param = 0;
  if (!r.u8(&cmd) || !r.u32(&id) || !r.u16(&param)) return;
  auto it = prepared_.find(id);
  if (it == prepared_.end()) return;
  Prepared& p = *it->second;
  if (param >= p.params) return;
  if (p.long_data.size() < p.params) {
    p.long_data.resize(p.params);
    p.has_long_data.resize(p.params);
  }
  p.has_long_data[param] = true;
  std::string& v = p.long_data[param];
  const std::string_view data = r.rest();
  v.append(data.substr(
      0, limits_.max_parameter_bytes - std::min(v.size(), limits_.max_parameter_bytes)));
}

void Session::on_statement_id_command(const Frame& f) {
  Reader r(f.body);
  uint8_t cmd = 0;
  uint32_t id = 0;
  if (!r.u8(&cmd) || !r.u32(&id)) return;
  auto it = prepared_.find(id);
  if (cmd == kComStmtClose) {  // no answer
    if (it != prepared_.end()) {
      prepared_bytes_ -= it->second->text.size();
      prepared_.erase(it);
    }
    return;
  }
  if (it != prepared_.end()) {
    it->second->long_data.clear();
    it->second->has_long_data.clear();
  }
  push(cmd, f);  // COM_STMT_RESET: OK / ERR
}

bool Session::prepared_params(uint32_t id, PreparedParams* out) const {
  const auto it = prepared_.find(id);
  if (it == prepared_.end() || !it->second->known) return false;
  const Prepared& p = *it->second;
  out->count = p.params;
  out->types = &p.bound.types;
  out->long_data =
      std::find(p.has_long_data.begin(), p.has_long_data.end(), true) != p.has_long_data.end();
  return true;
}

void Session::remember(const std::shared_ptr<Prepared>& p) {
  if (auto it = prepared_.find(p->id); it != prepared_.end()) {
    prepared_bytes_ -= it->second->text.size();
    prepared_.erase(it);
  }
  if (prepared_.size() >= limits_.max_prepared_statements ||
      prepared_bytes_ + p->text.size() > limits_.max_prepared_bytes) {
    return;  // its executes will be unresolved, as if prepared before capture
  }
  prepared_bytes_ += p->text.size();
  prepared_.emplace(p->id, p);
}

// ---- server --------------------------------------------------------------------

void Session::on_server(const Frame& f) {
  switch (phase_) {
    case Phase::kStopped:
      return;
    case Phase::kStart:
      if (f.first == 10) on_greeting(f);
      if (f.first == 0xff) {  // refused before the handshake (too many connections, ...)
        count_login_failure(f);
        stop_decoding();
      }
      return;
    case Phase::kAuth:
      on_auth_reply(f);
      return;
    case Phase::kCommand:
      break;
  }
  response_bytes_ += f.wire_bytes();
  if (ops_.empty()) {
    ++counters_.unmatched_responses;
    return;
  }
  Cmd& c = ops_.front();
  if (f.first < 0 && f.length > 0) {
    // The packet's first byte was lost: we cannot tell what it was.
    c.gap = true;
    server_lost_ = true;
    server_.lose();
    return;
  }
  switch (resp_) {
    case Resp::kFirst:
    case Resp::kInfile:
      on_first(c, f);
      break;
    case Resp::kColumns:
      if (f.first == 0xff) {
        on_err(c, f);
      } else if (--columns_left_ == 0) {
        resp_ = deprecate_eof_ ? Resp::kRows : Resp::kColumnsEof;
      }
      break;
    case Resp::kColumnsEof: {
      uint16_t status = 0;
      if (f.first == 0xff) {
        on_err(c, f);
      } else if (IsEndOfRows(static_cast<uint8_t>(f.first), f.first_packet_length, false) &&
                 ParseEofStatus(f.body, &status)) {
        resp_ = Resp::kRows;
        // A cursor was opened (COM_STMT_EXECUTE with a cursor flag): rows
        // come later through COM_STMT_FETCH.
        if (status & kStatusCursorExists) result(c, f, true, 0, status & ~kStatusMoreResults);
      } else {
        // No EOF after the definitions: the client negotiated DEPRECATE_EOF
        // (seen when we joined mid-stream). This packet is the first row.
        deprecate_eof_ = true;
        resp_ = Resp::kRows;
        end_of_rows(c, f);
      }
      break;
    }
    case Resp::kRows:
      end_of_rows(c, f);
      break;
    case Resp::kPrepareDefs:
      if (f.first == 0xff) {
        on_err(c, f);
      } else if (defs_left_ <= 1) {
        finish(f.end_ns);
      } else {
        --defs_left_;
      }
      break;
    case Resp::kFieldList:
      if (f.first == 0xff) {
        on_err(c, f);
      } else if (IsEndOfRows(static_cast<uint8_t>(f.first), f.first_packet_length,
                             deprecate_eof_)) {
        finish(f.end_ns);
      }
      break;
  }
}

void Session::on_greeting(const Frame& f) {
  Greeting g;
  if (!ParseGreeting(f.body, &g)) {
    ++counters_.invalid_packets;
    return;
  }
  server_caps_ = g.capabilities;
  info_.db_system = IsMariaDbVersion(g.version) ? "mariadb" : "mysql";
  phase_ = Phase::kAuth;
}

void Session::on_auth_reply(const Frame& f) {
  // OK ends the authentication; ERR refuses it; 0xfe (auth switch) and 0x01
  // (more data) continue it. None of their contents is kept.
  if (f.first == 0x00) {
    phase_ = Phase::kCommand;
    if (Has(caps_, kClientCompress) || Has(caps_, kClientZstdCompression)) {
      ++counters_.compressed_connections;
      stop_decoding();
    }
  } else if (f.first == 0xff) {
    count_login_failure(f);
    stop_decoding();
  }
}

void Session::count_login_failure(const Frame& f) {
  ErrPacket err;
  if (!ParseErr(f.body, &err)) err = ErrPacket{};
  if (IsAuthenticationError(err)) {
    ++counters_.login_failures_authentication;
  } else {
    ++counters_.login_failures_other;
  }
}

void Session::end_of_rows(Cmd& c, const Frame& f) {
  if (f.first == 0xff) {
    on_err(c, f);
    return;
  }
  if (!IsEndOfRows(static_cast<uint8_t>(f.first), f.first_packet_length, deprecate_eof_)) {
    ++rows_;
    return;
  }
  uint16_t status = 0;
  if (f.first_packet_length < 9 && !deprecate_eof_) {
    ParseEofStatus(f.body, &status);
  } else {
    OkPacket ok;
    if (ParseOk(f.body, caps_, &ok)) {
      status = ok.status;
      if (ok.schema_changed) change_schema(c, ok.schema);
    } else {
      ParseEofStatus(f.body, &status);
    }
  }
  backslash_escapes_ = (status & kStatusNoBackslashEscapes) == 0;
  result(c, f, true, rows_, status);
}

void Session::on_first(Cmd& c, const Frame& f) {
  const uint8_t first = static_cast<uint8_t>(std::max(f.first, 0));
  if (first == 0xff) {
    on_err(c, f);
    return;
  }
  if (c.command == kComStmtPrepare && first == 0x00) {
    on_prepare_ok(c, f);
    return;
  }
  if (c.command == kComChangeUser && (first == 0xfe || first == 0x01)) {
    return;  // authentication switch / more data: the client answers, then OK / ERR
  }
  if (c.command == kComStmtFetch) {
    // Binary rows of an open cursor (header 0x00, not an OK), then EOF/OK.
    resp_ = Resp::kRows;
    end_of_rows(c, f);
    return;
  }
  if (c.command == kComStatistics) {  // a bare string, no header byte
    finish(f.end_ns);
    return;
  }
  if (first == 0x00 || (first == 0xfe && f.first_packet_length < 9)) {
    on_ok(c, f, first == 0xfe);
    return;
  }
  if (first == 0xfb && resp_ == Resp::kFirst) {
    // LOCAL INFILE request (the file name follows; not needed). The client
    // now sends the content, then an empty packet; then OK / ERR.
    resp_ = Resp::kInfile;
    infile_ = true;
    return;
  }
  if (c.command == kComFieldList) {
    resp_ = Resp::kFieldList;
    return;
  }
  // A result set: int<lenenc> column count [, int<1> metadata follows].
  Reader r(f.body);
  uint64_t columns = 0;
  uint8_t metadata = 1;
  if (!r.lenenc(&columns) || columns == 0) {
    ++counters_.invalid_packets;
    c.gap = true;
    server_lost_ = true;
    server_.lose();
    return;
  }
  if (!metadata_byte_ && !handshake_seen_ && r.remaining() == 1) {
    // Joined mid-stream, capabilities unknown: a column count followed by
    // one more byte is the "metadata follows" flag of MARIADB_CLIENT_CACHE_METADATA
    // (or CLIENT_OPTIONAL_RESULTSET_METADATA): without it the count is the
    // whole packet. With the flag 0 no column definitions follow.
    metadata_byte_ = true;
  }
  if (metadata_byte_) r.u8(&metadata);
  rows_ = 0;
  columns_left_ = metadata ? columns : 0;
  if (columns_left_ > 0) {
    resp_ = Resp::kColumns;
  } else {
    resp_ = deprecate_eof_ ? Resp::kRows : Resp::kColumnsEof;
  }
}

void Session::on_ok(Cmd& c, const Frame& f, bool eof) {
  uint16_t status = 0;
  uint64_t affected = 0;
  if (eof) {
    ParseEofStatus(f.body, &status);
  } else {
    OkPacket ok;
    if (ParseOk(f.body, caps_, &ok)) {
      status = ok.status;
      affected = ok.affected_rows;
      if (ok.schema_changed) change_schema(c, ok.schema);
    }
  }
  backslash_escapes_ = (status & kStatusNoBackslashEscapes) == 0;
  infile_ = false;
  result(c, f, false, affected, status);
}

void Session::change_schema(Cmd& c, std::string_view schema) {
  // Records are read with the connection's identity when emitted: the one
  // held back (the statement before the USE) still ran in the old schema.
  if (c.command == kComQuery) flush_held(c);
  info_.database.assign(schema);
}

void Session::on_prepare_ok(Cmd& c, const Frame& f) {
  PrepareOk ok;
  if (!ParsePrepareOk(f.body, &ok)) {
    ++counters_.invalid_packets;
    finish(f.end_ns);
    return;
  }
  Prepared& p = *c.prepared;
  p.id = ok.statement_id;
  p.params = ok.params;
  p.known = true;
  remember(c.prepared);
  // Definitions follow: params, then columns, each group closed by an EOF
  // unless CLIENT_DEPRECATE_EOF. Counting them all as one run is enough: we
  // only need to know where the answer ends.
  uint64_t groups = (ok.params > 0) + (ok.columns > 0);
  defs_left_ = uint64_t{ok.params} + ok.columns + (deprecate_eof_ ? 0 : groups);
  if (defs_left_ == 0) {
    finish(f.end_ns);
    return;
  }
  resp_ = Resp::kPrepareDefs;
}

void Session::on_err(Cmd& c, const Frame& f) {
  ErrPacket err;
  if (!ParseErr(f.body, &err)) err = ErrPacket{};
  if (err.code == 0xffff) return;  // MariaDB progress report, not an error
  infile_ = false;
  const std::string tag = "ERR " + std::to_string(err.code);
  switch (c.command) {
    case kComChangeUser:
      count_login_failure(f);
      break;
    case kComQuery:
      complete_piece(c, f, tag, std::nullopt, &err);
      break;
    case kComStmtExecute:
    case kComStmtPrepare:
    case kComInitDb: {
      Statement s = base_statement(c);
      s.end_ns = f.end_ns;
      s.command_tag = tag;
      set_error(s, err);
      emit(s, &c);
      break;
    }
    default:
      break;
  }
  c.command = kComSleep;  // already reported
  finish(f.end_ns);
}

void Session::result(Cmd& c, const Frame& f, bool rowset, uint64_t rows, uint16_t status) {
  last_status_ = status;
  const bool more = (status & kStatusMoreResults) != 0;
  switch (c.command) {
    case kComQuery: {
      const bool call =
          c.next < c.pieces.size() &&
          IsCall(std::string_view(c.text).substr(c.pieces[c.next].offset, c.pieces[c.next].length));
      if (call && rowset) {
        // A procedure's result sets: collect them until its final OK.
        c.call_rows += rows;
        c.call_rowsets = true;
        if (more) {
          rows_ = 0;
          resp_ = Resp::kFirst;
          return;
        }
      }
      if (!rowset && c.next < c.pieces.size()) {
        const SqlPiece& piece = c.pieces[c.next];
        if (auto schema = UseSchema(std::string_view(c.text).substr(piece.offset, piece.length))) {
          change_schema(c, *schema);
        }
      }
      const bool call_rows = call && c.call_rowsets;
      const uint64_t n = call_rows ? c.call_rows : rows;
      c.call_rows = 0;
      c.call_rowsets = false;
      complete_piece(c, f, rowset || call_rows ? "RESULTSET" : "OK", n, nullptr);
      break;
    }
    case kComStmtExecute: {
      if (rowset) {
        exec_rows_ += rows;
        exec_rowsets_ = true;
      }
      if (more) break;
      Statement s = base_statement(c);
      s.end_ns = f.end_ns;
      s.command_tag = exec_rowsets_ ? "RESULTSET" : "OK";
      s.returned_rows = exec_rowsets_ ? exec_rows_ : rows;
      emit(s, &c);
      break;
    }
    case kComInitDb: {
      info_.database = c.database;
      Statement s = base_statement(c);
      s.end_ns = f.end_ns;
      s.command_tag = "COM_INIT_DB";
      emit(s, &c);
      break;
    }
    case kComChangeUser:
      info_.user = c.user;
      info_.database = c.database;
      [[fallthrough]];
    case kComResetConnection:
      prepared_.clear();
      prepared_bytes_ = 0;
      last_prepared_.reset();
      break;
    case kComSetOption:
      if (c.option == 0) multi_statements_ = true;
      if (c.option == 1) multi_statements_ = false;
      break;
    default:
      break;
  }
  rows_ = 0;
  if (more) {
    resp_ = Resp::kFirst;
    return;
  }
  finish(f.end_ns);
}

void Session::finish(uint64_t end_ns) {
  if (!ops_.empty()) {
    Cmd& c = ops_.front();
    if (c.command == kComQuery) finish_query(c, end_ns, /*closing=*/false);
    ops_.pop_front();
  }
  resp_ = Resp::kFirst;
  rows_ = exec_rows_ = response_bytes_ = 0;
  exec_rowsets_ = false;
  columns_left_ = defs_left_ = 0;
  infile_ = false;
}

// ---- records -------------------------------------------------------------------

Statement Session::base_statement(const Cmd& c) const {
  Statement s;
  s.start_ns = c.start_ns;
  s.capture_gap = c.gap;
  s.request_bytes = c.request_bytes;
  s.response_bytes = response_bytes_;
  switch (c.command) {
    case kComStmtExecute:
      if (c.prepared) {
        s.text = c.prepared->text;
        s.text_truncated = c.prepared->truncated;
      }
      s.statement_name = std::to_string(
          c.prepared && c.statement_id == 0xffffffffu ? c.prepared->id : c.statement_id);
      s.statement_unresolved = c.unresolved;
      s.parameters = c.params;
      break;
    case kComStmtPrepare:
      if (c.prepared) {
        s.text = c.prepared->text;
        s.text_truncated = c.prepared->truncated;
      }
      break;
    case kComInitDb:
      s.text = QuoteIdentifier(c.database);
      s.command_tag = "COM_INIT_DB";
      break;
    case kComQuery:
      s.text = c.text;
      s.text_truncated = c.truncated;
      break;
    default:
      break;
  }
  return s;
}

Statement Session::piece_statement(const Cmd& c, size_t i) const {
  const SqlPiece& piece = c.pieces[i];
  Statement s;
  s.start_ns = i == 0 ? c.start_ns : c.last_end_ns;
  s.text.assign(c.text, piece.offset, piece.length);
  s.text_truncated = c.truncated && i + 1 == c.pieces.size();
  s.capture_gap = c.gap;
  s.request_bytes = i == 0 ? c.request_bytes : 0;
  s.response_bytes = response_bytes_;
  return s;
}

void Session::flush_held(Cmd& c) {
  if (!c.has_held) return;
  c.has_held = false;
  emit(c.held);
}

void Session::complete_piece(Cmd& c, const Frame& f, std::string_view tag,
                             std::optional<uint64_t> rows, const ErrPacket* err) {
  flush_held(c);
  Statement s;
  if (c.next < c.pieces.size()) {
    s = piece_statement(c, c.next);
    c.held_piece = c.next;
    ++c.next;
  } else {
    // The server ran more statements than we split out; we cannot name it.
    ++counters_.unmatched_responses;
    s.start_ns = c.last_end_ns ? c.last_end_ns : c.start_ns;
    s.capture_gap = c.gap;
    s.response_bytes = response_bytes_;
    c.held_piece = c.pieces.size();
  }
  s.end_ns = f.end_ns;
  s.command_tag.assign(tag);
  s.returned_rows = rows;
  if (err) {
    set_error(s, *err);
    c.next = c.pieces.size();  // the rest never ran
    emit(s);
  } else {
    c.held = std::move(s);
    c.has_held = true;
  }
  c.last_end_ns = f.end_ns;
  response_bytes_ = 0;
}

void Session::finish_query(Cmd& c, uint64_t end_ns, bool closing) {
  const bool leftovers = c.next < c.pieces.size();
  if (leftovers && c.has_held && !c.gap && !closing && c.held_piece < c.pieces.size()) {
    // Fewer results than pieces, no error, nothing lost: our splitter cut
    // where the server did not (a compound statement). Give the rest of the
    // text to the last confirmed statement (see session.h).
    const SqlPiece& first = c.pieces[c.held_piece];
    const SqlPiece& last = c.pieces.back();
    c.held.text.assign(c.text, first.offset, last.offset + last.length - first.offset);
    c.held.text_truncated = c.truncated;
    c.next = c.pieces.size();
  }
  flush_held(c);
  for (; c.next < c.pieces.size(); ++c.next) {
    Statement s = piece_statement(c, c.next);
    if (c.next > 0 && c.last_end_ns == 0) s.start_ns = c.start_ns;
    s.response_bytes = 0;
    s.end_ns = end_ns;
    s.status_code.clear();
    s.capture_gap = true;
    emit(s);
  }
}

void Session::emit_unknown(Cmd& c, uint64_t end_ns) {
  switch (c.command) {
    case kComQuery:
      finish_query(c, end_ns, /*closing=*/true);
      return;
    case kComStmtExecute:
    case kComInitDb: {
      Statement s = base_statement(c);
      s.end_ns = end_ns;
      s.status_code.clear();
      s.capture_gap = true;
      emit(s, &c);
      return;
    }
    default:
      return;
  }
}

void Session::emit(Statement& s, const Cmd* c) {
  s.connection = &info_;
  if (c && c->command == kComStmtExecute && observer_) {
    for (size_t i = 0; i < c->params.size(); ++i) {
      observer_(s, i, c->params[i] ? std::string_view(*c->params[i]) : std::string_view("NULL"));
    }
  }
  sink_.on_statement(s);
}

}  // namespace dbwarden::mysql
