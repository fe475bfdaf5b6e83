// SPDX-License-Identifier: Apache-2.0
//
// PgRelay's server side under masking (see pg_relay.h). Wire layouts,
// https://www.postgresql.org/docs/current/protocol-message-formats.html:
//   RowDescription 'T': Int16 n, then n x (String name, Int32 table OID, Int16 attnum,
//                       Int32 type OID, Int16 typlen, Int32 typmod, Int16 format code)
//   DataRow 'D':        Int16 n, then n x (Int32 length (-1: NULL), Byte[length])
//   CopyOutResponse 'H': Int8 format (0 text, 1 binary), Int16 n, n x Int16 format
//   CopyData 'd':       the bytes of one row (the server sends one row per message)
#include <algorithm>
#include <cstring>

#include "protocol/pgsql/messages.h"
#include "proxy/pg_relay.h"

namespace dbwarden::proxy {

using pgsql::Direction;

namespace {

using pgsql::ReadBe16;

void PutBe32(uint32_t v, uint8_t* p) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

void AppendBe32(uint32_t v, std::vector<uint8_t>& out) {
  const size_t at = out.size();
  out.resize(at + 4);
  PutBe32(v, out.data() + at);
}

bool starts_with_ci(std::string_view text, std::string_view word) {
  size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' ||
                             text[i] == '\r' || text[i] == '(')) {
    ++i;
  }
  if (text.size() - i < word.size()) return false;
  for (size_t k = 0; k < word.size(); ++k) {
    if ((text[i + k] | 0x20) != (word[k] | 0x20)) return false;
  }
  return true;
}

bool contains_ci(std::string_view text, std::string_view word) {
  const auto it = std::search(text.begin(), text.end(), word.begin(), word.end(),
                              [](char a, char b) { return (a | 0x20) == (b | 0x20); });
  return it != text.end();
}

}  // namespace

