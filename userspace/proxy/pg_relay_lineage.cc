// SPDX-License-Identifier: Apache-2.0
//
// PgRelay's column lineage: each masked statement is traced (sql/lineage.h) against the
// catalog the proxy shares between its connections (pg_catalog.h), which the relay fills
// with lookups of its own on the client's session:
// - only while that session is idle outside a transaction (ReadyForQuery 'I', nothing of
//   an extended-protocol group sent): a Query or a Parse that opens a group waits for the
//   server to answer what is before it, then the lookup goes, and the message is judged
//   again once its answer is in; never for a Bind (between Parse and Execute), never
//   inside a transaction block: there the statement fails closed, and the names it lacked
//   are looked up before the client's next message that finds the session idle;
// - the lookup's bytes and its answer reach neither the client nor the decoder (so no
//   record), except ParameterStatus and notifications, which are the client's;
// - a few rounds per message at most (a view names tables the next round finds).
// Statements no rule can touch are remembered per scope by fingerprint and the rules that
// applied: the next ones cost one hash lookup.
#include <algorithm>

#include "protocol/pgsql/messages.h"
#include "proxy/pg_relay.h"

namespace dbwarden::proxy {

namespace {

constexpr uint32_t kMaxLookupRounds = 4;
// A message of the lookup's answer larger than this ends the connection (its framing
// could not be kept otherwise); a view definition is cut far below it (pg_catalog.h).
constexpr uint32_t kMaxLookupMessage = 16u << 20;

uint64_t RulesKey(uint64_t fingerprint, std::span<const policy::MaskRule* const> rules) {
  uint64_t h = fingerprint;
  for (const policy::MaskRule* r : rules) {
    h = (h ^ static_cast<uint64_t>(reinterpret_cast<uintptr_t>(r))) * 0x9E3779B97F4A7C15ull;
  }
  return h;
}

std::string_view Unquoted(std::string_view part, bool* quoted) {
  *quoted = part.size() >= 2 && part.front() == '"' && part.back() == '"';
  return *quoted ? part.substr(1, part.size() - 2) : part;
}

std::string Folded(std::string_view part) {
  bool quoted = false;
  const std::string_view bare = Unquoted(part, &quoted);
  std::string out(bare);
  if (!quoted) {
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

PgCatalogCache::Scope* PgRelay::scope(uint64_t now_ns) {
  if (catalog_ == nullptr || scope_key_.empty()) return nullptr;
  if (scope_ != nullptr && scope_generation_ == catalog_->generation() &&
      now_ns - scope_->created_ns() < catalog_->limits().ttl_ns) {
    scope_->note_used(now_ns);
    return scope_;
  }
  scope_ = catalog_->find(scope_key_, now_ns);
  scope_generation_ = catalog_->generation();
  return scope_;
}

void PgRelay::catalog_settle() {
  if (catalog_ == nullptr) return;
  if (ddl_in_transaction_ && session_.idle() && session_.transaction_status() == 'I') {
    // The transaction that ran DDL has ended: what other sessions looked up meanwhile
    // may be the old state. Before this message's lookup, not after: that one is new.
    catalog_->invalidate();
    ddl_in_transaction_ = false;
  }
}

void PgRelay::catalog_watch(std::span<const JudgedStatement> statements) {
  if (catalog_ == nullptr) return;
  catalog_settle();
  uint8_t effects = 0;
  for (const JudgedStatement& s : statements) effects |= PgCatalogEffects(s.text);
  if (effects == 0) return;
  // The message was traced against the catalog before it runs (CREATE TABLE AS reads the
  // tables as they are); what it changes is forgotten now that it goes.
  if ((effects & kPgCatalogChange) != 0 ||
      ((effects & kPgTransactionEnd) != 0 && ddl_in_transaction_)) {
    catalog_->invalidate();
    ddl_in_transaction_ = true;
  }
  if ((effects & kPgScopeChange) != 0) {
    set_scope("");  // the next lookup says where the session is
    pristine_ = false;
  }
}

PgRelay::Trace PgRelay::trace(const JudgedStatement& s, const policy::Policy& policy,
                              StatementOrigins& origins, uint64_t now_ns) {
  const bool view_only = s.masks.empty();
  if (view_only && (s.view_masks.empty() || catalog_ == nullptr)) return Trace::kUntouched;
  if (catalog_ == nullptr) return Trace::kUntraced;
  const std::vector<const policy::MaskRule*>& rules = view_only ? s.view_masks : s.masks;
  PgCatalogCache::Scope* sc = scope(now_ns);
  const uint64_t key = s.fingerprint != 0 ? RulesKey(s.fingerprint, rules) : 0;
  if (sc != nullptr && key != 0 && sc->untouched(key)) return Trace::kUntouched;
  PgScopeCatalog catalog(sc);
  const sql::Lineage lineage = sql::trace_pg_lineage(std::string(s.text), catalog);
  const auto want = [&](const std::vector<PgLookupName>& names) {
    for (const PgLookupName& n : names) {
      if (wanted_.size() >= PgCatalogLookup::kMaxNames) break;
      if (std::find(wanted_.begin(), wanted_.end(), n) == wanted_.end()) wanted_.push_back(n);
    }
  };
  if (!catalog.missing().empty()) {
    want(catalog.missing());
    return Trace::kLookup;
  }
  if (!lineage.traced && !catalog.outside().empty()) {
    // Relations outside the reach set: they hold no masked column and no view over one.
    // Where no lookup can go (inside a transaction block) and nothing else the statement
    // names can read one either, no column rule touches its results (content rules still
    // scan them): psycopg2's count(*) of an unmasked table came back masked, 0, before.
    // Where a lookup can go, it does: its answer is exact and as new as the statement,
    // while the reach set may be up to a TTL old (DDL on a path the proxy does not steer).
    // Else inside a transaction it fails closed.
    if (lookup_chance() != LookupChance::kNever || !PgOutsideReach(s.text, *sc)) {
      want(catalog.outside());
      return Trace::kLookup;
    }
    origins = StatementOrigins{};  // every column unknown, and it reads nothing masked
  } else {
    if (!lineage.traced) return Trace::kUntraced;
    origins = origins_from_lineage(lineage);
  }
  const MaskPlan plan =
      build_mask_plan(rules, policy, origins, std::max<size_t>(origins.columns.size(), 1));
  if (plan.empty() && !plan.blocked()) {
    if (sc != nullptr && key != 0) sc->set_untouched(key);
    return Trace::kUntouched;
  }
  return Trace::kTraced;
}

StatementOrigins PgRelay::untraced_origins(const JudgedStatement& s) {
  StatementOrigins o = origins_from_tables(s.tables);
  if (s.masks.empty()) {
    o.reads_unknown = true;  // a view among its relations may read anything
    return o;
  }
  // A named relation the catalog does not know as a table may be a view over another
  // masked table: the statement may read anything.
  PgCatalogCache::Scope* sc = catalog_ != nullptr ? scope(now_ns_) : nullptr;
  if (catalog_ == nullptr) return o;
  for (const std::string& t : s.tables) {
    const std::string_view name(t);
    const size_t dot = name.rfind('.');
    const std::string schema = dot == std::string_view::npos ? "" : Folded(name.substr(0, dot));
    const std::string table = Folded(dot == std::string_view::npos ? name : name.substr(dot + 1));
    const std::shared_ptr<const PgRelation>* rel =
        sc != nullptr ? sc->relation(schema, table) : nullptr;
    if (rel == nullptr || *rel == nullptr || (*rel)->is_view) {
      o.reads_unknown = true;
      break;
    }
  }
  return o;
}

PgRelay::LookupChance PgRelay::lookup_chance() const {
  if (catalog_ == nullptr || looking_up_ || holding_ || skip_to_sync_ || closing_ ||
      lookup_rounds_ >= kMaxLookupRounds || session_.sync_pending()) {
    return LookupChance::kNever;
  }
  if (!session_.idle()) return LookupChance::kWait;  // answers still due: the next is ours
  return session_.transaction_status() == 'I' ? LookupChance::kNow : LookupChance::kNever;
}

void PgRelay::set_scope(std::string_view scope) {
  scope_raw_.assign(scope);
  scope_key_ = scope_raw_.empty() ? std::string() : PgScopeKey(server_, scope_raw_, reach_tag_);
  scope_ = nullptr;
}

void PgRelay::reach_policy() {
  if (reach_policy_ == verdict_.policy) return;
  reach_policy_ = verdict_.policy;
  std::vector<ReachPattern> patterns = ReachPatterns(*reach_policy_);
  if (patterns == reach_patterns_) return;
  reach_patterns_ = std::move(patterns);
  reach_tag_ = ReachTag(reach_patterns_);
  set_scope(scope_raw_);  // a set made for other columns is another scope's
}

void PgRelay::adopt_start_scope(uint64_t now_ns) {
  if (catalog_ == nullptr || !verdict_.policy || !scope_key_.empty() || !pristine_ ||
      start_key_.empty()) {
    return;
  }
  reach_policy();
  uint64_t age = 0;
  const std::string* raw = catalog_->start_scope(start_key_, now_ns, &age);
  if (raw == nullptr) return;
  // Under half the TTL old, as a reach set is; older (but within the TTL), while another
  // connection asks again for this start or for that scope (it renews them).
  const uint64_t half_ttl = catalog_->limits().ttl_ns / 2;
  if (age >= half_ttl && !catalog_->claimed_by_other(start_claim_, token_) &&
      !catalog_->claimed_by_other(PgScopeKey(server_, *raw, reach_tag_), token_)) {
    return;
  }
  set_scope(*raw);
  // A new connection with a fresh reach set, and no query (one being renewed by another
  // connection is counted by reach_need).
  const PgCatalogCache::Scope* sc = scope(now_ns);
  if (!reach_patterns_.empty() && sc != nullptr && sc->reach_known() &&
      now_ns - sc->created_ns() < half_ttl) {
    catalog_->count_hit();
  }
}

PgRelay::ReachNeed PgRelay::reach_need(uint64_t now_ns) {
  if (catalog_ == nullptr || !verdict_.policy) return ReachNeed::kNone;
  reach_policy();
  if (reach_patterns_.empty()) return ReachNeed::kNone;
  // Renewed at half the TTL, so that a transaction block that begins on a known reach set
  // keeps it for at least that long.
  const uint64_t half_ttl = catalog_->limits().ttl_ns / 2;
  const PgCatalogCache::Scope* sc = scope(now_ns);
  if (sc != nullptr && sc->reach_known() && now_ns - sc->created_ns() < half_ttl) {
    reach_waited_ = false;
    return ReachNeed::kNone;
  }
  // Asked for this scope already and the catalog has not changed since: not again before
  // half a TTL (an answer without it, a refused lookup, a set past its bounds).
  if (reach_tried_ns_ != 0 && reach_tried_generation_ == catalog_->generation() &&
      reach_tried_key_ == scope_key_ && now_ns - reach_tried_ns_ < half_ttl) {
    return ReachNeed::kNone;
  }
  // Another connection asks for this scope's set (or, before this session knows its scope,
  // for a fresh session of its start): the set it renews is still within its TTL (scope()
  // says so), else this one waits for its answer, once.
  const bool other = !scope_key_.empty()
                         ? catalog_->claimed_by_other(scope_key_, token_)
                         : pristine_ && catalog_->claimed_by_other(start_claim_, token_);
  if (other) {
    if (sc != nullptr && sc->reach_known()) {
      catalog_->count_hit();
      return ReachNeed::kNone;
    }
    if (!reach_waited_) return ReachNeed::kWait;
  }
  return ReachNeed::kAsk;
}

void PgRelay::start_lookup(RelayOutput& out, bool reach) {
  scratch_.clear();
  reach_asked_ = reach;
  if (reach) {
    catalog_->count_miss();
    // One lookup of a set in flight: others of the scope, or fresh sessions of this start,
    // wait for it or keep the set they have (reach_need).
    if (!scope_key_.empty()) catalog_->claim(scope_key_, token_);
    if (pristine_ && !start_claim_.empty()) catalog_->claim(start_claim_, token_);
  }
  lookup_pristine_ = pristine_;
  lookup_.query(wanted_, scratch_,
                reach_asked_ ? std::span<const ReachPattern>(reach_patterns_)
                             : std::span<const ReachPattern>());
  wanted_.clear();
  ++lookup_rounds_;
  looking_up_ = true;
  lookup_buf_.clear();
  lookup_bytes_ += scratch_.size();
  out.to_server(scratch_);  // not to the decoder: no record of it
}

std::span<const uint8_t> PgRelay::lookup_answer(std::span<const uint8_t> bytes, RelayOutput& out,
                                                uint64_t now_ns) {
  size_t pos = 0;
  while (pos < bytes.size() && looking_up_) {
    const auto take = [&](size_t upto) {
      const size_t n = std::min(upto - lookup_buf_.size(), bytes.size() - pos);
      lookup_buf_.insert(lookup_buf_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                         bytes.begin() + static_cast<std::ptrdiff_t>(pos + n));
      pos += n;
    };
    if (lookup_buf_.size() < pgsql::kTypedHeaderSize) {
      take(pgsql::kTypedHeaderSize);
      if (lookup_buf_.size() < pgsql::kTypedHeaderSize) continue;
    }
    const uint32_t length = pgsql::ReadBe32(lookup_buf_.data() + 1);
    if (length < 4 || length > kMaxLookupMessage) {
      looking_up_ = false;
      fatal("08P01", "dbwarden: the server's answer to the proxy's catalog lookup is invalid",
            /*recorded=*/false, out, now_ns);
      return {};
    }
    take(1 + size_t{length});
    if (lookup_buf_.size() < 1 + size_t{length}) continue;
    bool forward = false;
    const auto body = std::span<const uint8_t>(lookup_buf_).subspan(pgsql::kTypedHeaderSize);
    // The blast radius's EXPLAIN (pg_explain.h) is framed here too.
    const bool ended = explain_lookup_ ? explain_.on_message(lookup_buf_[0], body, &forward)
                                       : lookup_.on_message(lookup_buf_[0], body, &forward) !=
                                             PgCatalogLookup::State::kRunning;
    if (forward) forward_server(lookup_buf_, out, now_ns);
    lookup_buf_.clear();
    if (ended) {
      looking_up_ = false;
      if (explain_lookup_) {
        explain_lookup_ = false;
        explained(explain_.result(), out, now_ns);
      } else {
        lookup_done(now_ns);
      }
    }
  }
  return bytes.subspan(pos);
}

void PgRelay::lookup_done(uint64_t now_ns) {
  if (reach_asked_) reach_tried_ns_ = now_ns;
  // Those waiting for this answer look again once it is in the cache (the proxy drives
  // them after this read).
  catalog_->release(token_);
  if (lookup_.state() != PgCatalogLookup::State::kDone) {
    // Refused (an error: nothing of it is kept): no more rounds for this message, which
    // fails closed.
    lookup_rounds_ = kMaxLookupRounds;
    reach_tried_generation_ = catalog_->generation();
    reach_tried_key_ = scope_key_;
    return;
  }
  set_scope(lookup_.scope_key());
  // Where a fresh session of this start lands, when this one asked before anything of its
  // client's ran and the server says it is still at its start, as its startup user.
  if (lookup_pristine_ && lookup_.at_start() && lookup_.session_user() == info_.user &&
      !PgScopeHasTemp(scope_raw_)) {
    catalog_->learn_start(start_key_, scope_raw_, now_ns);
  }
  // A reach set replaces an old scope whole: what it knew is as old as its reach set.
  const PgCatalogCache::Scope* old = catalog_->find(scope_key_, now_ns);
  const bool renew = lookup_.reach_listed() && old != nullptr &&
                     now_ns - old->created_ns() >= catalog_->limits().ttl_ns / 2;
  PgCatalogCache::Scope& sc =
      renew ? catalog_->renew(scope_key_, now_ns) : catalog_->get(scope_key_, now_ns);
  lookup_.fill(sc, catalog_->limits().max_view_definition);
  scope_ = &sc;
  scope_generation_ = catalog_->generation();
  if (reach_asked_) {
    reach_tried_generation_ = catalog_->generation();
    reach_tried_key_ = scope_key_;
  }
}

void PgRelay::confirm_origins(std::span<const uint8_t> body, StatementOrigins& origins,
                              uint64_t now_ns) {
  if (body.size() < 2) return;
  const size_t n = static_cast<size_t>((body[0] << 8) | body[1]);
  if (n != origins.columns.size()) {
    origins.columns.clear();  // not the traced shape: every column unknown
    return;
  }
  PgCatalogCache::Scope* sc = scope(now_ns);
  size_t pos = 2;
  for (size_t i = 0; i < n; ++i) {
    // name, then table OID (Int32), attribute number (Int16), and 12 more bytes.
    const auto nul = std::find(body.begin() + static_cast<std::ptrdiff_t>(pos), body.end(), 0);
    if (nul == body.end()) return;
    pos = static_cast<size_t>(nul - body.begin()) + 1;
    if (body.size() - pos < 18) return;
    const uint32_t oid = pgsql::ReadBe32(body.data() + pos);
    const auto attnum = static_cast<int16_t>((body[pos + 4] << 8) | body[pos + 5]);
    pos += 18;
    if (oid == 0) continue;  // not a plain column: the lineage says what it is
    ColumnOrigin& c = origins.columns[i];
    const PgRelation* rel = sc != nullptr ? sc->by_oid(oid) : nullptr;
    if (rel == nullptr) {
      c.kind = ColumnOrigin::Kind::kUnknown;  // a relation the trace did not see
      continue;
    }
    if (rel->is_view) continue;  // the view's column: traced through its definition
    const auto at = std::find(rel->attnums.begin(), rel->attnums.end(), attnum);
    if (at == rel->attnums.end()) {
      c.kind = ColumnOrigin::Kind::kUnknown;
      continue;
    }
    SourceRef ref{rel->schema, rel->name,
                  rel->columns[static_cast<size_t>(at - rel->attnums.begin())]};
    const bool have = std::any_of(c.sources.begin(), c.sources.end(), [&](const SourceRef& r) {
      return r.schema == ref.schema && r.table == ref.table && r.column == ref.column;
    });
    if (!have) c.sources.push_back(std::move(ref));
  }
}

}  // namespace dbwarden::proxy
