// SPDX-License-Identifier: Apache-2.0
//
// PostgreSQL v3 through the proxy. Client messages are read with the decoder's own header
// readers (protocol/pgsql/messages.h); every byte the client sent and every byte it was
// sent, the server's and the proxy's own, also goes through one pgsql::Session, the
// observer's decoder, which writes the audit records and says when the server is idle.
//
// Per client message:
// - Startup phase: SSLRequest is answered 'S' when the proxy has a certificate (tls.h): the
//   connection then decrypts, and the relay goes on with the plaintext; without one, and
//   for GSSENCRequest always, 'N'. The server sees a plaintext connection: it never offers
//   SCRAM-SHA-256-PLUS (channel binding to the client's TLS cannot survive termination), so
//   a client's channel_binding=prefer goes on without it and =require stops. StartupMessage and
//   CancelRequest go to the server unchanged (the cancel key is the server's own: the
//   proxy keeps one upstream connection per client and rewrites no keys).
// - Query 'Q' and Parse 'P' are read whole (up to max_judged_bytes) and judged before any
//   byte of them is sent. Allowed: sent on. Blocked: held until the server has answered
//   everything before it (Session::idle), then answered by the proxy: ErrorResponse with
//   the rule's SQLSTATE and message, and ReadyForQuery with the server's transaction
//   status (Query; a multi-statement Query is recorded as its blocking statement, since none
//   of them ran), or for a Parse everything up to the next Sync is dropped (the server
//   would skip it after an error) and that Sync is answered ReadyForQuery. Nothing of the
//   blocked message reaches the server; the session goes on.
// - A require_approval verdict (approvals/broker.h): the whole message is held, none of it
//   sent, until the broker decides; later client messages wait behind it. Approved, it is
//   stepped again as if just sent (judged, its mask rules armed) and goes on; denied or
//   expired, it is answered as a blocked one with the request id and the reason. A JIT
//   grant lets it through at once. An approved or granted Parse covers the Binds of its
//   statement in the same Sync group; every later Bind of a prepared statement that needs
//   approval asks again (held_statements_).
// - Bind of a prepared statement judged under another policy (a reload since its Parse), or
//   never judged: its text is judged again, and a block is answered as for its Parse.
// - A Parse blocked after other extended-protocol messages of the same Sync group were
//   already sent cannot be answered in place without the server committing those on the
//   next Sync: the connection is ended with a FATAL error, so the server rolls them back.
// - Everything else streams through unchanged, its body never buffered whole.
//
// Masking (pg_relay_results.cc): a statement that mask rules apply to (its judge verdict
// names them) arms the server side. While armed, the server's messages are framed: a
// RowDescription sets the mask plan (mask_plan.h) of the statement the server is answering
// (the decoder's answering_text()), DataRows and the CopyData rows of a COPY TO STDOUT are
// rewritten value by value with their lengths, and each completion hands its counts to
// the statement's record. Unarmed, the server's bytes stream through untouched and only
// their message headers are followed (so that arming starts at a message boundary).
// - Bytes that are not PostgreSQL: the client gets a protocol_violation error and only
//   this connection is closed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "protocol/pgsql/session.h"
#include "protocol/statement.h"
#include "proxy/mask_plan.h"
#include "proxy/pg_catalog.h"
#include "proxy/pg_explain.h"
#include "proxy/relay_base.h"

namespace dbwarden::proxy {

struct PgProtocol {
  using Session = pgsql::Session;
  using Limits = pgsql::Limits;
  using Counters = pgsql::Counters;
  using StatementKey = std::string;  // the prepared statement's name
  static constexpr pgsql::Direction kFromClient = pgsql::Direction::kFrontend;
  static constexpr pgsql::Direction kFromServer = pgsql::Direction::kBackend;
  static constexpr Dialect kDialect = Dialect::kPostgresql;
};

class PgRelay final : public RelayBase<PgProtocol> {
 public:
  // `info`, `judge`, `records` and `counters` must outlive the relay.
  PgRelay(ConnectionInfo& info, Judge& judge, RecordSink& records,
          const pgsql::Limits& decoder_limits, const RelayLimits& limits,
          pgsql::Counters& counters);