bool PgRelay::note_masks(RelayOutput* out, uint64_t now_ns) {
  if (!verdict_.policy || verdict_.policy->mask_rule_count() == 0) return false;
  // What each statement's results look like (pg_relay_lineage.cc); a catalog lookup first
  // when the tracer lacks names and the session allows one.
  catalog_settle();           // before anything is traced or looked up for this message
  adopt_start_scope(now_ns);  // a new session: the scope of its start, if known
  StatementOrigins traced[4];
  Trace how[4];
  const size_t n = verdict_.statements.size();
  bool lookup = false;
  for (size_t i = 0; i < n; ++i) {
    JudgedStatement& s = verdict_.statements[i];
    // A statement held for approval is planned as an allowed one: what would block it
    // unheld blocks it before anyone is asked, and it is armed for when it is released.
    if (i >= 4 || (s.verdict.block && s.verdict.approvals == 0)) continue;
    how[i] = trace(s, *verdict_.policy, traced[i], now_ns);
    lookup = lookup || how[i] == Trace::kLookup;
  }
  // Names wanted earlier (inside a transaction) are looked up at the first chance too, and
  // the scope's reach set at the first idle moment (ReadyForQuery 'I': after the startup,
  // after a COMMIT, before psycopg2's BEGIN) once it is unknown or old, so that a
  // transaction block that follows needs no lookup for relations outside it.
  const ReachNeed need = out != nullptr ? reach_need(now_ns) : ReachNeed::kNone;
  if ((lookup || !wanted_.empty() || need == ReachNeed::kAsk) && out != nullptr) {
    const LookupChance chance = lookup_chance();
    if (chance == LookupChance::kNow) {
      start_lookup(*out, need == ReachNeed::kAsk);
      return true;
    }
    if (chance == LookupChance::kWait && lookup) return true;
  } else if (need == ReachNeed::kWait && lookup_chance() == LookupChance::kNow) {
    // Another connection is asking for this session's reach set: its answer, shared, comes
    // in a few milliseconds; this message waits for it rather than ask the same again.
    catalog_->wait(!scope_key_.empty() ? scope_key_ : start_claim_, token_);
    if (catalog_->waiting(token_)) {
      catalog_->count_wait();
      waiting_reach_ = true;
      reach_waited_ = true;
      return true;
    }
  }
  catalog_watch(verdict_.statements);
  for (size_t i = 0; i < n; ++i) {
    JudgedStatement& s = verdict_.statements[i];
    if (s.verdict.block && s.verdict.approvals == 0) continue;
    StatementOrigins origins;
    const Trace t = i < 4 ? how[i] : trace(s, *verdict_.policy, origins, now_ns);
    if (i < 4) origins = std::move(traced[i]);
    if (t == Trace::kUntouched) {
      s.masks.clear();
      continue;
    }
    if (t != Trace::kTraced) origins = untraced_origins(s);
    // Rules kept for a view among the statement's relations (the judge found no named
    // table they cover) apply now that the catalog says a view, or nothing, is there.
    if (s.masks.empty() && catalog_ != nullptr) s.masks.swap(s.view_masks);
    if (s.masks.empty()) continue;
    // What the plan decides before the statement runs: a block (on_derived: block over a
    // column that cannot be followed, predicates: block) is answered as any other block.
    const MaskPlan plan = build_mask_plan(s.masks, *verdict_.policy, origins,
                                          std::max<size_t>(origins.columns.size(), 1));
    if (plan.blocked()) {
      s.verdict.block = true;
      s.verdict.rule = plan.block_rule();
      s.verdict.action = "block";
      s.verdict.message = plan.block_message();
      s.verdict.sqlstate = "42501";
      block_masked(s);
      continue;
    }
    if (!plan.blocked() && !plan.empty() && starts_with_ci(s.text, "copy") &&
        contains_ci(s.text, "binary")) {
      // Binary COPY rows are not parsed by the relay: refused before it runs.
      s.verdict.block = true;
      s.verdict.rule = verdict_.policy->mask_rule_name(*s.masks.front());
      s.verdict.action = "block";
      s.verdict.message = "dbwarden: binary COPY of masked results is not supported";
      s.verdict.sqlstate = "0A000";
      block_masked(s);
      continue;
    }
    if (plan.empty()) continue;                 // an untouched table: results stream through
    if (masks_.size() >= 1024) masks_.clear();  // forgotten ones are judged again
    MaskEntry& e = masks_[s.text];
    e.policy = verdict_.policy;
    e.rules = s.masks;
    e.origins = std::move(origins);
    e.traced = t == Trace::kTraced;
    armed_ = true;
  }
  return false;
}

void PgRelay::block_masked(JudgedStatement& s) {
  // A plain block now, which decides over any approval (policy_judge.cc).
  s.verdict.approvals = 0;
  decisions_.remember(s);
  if (!verdict_.decisive.block || verdict_.decisive.approvals != 0) verdict_.decisive = s.verdict;
}

const PgRelay::MaskEntry* PgRelay::masks_for(std::string_view text) {
  if (text.empty()) return nullptr;
  auto it = masks_.find(std::string(text));
  if (it != masks_.end()) return &it->second;
  // Forgotten (bounded) or never judged here: the same question again.
  MessageVerdict v;
  judge_.judge(info_, Dialect::kPostgresql, text, /*complete=*/true, /*backslash_escapes=*/false,
               /*prepared=*/nullptr, &v);
  if (!v.policy || v.statements.empty()) return nullptr;
  JudgedStatement& s = v.statements.front();
  StatementOrigins origins;
  const Trace t = s.masks.empty() && (s.view_masks.empty() || catalog_ == nullptr)
                      ? Trace::kUntouched
                      : trace(s, *v.policy, origins, now_ns_);
  if (t == Trace::kUntouched) return nullptr;
  if (t != Trace::kTraced) origins = untraced_origins(s);
  if (s.masks.empty() && catalog_ != nullptr) s.masks.swap(s.view_masks);
  if (s.masks.empty()) return nullptr;
  if (masks_.size() >= 1024) masks_.clear();
  MaskEntry& e = masks_[std::string(text)];
  e.policy = v.policy;
  e.rules = s.masks;
  e.origins = std::move(origins);
  e.traced = t == Trace::kTraced;
  return &e;
}

