// SPDX-License-Identifier: Apache-2.0
#include "proxy/pg_relay.h"

#include <algorithm>

#include "protocol/pgsql/messages.h"

namespace dbwarden::proxy {

using pgsql::Direction;

PgRelay::PgRelay(ConnectionInfo& info, Judge& judge, RecordSink& records,
                 const pgsql::Limits& decoder_limits, const RelayLimits& limits,
                 pgsql::Counters& counters)
    : RelayBase(info, judge, records, decoder_limits, limits, counters) {
  annotator_.set_tallies(&tallies_);
  // One namespace: an SQL EXECUTE may run a statement a Parse prepared.
  sql_prepared_.set_fallback([this](std::string_view n) { return session_.prepared_text(n); });
}

void PgRelay::on_upstream_failed(std::string_view why, ByteBuffer& in, RelayOutput& out,
                                 uint64_t now_ns) {
  in.consume(in.size());
  fatal("08006", "dbwarden: cannot reach the database server: " + std::string(why),
        /*recorded=*/true, out, now_ns);
}

void PgRelay::on_close(uint64_t now_ns) {
  withdraw_request();
  // Its lookup will not end here: whoever waits for it is woken (and asks itself).
  if (catalog_ != nullptr) catalog_->forget(token_);
  if (!session_error_.empty()) session_.on_data(Direction::kBackend, session_error_, now_ns);
  session_.on_close(now_ns);
}

bool PgRelay::cancel_approval(std::span<const uint8_t> key) {
  const auto& mine = backend_key_;
  if (!awaiting_approval() || key_left_ > 0 || mine.empty() ||
      !std::equal(mine.begin(), mine.end(), key.begin(), key.end())) {
    return false;
  }
  cancel_held();
  return true;
}

bool PgRelay::step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) {
  now_ns_ = now_ns;
  if (looking_up_) return false;  // the proxy's own catalog lookup is being answered
  if (waiting_reach_) {
    // Another connection's lookup of this session's reach set: until it ends.
    if (catalog_->waiting(token_)) return false;
    waiting_reach_ = false;
  }
  if (stream_left_ > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), stream_left_));
    pass(in.data().first(n), !stream_drop_, out, now_ns);
    in.consume(n);
    stream_left_ -= n;
    return true;
  }
  if (startup_) return startup_packet(in, out, now_ns);
  if (in.size() < pgsql::kTypedHeaderSize) return false;
  pgsql::Header h;
  if (pgsql::ParseTypedHeader(Direction::kFrontend, in.data(), &h) != pgsql::ParseState::kSuccess) {
    protocol_error("invalid frontend message type or length", out, now_ns);
    return false;
  }
  if ((h.type == 'Q' || h.type == 'P') && !skip_to_sync_) {
    return judged_message(in, h.type, h.length, out, now_ns);
  }
  // Past the authentication (PasswordMessage and SASL are 'p'), the session may leave its
  // start: pristine_ ends with the first such message the server gets.
  if (h.type != 'p') pristine_ = false;
  if (h.type == 'B' && !skip_to_sync_) return bind_message(in, h.length, out, now_ns);
  if ((h.type == 'E' || h.type == 'D') && !armed_ && verdict_.policy &&
      verdict_.policy->mask_rule_count() > 0) {
    // An Execute or Describe of a portal bound earlier (in another Sync group): its
    // statement is not named here, so the results are framed and the RowDescription's
    // statement decides.
    armed_ = true;
  }
  const auto header = in.data().first(pgsql::kTypedHeaderSize);
  if (h.type == 'S') group_pass_.clear();  // an approval covers its own Sync group only
  if (skip_to_sync_ && h.type == 'S') {
    // The Sync that ends the blocked group: the server never saw the group, the proxy
    // answers for it with the server's own transaction status.
    pass(header, /*to_server=*/false, out, now_ns);
    in.consume(header.size());
    skip_to_sync_ = false;
    session_.on_data(Direction::kBackend, session_error_, now_ns);
    session_error_.clear();
    scratch_.clear();
    pgsql::AppendReadyForQuery(session_.transaction_status(), &scratch_);
    answer(scratch_, out, now_ns);
    return true;
  }
  pass(header, /*to_server=*/!skip_to_sync_, out, now_ns);
  in.consume(header.size());
  stream_left_ = h.length - 4;
  stream_drop_ = skip_to_sync_;
  return true;
}