  void on_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) override;
  void on_upstream_failed(std::string_view why, ByteBuffer& in, RelayOutput& out,
                          uint64_t now_ns) override;
  void on_close(uint64_t now_ns) override;
  // The catalog the relay traces result columns with (pg_catalog.h), shared by the
  // proxy's connections; null (the default): no tracing, every column of a statement that
  // names a masked table is masked (failing closed), and views are not followed.
  // `token` names this relay in the catalog's claims and wake-ups (take_woken(): the proxy
  // passes its connection; null: the relay itself).
  void set_catalog(PgCatalogCache* catalog, const void* token = nullptr) {
    catalog_ = catalog;
    token_ = token != nullptr ? token : this;
  }
  // The upstream server as the proxy names it (PgScopeKey): scopes of different servers are
  // never shared. Before the client's first byte.
  void set_server(std::string server) { server_ = std::move(server); }
  uint64_t own_server_bytes() const override { return lookup_bytes_; }
  bool cancel_approval(std::span<const uint8_t> key) override;

 private:
  bool step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) override;
  void release_held(RelayOutput& out, uint64_t now_ns) override;
  bool startup_packet(ByteBuffer& in, RelayOutput& out, uint64_t now_ns);
  bool judged_message(ByteBuffer& in, uint8_t type, uint32_t length, RelayOutput& out,
                      uint64_t now_ns);
  bool bind_message(ByteBuffer& in, uint32_t length, RelayOutput& out, uint64_t now_ns);
  // The whole message at the front of `in` was blocked (verdict_): hold it for the answer.
  bool block(ByteBuffer& in, size_t total, uint8_t type, RelayOutput& out, uint64_t now_ns);
  // The whole message at the front of `in` needs approval (verdict_): passed on under a
  // JIT grant, held for the broker, or blocked when there is none.
  bool approval(ByteBuffer& in, size_t total, uint8_t type, RelayOutput& out, uint64_t now_ns);
  // After judging prepared statement `name` (verdict_): whether its Binds must ask.
  void note_approval(const std::string& name);
  void deny_held(std::vector<uint8_t> message, RelayOutput& out, uint64_t now_ns) override;
  // Whether the held Parse (the first `total` bytes of `in`, judged into verdict_) waits for
  // its Bind, whose values its blast radius's EXPLAIN needs (pg_relay_explain.cc).
  bool awaiting_bind(const ByteBuffer& in, size_t total);
  // The blast radius's EXPLAIN (pg_relay_explain.cc), sent and answered as a lookup is.
  bool start_explain(std::string_view text, std::span<const uint8_t> message, const ByteBuffer& in,
                     RelayOutput& out, std::string& unavailable, ExplainJob& role) override;
  // A FATAL ErrorResponse, then the connection ends (see RelayBase::close_with).
  void fatal(std::string_view sqlstate, std::string_view message, bool recorded, RelayOutput& out,
             uint64_t now_ns);
  void end_connection(const Verdict& v, RelayOutput& out, uint64_t now_ns) {
    fatal(v.sqlstate, v.message, /*recorded=*/true, out, now_ns);
  }
  void protocol_error(const char* what, RelayOutput& out, uint64_t now_ns);

  // Masking (pg_relay_results.cc).
  struct MaskEntry {
    std::shared_ptr<const policy::Policy> policy;
    std::vector<const policy::MaskRule*> rules;
    StatementOrigins origins;
    bool traced = false;  // origins from the lineage tracer (else from the named tables)
  };
  struct ResultColumn {
    uint32_t type_oid = 0;
    int16_t format = 0;
    masking::Column mask;
  };
  // After judge(): remembers the mask rules of each statement of verdict_ and arms the
  // server side; a statement whose plan blocks becomes the decisive block. True when it
  // sent a catalog lookup instead, or waits for the server to go idle to send one (only
  // with `out`): the message stays in the input and is judged again afterwards.
  bool note_masks(RelayOutput* out, uint64_t now_ns);
  // `s`, refused by its mask plan, becomes a block (and the decisive one).
  void block_masked(JudgedStatement& s);
  // Arms for the results of `text` (a prepared statement being bound or described) if
  // mask rules apply to it.
  void arm_for(std::string_view text);
  // A statement's mask rules, judged again when forgotten; null: none apply.
  const MaskEntry* masks_for(std::string_view text);
  void on_server_framed(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns);
  // One whole server message: in the current read (`in_read`), or gathered in srv_message_.
  void server_message(std::span<const uint8_t> message, bool in_read, RelayOutput& out,
                      uint64_t now_ns);
  void row_description(std::span<const uint8_t> body);
  // A DataRow with no RowDescription in this result: the plan from the statement alone.
  void undescribed_rows(std::span<const uint8_t> body);
  void copy_out_response(std::span<const uint8_t> body);
  // kRewritten: the rewritten DataRow / CopyData is in row_.
  enum class Rewrite : uint8_t { kUnchanged, kRewritten, kMalformed };
  Rewrite rewrite_data_row(std::span<const uint8_t> body);
  Rewrite rewrite_copy_row(std::span<const uint8_t> body);
  void forward_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns);
  // Framed results leave in batches (srv_pieces_), one send per read rather than per row;
  // flushed before anything that reads the decoder's state, and at the end of each read
  // (so a piece that lies in the read, `in_read`, is never kept past it). Unchanged
  // stretches of the read are queued where they lie; other bytes (rewritten rows, messages
  // gathered across reads) are copied to srv_own_.
  void queue_server(std::span<const uint8_t> bytes, bool in_read, RelayOutput& out,
                    uint64_t now_ns);
  void flush_server(RelayOutput& out, uint64_t now_ns);
  static constexpr size_t kServerBatch = 64 * 1024;
  void finish_statement();

  // Column lineage (pg_relay_lineage.cc).
  enum class Trace : uint8_t {
    kUntouched,  // no rule can touch its results: they stream through
    kTraced,     // `origins` from the tracer
    kUntraced,   // `origins` from the named tables, failing closed
    kLookup,     // the catalog lacks names (now in wanted_)
  };
  Trace trace(const JudgedStatement& s, const policy::Policy& policy, StatementOrigins& origins,
              uint64_t now_ns);
  // Origins when the tracer cannot answer: every column unknown, and what it may read.
  StatementOrigins untraced_origins(const JudgedStatement& s);
  PgCatalogCache::Scope* scope(uint64_t now_ns);
  // Catalog bookkeeping for a message that goes on (DDL, search_path changes).
  void catalog_watch(std::span<const JudgedStatement> statements);
  // The transaction that ran DDL has ended: the catalog is forgotten (again).
  void catalog_settle();
  // Whether the next lookup should also ask for the scope's reach set (pg_catalog.h): the
  // policy has `columns` rules and the scope's set is unknown or half its TTL old, and no
  // other connection is asking for it (kWait: wait for that one's answer instead).
  enum class ReachNeed : uint8_t { kNone, kAsk, kWait };
  ReachNeed reach_need(uint64_t now_ns);
  // The policy's reach patterns and their tag (PgScopeKey), kept current.
  void reach_policy();
  // A new session takes the scope an earlier one of the same start learnt (pg_catalog.h).
  void adopt_start_scope(uint64_t now_ns);
  // The scope the session is in, as a lookup said it ("": unknown).
  void set_scope(std::string_view scope);
  enum class LookupChance : uint8_t { kNow, kWait, kNever };
  LookupChance lookup_chance() const;
  void start_lookup(RelayOutput& out, bool reach);
  // Server bytes while the lookup's answer comes; returns those after its end.
  std::span<const uint8_t> lookup_answer(std::span<const uint8_t> bytes, RelayOutput& out,
                                         uint64_t now_ns);
  // RowDescription's table OIDs and attribute numbers against the lineage: a column of a
  // known table gets it as a source, one of an unknown table becomes unknown.
  void confirm_origins(std::span<const uint8_t> body, StatementOrigins& origins, uint64_t now_ns);
  // The lookup's answer ended: the catalog learns what it said.
  void lookup_done(uint64_t now_ns);
  std::unordered_map<std::string, MaskEntry> masks_;  // by statement text, bounded
  bool armed_ = false;
  // Server-side framing: body bytes of the current message still to pass, a header cut
  // between reads, a message gathered whole for inspection.
  uint64_t srv_left_ = 0;
  uint8_t srv_header_[pgsql::kTypedHeaderSize] = {};
  size_t srv_header_n_ = 0;
  std::vector<uint8_t> srv_message_;
  bool srv_gather_ = false;
  // The result being answered: its plan (null: untouched) and its columns.
  std::optional<MaskPlan> plan_;
  std::vector<ResultColumn> columns_;
  bool copy_csv_ = false;
  bool copy_binary_ = false;
  bool described_ = false;  // a RowDescription or CopyOutResponse began this result
  MaskTally tally_;
  MaskTallies tallies_;
  std::vector<uint8_t> row_;
  // Queued for the client and the decoder (queue_server): pieces in the current read
  // (`at`) or in srv_own_ (`at` null: from `off`), in order, contiguous ones joined.
  struct Piece {
    const uint8_t* at = nullptr;
    size_t off = 0;
    size_t len = 0;
  };
  std::vector<Piece> srv_pieces_;
  std::vector<uint8_t> srv_own_;
  size_t srv_queued_ = 0;                            // bytes in srv_pieces_
  std::vector<std::span<const uint8_t>> srv_spans_;  // flush_server's scratch
  std::string value_;

  bool startup_ = true;                 // untyped startup-phase packets until StartupMessage
  uint64_t stream_left_ = 0;            // body bytes of the current streamed message still to pass
  bool stream_drop_ = false;            // ...dropped instead (skipping to Sync after a block)
  bool skip_to_sync_ = false;           // a blocked Parse: drop client messages up to Sync
  std::vector<uint8_t> held_reply_;     // the proxy's answer to the held message
  std::vector<uint8_t> session_error_;  // a blocked group's error, for the decoder at Sync
  bool held_is_query_ = false;
  std::string name_;  // reused for lookups

  PgCatalogCache* catalog_ = nullptr;
  const void* token_ = nullptr;
  std::string server_;
  // The session's start (PgStartKey) and its claim key; pristine_ until a client message
  // past the authentication reached the server (then the session may be elsewhere).
  std::string start_key_, start_claim_;
  bool pristine_ = true;
  bool lookup_pristine_ = false;  // the lookup under way was sent while pristine_
  bool waiting_reach_ = false;    // for another connection's lookup (PgCatalogCache::wait)
  bool reach_waited_ = false;     // ... once already for this want: it asks itself next
  std::string scope_raw_;         // the session's scope as its last lookup said; "": unknown
  std::string scope_key_;         // ... as the cache's key (PgScopeKey)
  PgCatalogCache::Scope* scope_ = nullptr;
  uint64_t scope_generation_ = 0;
  PgCatalogLookup lookup_;
  bool looking_up_ = false;  // the server is answering the proxy's lookup
  PgExplainLookup explain_;  // ... the blast radius's EXPLAIN, when explain_lookup_
  bool explain_lookup_ = false;
  std::vector<uint8_t> lookup_buf_;   // its answer's current message
  std::vector<PgLookupName> wanted_;  // names to look up at the next chance (bounded)
  uint32_t lookup_rounds_ = 0;        // lookups for the message at the front of the input
  uint64_t lookup_bytes_ = 0;
  bool ddl_in_transaction_ = false;  // DDL relayed: the catalog is forgotten again at its end
  // The reach set: the policy's patterns, and the last lookup that asked for it.
  std::shared_ptr<const policy::Policy> reach_policy_;
  std::vector<ReachPattern> reach_patterns_;
  std::string reach_tag_;
  bool reach_asked_ = false;  // by the lookup under way
  uint64_t reach_tried_ns_ = 0;
  uint64_t reach_tried_generation_ = 0;
  std::string reach_tried_key_;
  uint64_t now_ns_ = 0;  // the latest event's time
  // A Bind of a statement an SQL PREPARE made: what it runs, and the EXECUTE it is judged as.
  SqlPrepared::Entry sql_entry_;
  std::string sql_execute_;
  // Prepared statements whose last judgment needed approval: each Bind asks (bounded).
  std::unordered_set<std::string> held_statements_;
  // The current Sync group's approval ("approved:ID", "granted"): its Binds of held
  // statements go on under it; empty outside one.
  std::string group_pass_;
  std::string group_text_;  // the statement it approved
  // BackendKeyData's pid and key, read from the server's stream (unarmed path) at login:
  // a CancelRequest carrying it withdraws a held statement of this connection.
  std::vector<uint8_t> backend_key_;
  size_t key_left_ = 0;
};

}  // namespace dbwarden::proxy