void PgRelay::arm_for(std::string_view text) {
  if (armed_ || text.empty()) return;
  if (!verdict_.policy || verdict_.policy->mask_rule_count() == 0) return;
  if (masks_for(text) != nullptr) armed_ = true;
}

void PgRelay::on_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) {
  now_ns_ = now_ns;
  if (looking_up_) {
    bytes = lookup_answer(bytes, out, now_ns);  // the proxy's own: pg_relay_lineage.cc
    if (bytes.empty() || closing_) return;
  }
  if (armed_ || srv_gather_) {
    on_server_framed(bytes, out, now_ns);
    flush_server(out, now_ns);
  } else {
    // Untouched: only the message boundaries are followed.
    size_t pos = 0;
    while (pos < bytes.size()) {
      if (srv_left_ > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size() - pos, srv_left_));
        if (key_left_ > 0) {
          // BackendKeyData's body: kept by the relay alone (the decoder never keeps the
          // cancel key), to match a CancelRequest to this connection.
          const size_t k = std::min<size_t>(n, key_left_);
          backend_key_.insert(backend_key_.end(), bytes.begin() + pos, bytes.begin() + pos + k);
          key_left_ -= k;
        }
        pos += n;
        srv_left_ -= n;
        continue;
      }
      srv_header_[srv_header_n_++] = bytes[pos++];
      if (srv_header_n_ == pgsql::kTypedHeaderSize) {
        srv_header_n_ = 0;
        srv_left_ = pgsql::ReadBe32(srv_header_ + 1) - 4;
        // Pid and key: 8 bytes (protocol 3.0) up to 260 (3.2). Once per connection.
        if (srv_header_[0] == 'K' && backend_key_.empty() && srv_left_ >= 8 && srv_left_ <= 260) {
          key_left_ = static_cast<size_t>(srv_left_);
        }
      }
    }
    forward_server(bytes, out, now_ns);
  }
  // The upstream socket's peer is the postmaster, not the backend: records name the backend
  // (process.pid) from its BackendKeyData, as the capture does from the kernel.
  if (info_.server_pid == 0) info_.server_pid = session_.backend_pid();
  if (holding_) release_held(out, now_ns);
}

void PgRelay::forward_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) {
  if (bytes.empty()) return;
  out.to_client(bytes);
  session_.on_data(Direction::kBackend, bytes, now_ns);
}

void PgRelay::queue_server(std::span<const uint8_t> bytes, bool in_read, RelayOutput& out,
                           uint64_t now_ns) {
  if (bytes.empty()) return;
  if (srv_queued_ + bytes.size() > kServerBatch) flush_server(out, now_ns);
  if (bytes.size() > kServerBatch) return forward_server(bytes, out, now_ns);
  srv_queued_ += bytes.size();
  Piece* last = srv_pieces_.empty() ? nullptr : &srv_pieces_.back();
  if (in_read) {
    if (last != nullptr && last->at != nullptr && last->at + last->len == bytes.data()) {
      last->len += bytes.size();
    } else {
      srv_pieces_.push_back({bytes.data(), 0, bytes.size()});
    }
    return;
  }
  const size_t off = srv_own_.size();
  srv_own_.insert(srv_own_.end(), bytes.begin(), bytes.end());
  if (last != nullptr && last->at == nullptr && last->off + last->len == off) {
    last->len += bytes.size();
  } else {
    srv_pieces_.push_back({nullptr, off, bytes.size()});
  }
}