bool PgRelay::startup_packet(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) {
  if (in.size() < pgsql::kStartupHeaderSize) return false;
  pgsql::StartupHeader sh;
  if (pgsql::ParseStartupHeader(in.data(), &sh) != pgsql::ParseState::kSuccess) {
    protocol_error("invalid startup packet", out, now_ns);
    return false;
  }
  if (in.size() < sh.length) return false;  // at most kMaxStartupPacket: the parser checks
  const auto packet = in.data().first(sh.length);
  switch (sh.kind) {
    case pgsql::StartupKind::kSsl:
      if (out.client_tls_available()) {
        // Bytes after the SSLRequest, before the 'S', would be plaintext the client sent
        // unasked that would then count as having come over TLS: refused, as the server
        // does (CVE-2021-23214).
        if (in.size() > packet.size()) {
          protocol_error("unencrypted data after SSLRequest", out, now_ns);
          return false;
        }
        // The decoder sees 'S' and then the plaintext, as from the capture's libssl probes.
        pass(packet, /*to_server=*/false, out, now_ns);
        in.consume(packet.size());
        static constexpr uint8_t kAccept[] = {'S'};
        answer(kAccept, out, now_ns);
        out.start_client_tls();
        return true;
      }
      [[fallthrough]];
    case pgsql::StartupKind::kGssEnc: {
      // No certificate (or TLS already on, or GSSAPI, which the proxy never terminates):
      // refuse, as a server without it does; the client goes on in plaintext
      // (sslmode=prefer) or gives up (require).
      pass(packet, /*to_server=*/false, out, now_ns);
      in.consume(packet.size());
      static constexpr uint8_t kRefuse[] = {'N'};
      answer(kRefuse, out, now_ns);
      return true;
    }
    case pgsql::StartupKind::kCancel:
      // A statement held for approval never reached the server: the proxy withdraws it.
      out.cancel_request(packet.subspan(pgsql::kStartupHeaderSize));
      pass(packet, /*to_server=*/true, out, now_ns);
      in.consume(packet.size());
      return true;
    case pgsql::StartupKind::kStartup:
      if (catalog_ != nullptr) start_key_ = PgStartKey(server_, packet);
      if (!start_key_.empty()) start_claim_ = std::string("\1start") + start_key_;
      pass(packet, /*to_server=*/true, out, now_ns);
      in.consume(packet.size());
      startup_ = false;
      return true;
    case pgsql::StartupKind::kNone:
      break;
  }
  protocol_error("unsupported startup packet", out, now_ns);
  return false;
}

bool PgRelay::judged_message(ByteBuffer& in, uint8_t type, uint32_t length, RelayOutput& out,
                             uint64_t now_ns) {
  const uint64_t total = 1ull + length;
  if (total > limits_.max_judged_bytes) {
    // Too large to hold whole: judged on what can be read. Allowed, it streams through;
    // blocked, the rest cannot be skipped in step with the server, so the connection ends.
    if (in.size() < limits_.max_judged_bytes) return false;
    pgsql::BodyReader r(in.data().subspan(pgsql::kTypedHeaderSize,
                                          limits_.max_judged_bytes - pgsql::kTypedHeaderSize));
    std::string_view name, text;
    bool terminated = false;
    if (type == 'P') r.cstring(&name);
    text = r.until_nul(&terminated);
    judge(text, /*complete=*/false, /*backslash_escapes=*/false);
    note_masks(nullptr, now_ns);
    pristine_ = false;
    const auto header = in.data().first(pgsql::kTypedHeaderSize);
    if (!verdict_.decisive.block) {
      pass(header, /*to_server=*/true, out, now_ns);
      in.consume(header.size());
      stream_left_ = length - 4;
      stream_drop_ = false;
      return true;
    }
    ++blocked_;
    end_connection(verdict_.decisive, out, now_ns);
    return false;
  }
  if (in.size() < total) return false;
  const auto message = in.data().first(total);
  pgsql::BodyReader r(message.subspan(pgsql::kTypedHeaderSize));
  std::string_view name, text;
  if ((type == 'P' && !r.cstring(&name)) || !r.cstring(&text)) {
    protocol_error("malformed Query or Parse message", out, now_ns);
    return false;
  }
  judge(text, /*complete=*/true, /*backslash_escapes=*/false);
  // A catalog lookup first (pg_relay_lineage.cc): the message is judged again after it.
  if (note_masks(&out, now_ns)) return false;
  lookup_rounds_ = 0;
  pristine_ = false;  // passed, blocked or held from here on
  if (type == 'P') {
    name_.assign(name);
    note_judged(name_);
    note_approval(name_);
  }
  if (verdict_.decisive.approvals != 0) return approval(in, message.size(), type, out, now_ns);
  if (!verdict_.decisive.block) {
    if (type == 'Q') sent_judged();
    pass(message, /*to_server=*/true, out, now_ns);
    in.consume(message.size());
    return true;
  }
  return block(in, message.size(), type, out, now_ns);
}

