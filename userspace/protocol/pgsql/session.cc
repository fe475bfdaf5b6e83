// SPDX-License-Identifier: Apache-2.0
#include "protocol/pgsql/session.h"

#include <algorithm>
#include <utility>

namespace dbwarden::pgsql {
namespace {

// Requests waiting for answers. A client that pipelines more than this
// without the server answering (or whose answers we cannot see) has its
// oldest requests emitted with an unknown outcome rather than held forever.
constexpr size_t kMaxPendingOps = 10000;
// A finished Query's buffers are kept for the next one up to this size.
constexpr size_t kMaxSpareQueryBytes = 4096;
constexpr size_t kMaxPortals = 1024;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Consumes `word` (case-insensitive, followed by a non-identifier byte) at
// the start of `s`.
bool TakeKeyword(std::string_view* s, std::string_view word) {
  while (!s->empty() && IsSpace(s->front())) s->remove_prefix(1);
  if (s->size() < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    char c = (*s)[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != word[i]) return false;
  }
  if (s->size() > word.size()) {
    const char next = (*s)[word.size()];
    if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || next == '_' ||
        (next >= '0' && next <= '9')) {
      return false;
    }
  }
  s->remove_prefix(word.size());
  return true;
}

// The statement name in "DEALLOCATE [PREPARE] name": quoted names as written,
// unquoted ones folded to lower case like the server does.
bool DeallocatedName(std::string_view s, std::string* name) {
  if (!TakeKeyword(&s, "DEALLOCATE")) return false;
  TakeKeyword(&s, "PREPARE");
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  name->clear();
  if (!s.empty() && s.front() == '"') {
    for (size_t i = 1; i < s.size(); ++i) {
      if (s[i] == '"') {
        if (i + 1 < s.size() && s[i + 1] == '"') {
          name->push_back('"');
          ++i;
          continue;
        }
        return true;
      }
      name->push_back(s[i]);
    }
    return false;
  }
  for (char c : s) {
    const bool ident = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                       (c >= '0' && c <= '9') || c == '$' || static_cast<unsigned char>(c) >= 0x80;
    if (!ident) break;
    name->push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return !name->empty();
}

}  // namespace

Session::Session(ConnectionInfo& info, StatementSink& sink, const Limits& limits,
                 Counters& counters)
    : info_(info),
      sink_(sink),
      limits_(limits),
      counters_(counters),
      frontend_(Direction::kFrontend, limits, counters, *this),
      backend_(Direction::kBackend, limits, counters, *this) {
  if (info_.db_system.empty()) info_.db_system = "postgresql";
}

Session::~Session() = default;

void Session::on_data(Direction dir, std::span<const uint8_t> bytes, uint64_t ts_ns) {
  if (tls_pending_ && !bytes.empty() && !tls_plaintext(dir, bytes)) return;
  (dir == Direction::kFrontend ? frontend_ : backend_).feed(bytes, ts_ns);
}

// A TLS record starts with its content type, 20..23
// (https://www.rfc-editor.org/rfc/rfc8446#section-5.1); a StartupMessage with
// its 4-byte big-endian length, whose first byte is 0 (lengths < 16 MiB).
bool Session::tls_plaintext(Direction dir, std::span<const uint8_t> bytes) {
  const bool record = bytes[0] >= 0x14 && bytes[0] <= 0x17;
  if (dir == Direction::kBackend && !record) return true;  // decided by the client's bytes
  if (dir == Direction::kFrontend && bytes[0] == 0x00) {
    tls_pending_ = false;
    return true;
  }
  tls_pending_ = false;
  ++counters_.tls_not_captured;
  frontend_.stop();
  backend_.stop();
  return false;
}

void Session::on_gap(Direction dir, uint64_t length, uint64_t ts_ns) {
  if (length == 0) return;
  ++counters_.gaps;
  counters_.gap_bytes += length;
  Framer& framer = dir == Direction::kFrontend ? frontend_ : backend_;
  if (framer.stopped()) return;
  mark_gap(dir);
  framer.gap(length, ts_ns);
}

void Session::on_skip(Direction dir, uint64_t length, uint64_t ts_ns) {
  if (dir == Direction::kFrontend) {  // never bound by the capture: a loss
    on_gap(dir, length, ts_ns);
    return;
  }
  if (length == 0 || backend_.stopped()) return;
  ++counters_.bulk_skips;
  counters_.bulk_skipped_bytes += length;
  rows_inexact_ = true;
  backend_.skip(length, ts_ns);
}

// Completions the backend owes per ReadyForQuery to come: each cycle ends
// with a Sync, a Query or a FunctionCall.
std::vector<uint32_t> Session::awaited_cycles() const {
  std::vector<uint32_t> cycles;
  uint32_t m = 0;
  for (const Op& op : ops_) {
    switch (op.kind) {
      case OpKind::kQuery:
        m += op.query->failed ? 0 : static_cast<uint32_t>(op.query->pieces.size() - op.query->next);
        break;
      case OpKind::kFunctionCall:
      case OpKind::kExecute:
        ++m;
        break;
      default:
        break;
    }
    if (op.kind == OpKind::kQuery || op.kind == OpKind::kFunctionCall || op.kind == OpKind::kSync) {
      cycles.push_back(m);
      m = 0;
    }
  }
  return cycles;
}

bool Session::accept_anchor(Direction /*dir*/, std::span<const uint32_t> cycles) {
  const std::vector<uint32_t> awaited = awaited_cycles();
  return cycles.size() <= awaited.size() &&
         std::equal(cycles.begin(), cycles.end(), awaited.begin());
}

void Session::on_anchored(Direction dir, std::span<const uint32_t> cycles,
                          uint64_t unframed_bytes) {
  if (dir != Direction::kBackend) return;
  response_bytes_ += unframed_bytes;
  anchored_readies_left_ = cycles.size();
  anchored_mismatch_ = !accept_anchor(dir, cycles);
  if (!anchored_mismatch_) {
    ++counters_.bulk_anchored;
    return;
  }
  // Completions fell inside the skip (or the chain is not what it seems):
  // which statement each recovered completion belongs to is unknown.
  ++counters_.bulk_mismatched;
  mark_gap(dir);
}

void Session::on_close(uint64_t ts_ns) {
  for (Op& op : ops_) {
    if (op.kind == OpKind::kExecute || op.kind == OpKind::kFunctionCall) {
      emit_unknown_outcome(execute_statement(op), ts_ns);
    } else if (op.kind == OpKind::kQuery) {
      finish_query(op, ts_ns, /*closing=*/true);
    }
  }
  ops_.clear();
}

void Session::on_framing_lost(Direction dir) { mark_gap(dir); }

void Session::mark_gap(Direction dir) {
  for (Op& op : ops_) op.gap = true;
  if (dir == Direction::kFrontend) frontend_gap_ = true;
}

void Session::on_frame(Direction dir, const Frame& f) {
  if (dir == Direction::kFrontend) {
    on_frontend(f);
  } else {
    on_backend(f);
  }
}

// ---- frontend ----------------------------------------------------------------

void Session::on_startup(const Frame& f) {
  switch (f.startup) {
    case StartupKind::kSsl:
    case StartupKind::kGssEnc:
      backend_.expect_answer(f.startup);
      break;
    case StartupKind::kStartup: {
      startup_seen_ = true;
      StartupParams params;
      ParseStartupParams(f.body, &params);
      info_.user = params.user;
      // The server's rule: the database defaults to the user name.
      info_.database = params.database.empty() ? params.user : params.database;
      info_.application_name = params.application_name;
      break;
    }
    case StartupKind::kCancel:
      ++counters_.cancel_requests;  // its key is never kept
      break;
    default:
      break;
  }
}

void Session::on_frontend(const Frame& f) {
  if (f.type == 0) {
    on_startup(f);
    return;
  }
  // After an error in the extended protocol the server ignores everything up
  // to Sync: so do we (those messages never ran).
  if (discard_until_sync_ && f.type != 'S') return;
  switch (f.type) {
    case 'Q':
      on_query(f);
      break;
    case 'P':
      on_parse(f);
      break;
    case 'B':
      on_bind(f);
      break;
    case 'E':
      on_execute(f);
      break;
    case 'C':
      on_close_message(f);
      break;
    case 'D':
      open_group(f);
      on_describe(f, push(OpKind::kDescribe, f));
      break;
    case 'S':
      push(OpKind::kSync, f);
      discard_until_sync_ = false;
      group_open_ = false;
      frontend_gap_ = false;
      break;
    case 'F':
      on_function_call(f);
      break;
    default:
      break;  // 'p' authentication, CopyData/Done/Fail, Flush, Terminate
  }
}

Session::Op& Session::push(OpKind kind, const Frame& f) {
  if (ops_.size() >= kMaxPendingOps) {
    Op& old = ops_.front();
    old.gap = true;
    if (old.kind == OpKind::kExecute) emit_unknown_outcome(execute_statement(old), f.start_ns);
    if (old.kind == OpKind::kQuery) finish_query(old, f.start_ns, /*closing=*/true);
    ops_.pop_front();
  }
  Op& op = ops_.emplace_back();
  op.kind = kind;
  op.gap = frontend_gap_ || f.gap;
  op.start_ns = f.start_ns;
  op.request_bytes = f.wire_bytes();
  return op;
}

void Session::open_group(const Frame& f) {
  if (!group_open_) {
    group_open_ = true;
    group_start_ns_ = f.start_ns;
    group_bytes_ = 0;
  }
  group_bytes_ += f.wire_bytes();
}

void Session::on_query(const Frame& f) {
  BodyReader r(f.body);
  bool terminated = false;
  std::string_view text = r.until_nul(&terminated);
  std::unique_ptr<QueryState> q = std::move(spare_query_);
  if (q) {
    q->clear();
  } else {
    q = std::make_unique<QueryState>();
  }
  q->truncated = text.size() > limits_.max_query_bytes || (!terminated && !f.body_complete);
  if (text.size() > limits_.max_query_bytes) text = text.substr(0, limits_.max_query_bytes);
  if (q->truncated) ++counters_.truncated_queries;
  q->text.assign(text);
  SplitStatements(q->text, &q->pieces);
  uint64_t piece_bytes = 0;
  for (const SqlPiece& p : q->pieces) piece_bytes += p.length;
  q->first_extra_bytes = f.wire_bytes() > piece_bytes ? f.wire_bytes() - piece_bytes : 0;
  group_open_ = false;
  Op& op = push(OpKind::kQuery, f);
  op.query = std::move(q);
  frontend_gap_ = false;  // a Query starts a fresh cycle
}

void Session::on_parse(const Frame& f) {
  // Parse: String name, String query, Int16 n, Int32[n] parameter type OIDs.
  BodyReader r(f.body);
  std::string_view name;
  const bool named_ok = r.cstring(&name);
  bool terminated = false;
  std::string_view text = named_ok ? r.until_nul(&terminated) : std::string_view();
  auto p = std::make_shared<Prepared>();
  p->truncated = text.size() > limits_.max_query_bytes || (!terminated && !f.body_complete);
  if (text.size() > limits_.max_query_bytes) text = text.substr(0, limits_.max_query_bytes);
  if (p->truncated) ++counters_.truncated_queries;
  p->text.assign(text);
  p->types = ParseParameterTypes(f.body);
  if (named_ok) remember(name, p);
  open_group(f);
  Op& op = push(OpKind::kParse, f);
  op.prepared = std::move(p);
  if (named_ok) op.statement_name.assign(name);
}

void Session::remember(std::string_view name, std::shared_ptr<const Prepared> p) {
  key_.assign(name);
  auto it = prepared_.find(key_);
  if (it != prepared_.end()) {
    // A named statement cannot be redefined (the server rejects the Parse),
    // so only the unnamed one is replaced.
    if (!name.empty()) return;
    prepared_bytes_ -= it->second->text.size();
    prepared_bytes_ += p->text.size();
    it->second = std::move(p);
    return;
  }
  if (prepared_.size() >= limits_.max_prepared_statements ||
      prepared_bytes_ + p->text.size() > limits_.max_prepared_bytes) {
    return;  // its Executes will have empty text, as if prepared before capture
  }
  prepared_bytes_ += p->text.size();
  prepared_.emplace(key_, std::move(p));
}

void Session::forget(const std::string& name) {
  auto it = prepared_.find(name);
  if (it == prepared_.end()) return;
  prepared_bytes_ -= it->second->text.size();
  prepared_.erase(it);
}

void Session::on_bind(const Frame& f) {
  // Bind: String portal, String statement, then formats and parameter values
  // (layout in parameters.h; the framer keeps a bounded prefix of the values).
  BodyReader r(f.body);
  std::string_view portal, statement;
  if (r.cstring(&portal) && r.cstring(&statement)) {
    key_.assign(statement);
    auto st = prepared_.find(key_);
    std::span<const uint32_t> types;
    if (st != prepared_.end()) types = st->second->types;
    auto values = std::make_shared<ParameterValues>();
    ParameterStats stats;
    ReadParameterValues(f.body, portal.size() + statement.size() + 2, f.length - 4, types, limits_,
                        values.get(), &stats);
    counters_.parameters_cut += stats.cut_values;
    counters_.parameters_dropped += stats.dropped_values;
    size_t bytes = 0;
    for (const auto& v : *values) bytes += sizeof(v) + (v ? v->size() : 0);
    key_.assign(portal);
    erase_portal(key_);
    if (portals_.size() >= kMaxPortals) clear_portals();
    Portal& p = portals_[key_];
    p.statement.assign(statement);
    if (portal_parameter_bytes_ + bytes > limits_.max_portal_parameter_bytes) {
      counters_.parameters_dropped += values->size();  // held memory is bounded
    } else if (!values->empty()) {
      p.parameters = std::move(values);
      p.parameter_bytes = bytes;
      portal_parameter_bytes_ += bytes;
    }
  }
  open_group(f);
  push(OpKind::kBind, f);
}

void Session::erase_portal(const std::string& name) {
  auto it = portals_.find(name);
  if (it == portals_.end()) return;
  portal_parameter_bytes_ -= it->second.parameter_bytes;
  portals_.erase(it);
}

void Session::clear_portals() {
  portals_.clear();
  portal_parameter_bytes_ = 0;
}

void Session::on_function_call(const Frame& f) {
  // FunctionCall: Int32 function OID, then argument values like Bind's.
  Op& op = push(OpKind::kFunctionCall, f);
  ++counters_.function_calls;
  if (f.body.size() < 4) return;
  op.function_oid = ReadBe32(f.body.data());
  auto values = std::make_shared<ParameterValues>();
  ParameterStats stats;
  ReadParameterValues(f.body, 4, f.length - 4, {}, limits_, values.get(), &stats);
  counters_.parameters_cut += stats.cut_values;
  counters_.parameters_dropped += stats.dropped_values;
  if (!values->empty()) op.parameters = std::move(values);
}

void Session::on_function_result(const Frame& f, const ErrorFields* error) {
  if (ops_.empty() || ops_.front().kind != OpKind::kFunctionCall) {
    ++counters_.unmatched_responses;
    return;
  }
  Op& op = ops_.front();
  Statement s = execute_statement(op);
  s.end_ns = f.end_ns;
  s.command_tag = "FUNCTION CALL " + std::to_string(op.function_oid);
  if (error != nullptr) {
    s.status_code.assign(error->sqlstate);
    s.error_message.assign(error->message);
  }
  emit(s);
  // The op stays until ReadyForQuery, which ends its cycle; mark it answered.
  op.kind = OpKind::kSync;
}

void Session::on_execute(const Frame& f) {
  // Execute: String portal, Int32 max rows.
  BodyReader r(f.body);
  std::string_view portal;
  const bool portal_ok = r.cstring(&portal);
  const uint64_t start = group_open_ ? group_start_ns_ : f.start_ns;
  const uint64_t bytes = (group_open_ ? group_bytes_ : 0) + f.wire_bytes();
  group_open_ = false;
  Op& op = push(OpKind::kExecute, f);
  op.start_ns = start;
  op.request_bytes = bytes;
  op.unresolved = true;
  if (!portal_ok) return;
  key_.assign(portal);
  auto bound = portals_.find(key_);
  if (bound == portals_.end()) {
    op.statement_name.assign(portal);  // Bind not seen: only the portal is known
    return;
  }
  op.statement_name = bound->second.statement;
  op.parameters = bound->second.parameters;
  auto it = prepared_.find(op.statement_name);
  if (it == prepared_.end()) return;
  op.prepared = it->second;
  op.unresolved = false;
}

void Session::on_describe(const Frame& f, Op& op) {
  // Describe: Byte1 'S' (statement) or 'P' (portal), String name. Only which statement
  // it describes is kept (answering_text()).
  BodyReader r(f.body);
  uint8_t what = 0;
  std::string_view name;
  if (!r.byte(&what) || !r.cstring(&name)) return;
  key_.assign(name);
  if (what == 'P') {
    auto bound = portals_.find(key_);
    if (bound == portals_.end()) return;
    key_ = bound->second.statement;
  }
  auto it = prepared_.find(key_);
  if (it != prepared_.end()) op.prepared = it->second;
}

std::string_view Session::answering_text() const {
  if (ops_.empty()) return {};
  const Op& op = ops_.front();
  if (op.kind == OpKind::kQuery) {
    const QueryState& q = *op.query;
    if (q.next >= q.pieces.size()) return {};
    return std::string_view(q.text).substr(q.pieces[q.next].offset, q.pieces[q.next].length);
  }
  if ((op.kind == OpKind::kExecute || op.kind == OpKind::kDescribe) && op.prepared) {
    return op.prepared->text;
  }
  return {};
}

void Session::on_close_message(const Frame& f) {
  // Close: Byte1 'S' (statement) or 'P' (portal), String name.
  BodyReader r(f.body);
  uint8_t what = 0;
  std::string_view name;
  if (r.byte(&what) && r.cstring(&name)) {
    key_.assign(name);
    if (what == 'S') forget(key_);
    if (what == 'P') erase_portal(key_);
  }
  push(OpKind::kClose, f);
}

// ---- backend -----------------------------------------------------------------

void Session::on_backend(const Frame& f) {
  if (f.single_byte) {
    if (f.type == 'S') {
      // TLS accepted: the capture's libssl probes continue the same streams
      // with plaintext, or nothing hooked this TLS library and ciphertext
      // follows. The client's next bytes tell (tls_plaintext).
      ++counters_.encrypted_connections;
      tls_pending_ = true;
    } else if (f.type == 'G') {
      // GSSAPI encryption is not captured: what follows is ciphertext.
      ++counters_.encrypted_connections;
      frontend_.stop();
      backend_.stop();
    }
    return;
  }
  response_bytes_ += f.wire_bytes();
  if (anchored_readies_left_ > 0) {
    if (f.type == 'Z') {
      if (--anchored_readies_left_ == 0) anchored_mismatch_ = false;
    } else if (anchored_mismatch_ || f.type == 'S') {
      return;
    }
  }
  switch (f.type) {
    case 'D':
      ++rows_;
      break;
    case 'C': {
      BodyReader r(f.body);
      bool terminated = false;
      on_complete(f, r.until_nul(&terminated), true);
      break;
    }
    case 'I':
      on_complete(f, {}, false);
      break;
    case 's':
      on_suspended(f);
      break;
    case 'E':
      on_error(f);
      break;
    case 'V':
      on_function_result(f, nullptr);
      after_response();
      break;
    case 'Z':
      on_ready(f);
      break;
    case '1':
      pop_expected(OpKind::kParse);
      break;
    case '2':
      pop_expected(OpKind::kBind);
      break;
    case '3':
      pop_expected(OpKind::kClose);
      break;
    case 'T':  // answers Describe, or precedes rows in a simple Query
      if (!ops_.empty() && ops_.front().kind == OpKind::kDescribe) ops_.pop_front();
      break;
    case 'n':
      pop_expected(OpKind::kDescribe);
      break;
    case 'K':
      // BackendKeyData: Int32 pid, then the cancel key.
      if (f.body.size() >= 4) {
        backend_pid_ = (uint32_t{f.body[0]} << 24) | (uint32_t{f.body[1]} << 16) |
                       (uint32_t{f.body[2]} << 8) | uint32_t{f.body[3]};
      }
      break;
    case 'S': {
      BodyReader r(f.body);
      std::string_view name, value;
      if (r.cstring(&name) && r.cstring(&value) && name == "application_name") {
        info_.application_name.assign(value);
      }
      break;
    }
    default:
      break;
  }
}

void Session::after_response() {
  rows_ = 0;
  rows_inexact_ = false;
  response_bytes_ = 0;
}

void Session::pop_expected(OpKind kind) {
  if (!ops_.empty() && ops_.front().kind == kind) {
    ops_.pop_front();
  } else {
    ++counters_.unmatched_responses;
  }
}

void Session::emit(Statement& s) {
  s.connection = &info_;
  if (s.statement_unresolved) ++counters_.unresolved_statements;
  sink_.on_statement(s);
}

Statement Session::execute_statement(const Op& op) const {
  Statement s;
  s.start_ns = op.start_ns;
  if (op.prepared) {
    s.text = op.prepared->text;
    s.text_truncated = op.prepared->truncated;
  }
  s.statement_name = op.statement_name;
  s.statement_unresolved = op.unresolved;
  if (op.parameters) s.parameters = *op.parameters;
  s.capture_gap = op.gap;
  s.request_bytes = op.request_bytes;
  s.response_bytes = response_bytes_;
  return s;
}

void Session::piece_statement(const Op& op, size_t i, Statement& s) const {
  const QueryState& q = *op.query;
  const SqlPiece& piece = q.pieces[i];
  s.reset();
  s.start_ns = i == 0 ? op.start_ns : q.last_end_ns;
  s.text.assign(q.text, piece.offset, piece.length);
  s.text_truncated = q.truncated && i + 1 == q.pieces.size();
  s.capture_gap = op.gap;
  s.request_bytes = piece.length + (i == 0 ? q.first_extra_bytes : 0);
  s.response_bytes = response_bytes_;
}

void Session::emit_unknown_outcome(Statement s, uint64_t end_ns) {
  s.end_ns = end_ns;
  s.status_code.clear();
  s.capture_gap = true;
  emit(s);
}

void Session::flush_held(QueryState& q) {
  if (!q.has_held) return;
  q.has_held = false;
  emit(q.held);
}

void Session::complete_piece(Op& op, const Frame& f, std::string_view tag, bool has_tag) {
  QueryState& q = *op.query;
  if (q.failed) {
    ++counters_.unmatched_responses;
    return;
  }
  if (q.next >= q.pieces.size()) {
    // An empty query string is answered by one EmptyQueryResponse: nothing ran.
    if (!has_tag && q.pieces.empty() && q.next == 0) {
      ++q.next;
      return;
    }
    // The server ran more statements than we split out; we cannot name it.
    flush_held(q);
    ++counters_.unmatched_responses;
    Statement s;
    s.start_ns = q.last_end_ns ? q.last_end_ns : op.start_ns;
    s.end_ns = f.end_ns;
    s.capture_gap = op.gap;
    s.command_tag.assign(tag);
    uint64_t rows = 0;
    if (RowsFromCommandTag(tag, &rows)) s.returned_rows = rows;
    s.response_bytes = response_bytes_;
    emit(s);
    q.last_end_ns = f.end_ns;
    return;
  }
  flush_held(q);
  piece_statement(op, q.next, q.held);
  q.held.end_ns = f.end_ns;
  q.held.command_tag.assign(tag);
  uint64_t rows = 0;
  if (RowsFromCommandTag(tag, &rows)) q.held.returned_rows = rows;
  q.held_piece = q.next;
  q.has_held = true;
  ++q.next;
  q.last_end_ns = f.end_ns;
  forget_deallocated(tag, q.held.text);
}

void Session::finish_query(Op& op, uint64_t end_ns, bool closing) {
  QueryState& q = *op.query;
  const bool leftovers = !q.failed && q.next < q.pieces.size();
  if (leftovers && q.has_held && !op.gap && !closing) {
    // Fewer completions than pieces, no error, nothing lost: our splitter cut
    // where the server did not. Give the rest of the text to the last
    // confirmed statement rather than inventing records the server never
    // confirmed (see session.h).
    const SqlPiece& first = q.pieces[q.held_piece];
    const SqlPiece& last = q.pieces.back();
    q.held.text.assign(q.text, first.offset, last.offset + last.length - first.offset);
    q.held.text_truncated = q.truncated;
    q.next = q.pieces.size();
  }
  flush_held(q);
  if (q.failed) return;
  for (; q.next < q.pieces.size(); ++q.next) {
    Statement s;
    piece_statement(op, q.next, s);
    if (q.next > 0 && q.last_end_ns == 0) s.start_ns = op.start_ns;
    s.response_bytes = 0;
    emit_unknown_outcome(std::move(s), end_ns);
  }
}

void Session::on_complete(const Frame& f, std::string_view tag, bool has_tag) {
  if (ops_.empty()) {
    ++counters_.unmatched_responses;
  } else if (Op& op = ops_.front(); op.kind == OpKind::kQuery) {
    complete_piece(op, f, tag, has_tag);
  } else if (op.kind == OpKind::kExecute) {
    Statement s = execute_statement(op);
    s.end_ns = f.end_ns;
    s.command_tag.assign(tag);
    uint64_t rows = 0;
    if (RowsFromCommandTag(tag, &rows)) s.returned_rows = rows;
    emit(s);
    forget_deallocated(tag, s.text);
    ops_.pop_front();
  } else {
    ++counters_.unmatched_responses;
  }
  after_response();
}

void Session::on_suspended(const Frame& f) {
  if (!ops_.empty() && ops_.front().kind == OpKind::kExecute) {
    Statement s = execute_statement(ops_.front());
    s.end_ns = f.end_ns;
    if (rows_inexact_) {
      s.capture_gap = true;  // rows were skipped: no exact count
    } else {
      s.returned_rows = rows_;  // the portal stopped at Execute's row limit
    }
    emit(s);
    ops_.pop_front();
  } else {
    ++counters_.unmatched_responses;
  }
  after_response();
}

void Session::discard_until_sync() {
  while (!ops_.empty() && ops_.front().kind != OpKind::kSync) ops_.pop_front();
  if (ops_.empty()) discard_until_sync_ = true;  // the Sync is still to come
}

void Session::on_error(const Frame& f) {
  ErrorFields fields;
  ParseErrorFields(f.body, &fields);
  auto fill = [&](Statement& s) {
    s.end_ns = f.end_ns;
    s.status_code.assign(fields.sqlstate);
    s.error_message.assign(fields.message);
  };
  if (ops_.empty()) {
    // Before the first ReadyForQuery this is a startup/authentication failure:
    // no statement, and nothing of it is kept but the count.
    if (ready_seen_) {
      ++counters_.unmatched_responses;
    } else if (startup_seen_ && fields.sqlstate.substr(0, 2) == "28") {
      ++counters_.login_failures_authentication;
    } else if (startup_seen_) {
      ++counters_.login_failures_other;
    }
    after_response();
    return;
  }
  Op& op = ops_.front();
  switch (op.kind) {
    case OpKind::kQuery: {
      QueryState& q = *op.query;
      if (q.failed) {
        ++counters_.unmatched_responses;
      } else if (q.next < q.pieces.size()) {
        flush_held(q);
        Statement s;
        piece_statement(op, q.next, s);
        fill(s);
        emit(s);
        q.next = q.pieces.size();
      } else if (q.has_held) {
        // Every statement completed, then the implicit transaction's commit
        // failed (e.g. a deferred constraint): the last statement carries it.
        fill(q.held);
        q.held.returned_rows.reset();
        flush_held(q);
      } else {
        ++counters_.unmatched_responses;
      }
      q.failed = true;
      break;
    }
    case OpKind::kParse:
    case OpKind::kBind:
    case OpKind::kDescribe:
    case OpKind::kClose:
    case OpKind::kExecute: {
      // The statement the client was trying to run is the next Execute
      // before Sync; a lone failing Parse still deserves a record.
      auto target = ops_.end();
      for (auto it = ops_.begin(); it != ops_.end() && it->kind != OpKind::kSync; ++it) {
        if (it->kind == OpKind::kExecute) {
          target = it;
          break;
        }
      }
      if (target != ops_.end()) {
        Statement s = execute_statement(*target);
        fill(s);
        emit(s);
      } else if (op.kind == OpKind::kParse) {
        Statement s = execute_statement(op);
        fill(s);
        emit(s);
      }
      discard_until_sync();
      break;
    }
    case OpKind::kFunctionCall:
      on_function_result(f, &fields);
      break;
    case OpKind::kSync:
      break;  // no statement record to carry it; ReadyForQuery follows
  }
  after_response();
}

bool Session::sync_pending() const {
  if (ops_.empty()) return false;
  const OpKind last = ops_.back().kind;
  return last != OpKind::kSync && last != OpKind::kQuery && last != OpKind::kFunctionCall;
}

void Session::on_ready(const Frame& f) {
  // A ReadyForQuery means the server saw our Sync, even if we did not.
  discard_until_sync_ = false;
  if (!f.body.empty()) transaction_status_ = f.body[0];
  auto end = std::find_if(ops_.begin(), ops_.end(), [](const Op& op) {
    return op.kind == OpKind::kSync || op.kind == OpKind::kQuery ||
           op.kind == OpKind::kFunctionCall;
  });
  if (end == ops_.end()) {
    if (ready_seen_) ++counters_.unmatched_responses;
    ready_seen_ = true;
    after_response();
    return;
  }
  ready_seen_ = true;
  ++end;
  for (auto it = ops_.begin(); it != end; ++it) {
    if (it->kind == OpKind::kExecute || it->kind == OpKind::kFunctionCall) {
      emit_unknown_outcome(execute_statement(*it), f.end_ns);
    } else if (it->kind == OpKind::kQuery) {
      finish_query(*it, f.end_ns, /*closing=*/false);
    }
  }
  // Keep one finished Query's buffers for the next Query; big ones go, so an
  // idle connection holds at most a few KB.
  for (auto it = ops_.begin(); it != end && !spare_query_; ++it) {
    if (it->query && it->query->text.capacity() <= kMaxSpareQueryBytes &&
        it->query->held.text.capacity() <= kMaxSpareQueryBytes) {
      spare_query_ = std::move(it->query);
    }
  }
  ops_.erase(ops_.begin(), end);
  after_response();
}

void Session::forget_deallocated(std::string_view tag, std::string_view text) {
  if (tag == "DEALLOCATE ALL" || tag == "DISCARD ALL") {
    prepared_.clear();
    prepared_bytes_ = 0;
    clear_portals();
  } else if (tag == "DEALLOCATE" && DeallocatedName(text, &key_)) {
    forget(key_);
  }
}

}  // namespace dbwarden::pgsql