void PgRelay::flush_server(RelayOutput& out, uint64_t now_ns) {
  if (srv_pieces_.empty()) return;
  srv_spans_.clear();
  for (const Piece& p : srv_pieces_) {
    srv_spans_.emplace_back(p.at != nullptr ? p.at : srv_own_.data() + p.off, p.len);
  }
  out.to_client_gather(srv_spans_);
  for (const auto& s : srv_spans_) session_.on_data(Direction::kBackend, s, now_ns);
  srv_pieces_.clear();
  srv_own_.clear();
  srv_queued_ = 0;
}

void PgRelay::on_server_framed(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) {
  size_t pos = 0;
  // Where the current message's header began in `bytes` (npos: in an earlier read).
  size_t header_at = std::string_view::npos;
  while (pos < bytes.size() && !closing_) {
    if (srv_left_ > 0 && !srv_gather_) {
      // A message that is not inspected: streamed through.
      const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size() - pos, srv_left_));
      queue_server(bytes.subspan(pos, n), /*in_read=*/true, out, now_ns);
      pos += n;
      srv_left_ -= n;
      continue;
    }
    if (srv_gather_) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size() - pos, srv_left_));
      srv_message_.insert(srv_message_.end(), bytes.begin() + pos, bytes.begin() + pos + n);
      pos += n;
      srv_left_ -= n;
      if (srv_left_ > 0) continue;
      srv_gather_ = false;
      server_message(srv_message_, /*in_read=*/false, out, now_ns);
      srv_message_.clear();
      continue;
    }
    if (srv_header_n_ == 0) header_at = pos;
    srv_header_[srv_header_n_++] = bytes[pos++];
    if (srv_header_n_ < pgsql::kTypedHeaderSize) continue;
    srv_header_n_ = 0;
    const uint8_t type = srv_header_[0];
    const uint32_t length = pgsql::ReadBe32(srv_header_ + 1);
    if (length < 4) {
      flush_server(out, now_ns);
      protocol_error("invalid message from the server", out, now_ns);
      return;
    }
    srv_left_ = length - 4;
    bool inspect = false;
    switch (type) {
      case 'T':
      case 'H':
      case 'C':
      case 'E':
      case 's':
      case 'I':
      case 'Z':
        inspect = true;
        break;
      case 'D':
        // Rows with no RowDescription before them (a portal executed without a Describe
        // in its group) are inspected too: the statement being executed decides.
        inspect = described_ ? plan_.has_value() && !plan_->empty() : true;
        break;
      case 'd':
        inspect = plan_.has_value() && !plan_->empty();
        break;
      default:
        break;
    }
    if (inspect && srv_left_ > limits_.max_masked_message_bytes) {
      if (type == 'D' || type == 'd') {
        // Cannot be held whole to mask: the connection ends rather than let it out.
        flush_server(out, now_ns);
        fatal("54000", "dbwarden: a result row too large to mask", /*recorded=*/true, out, now_ns);
        return;
      }
      inspect = false;
    }
    if (!inspect) {
      if (header_at != std::string_view::npos) {
        queue_server(bytes.subspan(header_at, pgsql::kTypedHeaderSize), /*in_read=*/true, out,
                     now_ns);
      } else {  // cut between reads: the earlier part is not in this one
        queue_server({srv_header_, pgsql::kTypedHeaderSize}, /*in_read=*/false, out, now_ns);
      }
      continue;
    }
    if (header_at != std::string_view::npos && bytes.size() - pos >= srv_left_) {
      // Whole in this read: inspected where it lies, not gathered.
      const auto message = bytes.subspan(header_at, pgsql::kTypedHeaderSize + srv_left_);
      pos += srv_left_;
      srv_left_ = 0;
      server_message(message, /*in_read=*/true, out, now_ns);
      continue;
    }
    srv_message_.assign(srv_header_, srv_header_ + pgsql::kTypedHeaderSize);
    srv_gather_ = true;
    if (srv_left_ == 0) {
      srv_gather_ = false;
      server_message(srv_message_, /*in_read=*/false, out, now_ns);
      srv_message_.clear();
    }
  }
}