void PgRelay::note_approval(const std::string& name) {
  bool held = false;
  for (const JudgedStatement& s : verdict_.statements) held = held || s.verdict.approvals != 0;
  if (held) {
    if (held_statements_.size() >= 4096) held_statements_.clear();  // judged again at Bind
    held_statements_.insert(name);
  } else if (!held_statements_.empty()) {
    held_statements_.erase(name);
  }
}

bool PgRelay::approval(ByteBuffer& in, size_t total, uint8_t type, RelayOutput& out,
                       uint64_t now_ns) {
  if (type == 'B' && !group_pass_.empty() && verdict_.statements.size() == 1 &&
      verdict_.statements.front().text == group_text_) {
    // Its Parse (or an earlier Bind of it) in this Sync group was approved or granted: the
    // group is what the approver saw held.
    mark_statements(group_pass_, /*block=*/false);
    verdict_.decisive.block = false;
    pass(in.data().first(total), /*to_server=*/true, out, now_ns);
    in.consume(total);
    return true;
  }
  // A Parse whose Bind has not come yet: read on (it is held either way).
  if (type == 'P' && awaiting_bind(in, total)) return false;
  switch (ask_approval(in, total, out, now_ns)) {
    case Approval::kPass:
      if (type != 'Q' && verdict_.statements.size() == 1) {
        group_pass_ = verdict_.decisive.action;
        group_text_ = verdict_.statements.front().text;
      }
      if (type == 'Q') sent_judged();
      pass(in.data().first(total), /*to_server=*/true, out, now_ns);
      in.consume(total);
      return true;
    case Approval::kHeld:
      return false;
    case Approval::kBlock:
      break;
  }
  return block(in, total, type, out, now_ns);
}

void PgRelay::deny_held(std::vector<uint8_t> message, RelayOutput& out, uint64_t now_ns) {
  const uint8_t type = message.front();
  if (type != 'Q' && session_.sync_pending()) {
    // As block(): earlier messages of the group reached the server before this one.
    pass(message, /*to_server=*/false, out, now_ns);
    end_connection(verdict_.decisive, out, now_ns);
    return;
  }
  held_is_query_ = type == 'Q';
  held_ = std::move(message);
  holding_ = true;
  release_held(out, now_ns);
}

