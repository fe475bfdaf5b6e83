// SPDX-License-Identifier: Apache-2.0
#include "proxy/pg_relay.h"

#include <algorithm>

#include "protocol/pgsql/messages.h"

namespace dbwarden::proxy {

using pgsql::Direction;

PgRelay::PgRelay(ConnectionInfo& info, Judge& judge, StatementSink& records,
                 const pgsql::Limits& decoder_limits, const RelayLimits& limits,
                 pgsql::Counters& counters)
    : info_(info),
      judge_(judge),
      annotator_(decisions_, judge, Dialect::kPostgresql, records),
      session_(info, annotator_, decoder_limits, counters),
      limits_(limits) {}

void PgRelay::on_client(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) {
  while (!closing_ && !holding_ && !in.empty() && step(in, out, now_ns)) {
  }
}

void PgRelay::on_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) {
  out.to_client(bytes);
  session_.on_data(Direction::kBackend, bytes, now_ns);
  if (holding_) release_held(out, now_ns);
}

void PgRelay::on_upstream_failed(std::string_view why, ByteBuffer& in, RelayOutput& out,
                                 uint64_t now_ns) {
  scratch_.clear();
  pgsql::AppendErrorResponse("FATAL", "08006",
                             "dbwarden: cannot reach the database server: " + std::string(why),
                             &scratch_);
  in.consume(in.size());
  answer(scratch_, out, now_ns);
  closing_ = true;
  out.close_after_flush();
}

void PgRelay::on_close(uint64_t now_ns) { session_.on_close(now_ns); }

bool PgRelay::step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) {
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
  const auto header = in.data().first(pgsql::kTypedHeaderSize);
  if (skip_to_sync_ && h.type == 'S') {
    // The Sync that ends the blocked group: the server never saw the group, the proxy
    // answers for it with the server's own transaction status.
    pass(header, /*to_server=*/false, out, now_ns);
    in.consume(header.size());
    skip_to_sync_ = false;
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
    case pgsql::StartupKind::kGssEnc: {
      // No certificate: refuse, as a server without ssl does; the client goes on in
      // plaintext (sslmode=prefer) or gives up (require).
      pass(packet, /*to_server=*/false, out, now_ns);
      in.consume(packet.size());
      static const std::vector<uint8_t> kRefuse{'N'};
      answer(kRefuse, out, now_ns);
      return true;
    }
    case pgsql::StartupKind::kCancel:
      pass(packet, /*to_server=*/true, out, now_ns);
      in.consume(packet.size());
      return true;
    case pgsql::StartupKind::kStartup:
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
    judge_.judge(info_, Dialect::kPostgresql, text, /*complete=*/false, false, &verdict_);
    for (const auto& s : verdict_.statements) decisions_.remember(s);
    const auto header = in.data().first(pgsql::kTypedHeaderSize);
    if (!verdict_.decisive.block) {
      pass(header, /*to_server=*/true, out, now_ns);
      in.consume(header.size());
      stream_left_ = length - 4;
      stream_drop_ = false;
      return true;
    }
    ++blocked_;
    scratch_.clear();
    pgsql::AppendErrorResponse("FATAL", verdict_.decisive.sqlstate, verdict_.decisive.message,
                               &scratch_);
    answer(scratch_, out, now_ns);
    closing_ = true;
    out.close_after_flush();
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
  judge_.judge(info_, Dialect::kPostgresql, text, /*complete=*/true, false, &verdict_);
  for (const auto& s : verdict_.statements) decisions_.remember(s);
  if (!verdict_.decisive.block) {
    pass(message, /*to_server=*/true, out, now_ns);
    in.consume(message.size());
    return true;
  }
  ++blocked_;
  const Verdict& v = verdict_.decisive;
  if (type == 'P' && session_.sync_pending()) {
    // Earlier messages of this Sync group are at the server: answering in place would let
    // the client's Sync commit them. Ending the connection rolls them back.
    pass(message, /*to_server=*/false, out, now_ns);
    in.consume(message.size());
    scratch_.clear();
    pgsql::AppendErrorResponse("FATAL", v.sqlstate, v.message, &scratch_);
    answer(scratch_, out, now_ns);
    closing_ = true;
    out.close_after_flush();
    return false;
  }
  held_message_.assign(message.begin(), message.end());
  in.consume(message.size());
  held_is_query_ = type == 'Q';
  holding_ = true;
  release_held(out, now_ns);
  return !holding_;
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
      if (!s.verdict.block) continue;
      held_message_.clear();
      pgsql::AppendQuery(s.text, &held_message_);
      break;
    }
  }
  pass(held_message_, /*to_server=*/false, out, now_ns);
  held_message_.clear();
  const Verdict& v = verdict_.decisive;
  held_reply_.clear();
  pgsql::AppendErrorResponse("ERROR", v.sqlstate, v.message, &held_reply_);
  if (held_is_query_) {
    pgsql::AppendReadyForQuery(session_.transaction_status(), &held_reply_);
  } else {
    skip_to_sync_ = true;  // the server would skip to Sync after an error: so does the proxy
  }
  answer(held_reply_, out, now_ns);
}

void PgRelay::pass(std::span<const uint8_t> bytes, bool to_server, RelayOutput& out,
                   uint64_t now_ns) {
  if (bytes.empty()) return;
  if (to_server) out.to_server(bytes);
  session_.on_data(Direction::kFrontend, bytes, now_ns);
}

void PgRelay::answer(const std::vector<uint8_t>& reply, RelayOutput& out, uint64_t now_ns) {
  out.to_client(reply);
  session_.on_data(Direction::kBackend, reply, now_ns);
}

void PgRelay::protocol_error(const char* what, RelayOutput& out, uint64_t now_ns) {
  scratch_.clear();
  pgsql::AppendErrorResponse("FATAL", "08P01", std::string("dbwarden: ") + what, &scratch_);
  out.to_client(scratch_);
  (void)now_ns;  // the session never sees garbage: no record comes of it
  closing_ = true;
  out.close_after_flush();
}

}  // namespace dbwarden::proxy