void PgRelay::server_message(std::span<const uint8_t> message, bool in_read, RelayOutput& out,
                             uint64_t now_ns) {
  const uint8_t type = message[0];
  const auto body = message.subspan(pgsql::kTypedHeaderSize);
  // Only rows may stay queued while a message is handled: every other message reads or
  // changes what the decoder knows of the statement being answered (and so does a row with
  // no RowDescription), and the decoder must have seen every byte before it first.
  if ((type != 'D' && type != 'd') || !described_) flush_server(out, now_ns);
  switch (type) {
    case 'T':
      row_description(body);
      break;
    case 'H':
      copy_out_response(body);
      if (copy_binary_ && plan_ && !plan_->empty()) {
        // Binary COPY rows are not parsed here: refused rather than let out (note_masks
        // refuses one it recognises before it runs).
        fatal("0A000", "dbwarden: binary COPY of masked results is not supported",
              /*recorded=*/true, out, now_ns);
        return;
      }
      break;
    case 'D':
      if (!described_) undescribed_rows(body);
      [[fallthrough]];
    case 'd':
      switch (type == 'D' ? rewrite_data_row(body) : rewrite_copy_row(body)) {
        case Rewrite::kUnchanged:
          break;
        case Rewrite::kRewritten:
          queue_server(row_, /*in_read=*/false, out, now_ns);
          return;
        case Rewrite::kMalformed:
          // Not what the RowDescription / COPY announced: nothing of it can be masked
          // with certainty, so none of it goes out.
          flush_server(out, now_ns);
          protocol_error("a malformed result row from the server", out, now_ns);
          return;
      }
      break;
    case 'C':
    case 'E':
    case 'I':
    case 's':
      finish_statement();
      if (type != 's') {
        plan_.reset();
        columns_.clear();
        described_ = false;
      }
      break;
    case 'Z':
      plan_.reset();
      columns_.clear();
      described_ = false;
      forward_server(message, out, now_ns);
      // Every answer is in: nothing more to mask until a statement with rules comes.
      if (session_.idle()) {
        armed_ = false;
        tallies_.clear();
        if (srv_own_.capacity() > 4096) std::vector<uint8_t>().swap(srv_own_);
      }
      return;
    default:
      break;
  }
  queue_server(message, in_read, out, now_ns);
}

void PgRelay::finish_statement() { tallies_.finish(session_.answering_text(), tally_); }

void PgRelay::undescribed_rows(std::span<const uint8_t> body) {
  // The column types and formats (Bind's result format codes) are not known here: every
  // column the plan masks whole becomes NULL, valid in any type and format; the others are
  // scanned as text (the content detectors find nothing in binary numbers).
  described_ = true;
  plan_.reset();
  columns_.clear();
  const MaskEntry* e = masks_for(session_.answering_text());
  if (e == nullptr || body.size() < 2) return;
  columns_.resize(ReadBe16(body.data()));
  plan_.emplace(build_mask_plan(e->rules, *e->policy, e->origins, columns_.size()));
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (plan_->column(i).on) columns_[i].mask.type = masking::ValueType::kOther;
  }
}

void PgRelay::row_description(std::span<const uint8_t> body) {
  described_ = true;
  plan_.reset();
  columns_.clear();
  const MaskEntry* e = masks_for(session_.answering_text());
  if (body.size() < 2) return;
  const size_t n = ReadBe16(body.data());
  size_t pos = 2;
  for (size_t i = 0; i < n; ++i) {
    // name, then 18 bytes of fixed fields.
    const auto nul = std::find(body.begin() + pos, body.end(), 0);
    if (nul == body.end()) break;
    pos = static_cast<size_t>(nul - body.begin()) + 1;
    if (body.size() - pos < 18) break;
    ResultColumn& c = columns_.emplace_back();
    c.type_oid = pgsql::ReadBe32(body.data() + pos + 6);
    c.format = static_cast<int16_t>(ReadBe16(body.data() + pos + 16));
    c.mask.type = masking::pg_value_type(c.type_oid);
    c.mask.encoding = c.format == 1 ? masking::Encoding::kPgBinary : masking::Encoding::kPgText;
    c.mask.nullable = true;
    pos += 18;
  }
  if (e == nullptr) return;
  if (!e->traced) {
    plan_.emplace(build_mask_plan(e->rules, *e->policy, e->origins, columns_.size()));
    return;
  }
  StatementOrigins origins = e->origins;
  confirm_origins(body, origins, now_ns_);
  plan_.emplace(build_mask_plan(e->rules, *e->policy, origins, columns_.size()));
}