bool PgRelay::bind_message(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns) {
  // Bind: String portal, String statement, then formats and values; only the names are
  // needed (each at most NAMEDATALEN on the server, 1 KiB here is plenty).
  const uint64_t total = 1ull + length;
  const size_t names = static_cast<size_t>(std::min<uint64_t>(total, 5 + 2048));
  if (in.size() < names) return false;
  pgsql::BodyReader r(in.data().subspan(pgsql::kTypedHeaderSize, names - 5));
  std::string_view portal, name;
  if (!r.cstring(&portal) || !r.cstring(&name)) {
    protocol_error("malformed Bind message", out, now_ns);
    return false;
  }
  const std::string* text = session_.prepared_text(name);
  name_.assign(name);
  // A statement that needs approval is asked for at each Bind (each execution), under the
  // policy and the grants in force then.
  const bool held = !held_statements_.empty() && held_statements_.contains(name_);
  bool judged = false;
  if (text != nullptr && (held || !judged_now(name_))) {
    judge(*text, /*complete=*/true, /*backslash_escapes=*/false);
    note_masks(nullptr, now_ns);  // never between Bind and Execute: no lookup
    note_judged(name_);
    note_approval(name_);
    judged = true;
  } else if (text == nullptr && !name_.empty() && sql_prepared_.find(name_, sql_entry_)) {
    // Prepared by an SQL PREPARE (one namespace with Parse): judged at each Bind as the
    // EXECUTE of it that it is, under the policy and the grants in force then.
    sql_execute_.assign("EXECUTE \"");
    for (char c : name_) sql_execute_.append(c == '"' ? 2 : 1, c);
    sql_execute_ += '"';
    judge(sql_execute_, /*complete=*/true, /*backslash_escapes=*/false);
    note_masks(nullptr, now_ns);
    judged = true;
  }
  if (judged) {
    if (verdict_.decisive.block) {
      if (total > limits_.max_judged_bytes) {
        ++blocked_;
        end_connection(verdict_.decisive, out, now_ns);
        return false;
      }
      if (in.size() < total) return false;
      if (verdict_.decisive.approvals != 0) return approval(in, total, 'B', out, now_ns);
      return block(in, total, 'B', out, now_ns);
    }
  }
  if (text != nullptr) arm_for(*text);
  const auto header = in.data().first(pgsql::kTypedHeaderSize);
  pass(header, /*to_server=*/true, out, now_ns);
  in.consume(header.size());
  stream_left_ = length - 4;
  stream_drop_ = false;
  return true;
}

bool PgRelay::block(ByteBuffer& in, size_t total, uint8_t type, RelayOutput& out, uint64_t now_ns) {
  ++blocked_;
  const auto message = in.data().first(total);
  if (type != 'Q' && session_.sync_pending()) {
    // Earlier messages of this Sync group are at the server: answering in place would let
    // the client's Sync commit them. Ending the connection rolls them back.
    pass(message, /*to_server=*/false, out, now_ns);
    in.consume(total);
    end_connection(verdict_.decisive, out, now_ns);
    return false;
  }
  held_is_query_ = type == 'Q';
  return hold(in, total, out, now_ns);
}

void PgRelay::fatal(std::string_view sqlstate, std::string_view message, bool recorded,
                    RelayOutput& out, uint64_t now_ns) {
  scratch_.clear();
  pgsql::AppendErrorResponse("FATAL", sqlstate, message, &scratch_);
  close_with(scratch_, recorded, out, now_ns);
}

void PgRelay::release_held(RelayOutput& out, uint64_t now_ns) {
  // The answer must follow everything the server still owes the client for earlier
  // messages, and start at a message boundary of the server's stream.
  if (!session_.idle()) return;
  holding_ = false;
  if (held_is_query_ && verdict_.statements.size() > 1) {
    // A multi-statement message is recorded as the statement that blocked it: none of its
    // statements ran, and that one is why (the decoder would give the error to the first).
    for (const JudgedStatement& s : verdict_.statements) {
      if (!decides(s.verdict)) continue;
      held_.clear();
      pgsql::AppendQuery(s.text, &held_);
      break;
    }
  }
  pass(held_, /*to_server=*/false, out, now_ns);
  held_.clear();
  const Verdict& v = verdict_.decisive;
  held_reply_.clear();
  pgsql::AppendErrorResponse("ERROR", v.sqlstate, v.message, &held_reply_);
  if (held_is_query_) {
    pgsql::AppendReadyForQuery(session_.transaction_status(), &held_reply_);
    answer(held_reply_, out, now_ns);
    return;
  }
  // The server would skip to Sync after an error: so does the proxy. The decoder hears of
  // the error once it has seen the group up to that Sync, as it would from a server that
  // got the whole group: it then gives the error to the group's Execute, whatever message
  // of the group was blocked.
  skip_to_sync_ = true;
  out.to_client(held_reply_);
  session_error_ = held_reply_;
}

void PgRelay::protocol_error(const char* what, RelayOutput& out, uint64_t now_ns) {
  // The session never sees garbage: no record comes of it.
  fatal("08P01", std::string("dbwarden: ") + what, /*recorded=*/false, out, now_ns);
}

}  // namespace dbwarden::proxy