void PgRelay::copy_out_response(std::span<const uint8_t> body) {
  described_ = true;
  plan_.reset();
  columns_.clear();
  copy_csv_ = false;
  copy_binary_ = false;
  const std::string_view text = session_.answering_text();
  const MaskEntry* e = masks_for(text);
  if (body.size() < 3) return;
  const size_t n = ReadBe16(body.data() + 1);
  // COPY says nothing of its columns' types: each is text to the masker.
  columns_.resize(n);
  for (ResultColumn& c : columns_) {
    c.mask.type = masking::ValueType::kText;
    c.mask.encoding = masking::Encoding::kPgText;
  }
  if (e == nullptr) return;
  copy_csv_ = contains_ci(text, "csv");
  copy_binary_ = body[0] != 0;
  plan_.emplace(build_mask_plan(e->rules, *e->policy, e->origins, columns_.size()));
}

PgRelay::Rewrite PgRelay::rewrite_data_row(std::span<const uint8_t> body) {
  if (!plan_ || plan_->empty()) return Rewrite::kUnchanged;
  if (body.size() < 2) return Rewrite::kMalformed;
  const size_t n = ReadBe16(body.data());
  // Values outside [scan_begin, scan_end) hold nothing the plan masks (MaskPlan::may_change).
  size_t scan_begin = 0, scan_end = body.size();
  if (!plan_->may_change({reinterpret_cast<const char*>(body.data()), body.size()}, &scan_begin,
                         &scan_end)) {
    // Nothing in it can be masked: only its shape is checked, as below.
    size_t at = 2;
    for (size_t i = 0; i < n; ++i) {
      if (body.size() - at < 4) return Rewrite::kMalformed;
      const int32_t len = static_cast<int32_t>(pgsql::ReadBe32(body.data() + at));
      at += 4;
      if (len < 0) continue;
      if (body.size() - at < static_cast<size_t>(len)) return Rewrite::kMalformed;
      at += static_cast<size_t>(len);
    }
    return at == body.size() ? Rewrite::kUnchanged : Rewrite::kMalformed;
  }
  row_.clear();
  row_.push_back('D');
  AppendBe32(0, row_);
  row_.insert(row_.end(), body.begin(), body.begin() + 2);
  size_t pos = 2;
  bool changed = false;
  for (size_t i = 0; i < n; ++i) {
    if (body.size() - pos < 4) return Rewrite::kMalformed;
    const int32_t len = static_cast<int32_t>(pgsql::ReadBe32(body.data() + pos));
    pos += 4;
    if (len < 0) {
      AppendBe32(static_cast<uint32_t>(-1), row_);
      continue;
    }
    if (body.size() - pos < static_cast<size_t>(len)) return Rewrite::kMalformed;
    const std::string_view in(reinterpret_cast<const char*>(body.data() + pos),
                              static_cast<size_t>(len));
    const bool scan = pos < scan_end && pos + in.size() > scan_begin;
    pos += static_cast<size_t>(len);
    // A column past the RowDescription's (or without one): text, masked as unknown.
    static const masking::Column kUnknown{};
    const masking::Column& type = i < columns_.size() ? columns_[i].mask : kUnknown;
    switch (scan ? plan_->apply(i, type, in, value_, tally_) : masking::Outcome::kUnchanged) {
      case masking::Outcome::kUnchanged:
        AppendBe32(static_cast<uint32_t>(len), row_);
        row_.insert(row_.end(), in.begin(), in.end());
        break;
      case masking::Outcome::kReplaced:
        changed = true;
        AppendBe32(static_cast<uint32_t>(value_.size()), row_);
        row_.insert(row_.end(), value_.begin(), value_.end());
        break;
      case masking::Outcome::kNull:
        changed = true;
        AppendBe32(static_cast<uint32_t>(-1), row_);
        break;
    }
  }
  if (pos != body.size()) return Rewrite::kMalformed;
  if (!changed) return Rewrite::kUnchanged;
  PutBe32(static_cast<uint32_t>(row_.size() - 1), row_.data() + 1);
  return Rewrite::kRewritten;
}

// One row of a text or CSV COPY TO STDOUT (DELIMITER and QUOTE at their defaults: tab,
// and comma with double quotes). Text: fields split at tabs, \N is NULL, the row ends
// with a newline; a masked value is written with tabs and newlines escaped. CSV: a field
// may be quoted ("" inside stands for "); a masked value is written quoted.
PgRelay::Rewrite PgRelay::rewrite_copy_row(std::span<const uint8_t> body) {
  if (!plan_ || plan_->empty()) return Rewrite::kUnchanged;
  const std::string_view row(reinterpret_cast<const char*>(body.data()), body.size());
  row_.clear();
  row_.push_back('d');
  AppendBe32(0, row_);
  const auto put = [&](std::string_view s) { row_.insert(row_.end(), s.begin(), s.end()); };
  static const masking::Column kText{};
  const char sep = copy_csv_ ? ',' : '\t';
  bool changed = false;
  size_t pos = 0;
  size_t column = 0;
  std::string field;
  while (pos <= row.size()) {
    if (column > 0) put(std::string_view(&sep, 1));
    // One field: [begin, end) as sent, its value in `field`.
    const size_t begin = pos;
    bool quoted = false;
    field.clear();
    if (copy_csv_ && pos < row.size() && row[pos] == '"') {
      quoted = true;
      ++pos;
      for (;;) {
        if (pos >= row.size()) return Rewrite::kMalformed;
        if (row[pos] == '"') {
          if (pos + 1 < row.size() && row[pos + 1] == '"') {
            field.push_back('"');
            pos += 2;
            continue;
          }
          ++pos;
          break;
        }
        field.push_back(row[pos++]);
      }
    }
    while (pos < row.size() && row[pos] != sep && row[pos] != '\n' && row[pos] != '\r') {
      if (quoted) return Rewrite::kMalformed;
      field.push_back(row[pos++]);
    }
    const std::string_view sent = row.substr(begin, pos - begin);
    const bool null = copy_csv_ ? (!quoted && field.empty()) : sent == "\\N";
    masking::Outcome o = masking::Outcome::kUnchanged;
    if (!null) o = plan_->apply(column, kText, field, value_, tally_);
    if (o == masking::Outcome::kUnchanged) {
      put(sent);
    } else if (o == masking::Outcome::kNull) {
      changed = true;
      put(copy_csv_ ? "" : "\\N");
    } else {
      changed = true;
      if (copy_csv_) row_.push_back('"');
      for (const char ch : value_) {
        if (copy_csv_ && ch == '"') {
          put("\"\"");
        } else if (!copy_csv_ && ch == '\t') {
          put("\\t");
        } else if (!copy_csv_ && ch == '\n') {
          put("\\n");
        } else if (!copy_csv_ && ch == '\r') {
          put("\\r");
        } else {
          row_.push_back(static_cast<uint8_t>(ch));
        }
      }
      if (copy_csv_) row_.push_back('"');
    }
    ++column;
    if (pos >= row.size() || row[pos] != sep) break;
    ++pos;
  }
  put(row.substr(pos));  // the row's end: newline (CRLF in CSV when asked)
  if (!changed) return Rewrite::kUnchanged;
  PutBe32(static_cast<uint32_t>(row_.size() - 1), row_.data() + 1);
  return Rewrite::kRewritten;
}

}  // namespace dbwarden::proxy
