// SPDX-License-Identifier: Apache-2.0
//
// PostgreSQL v3 decoder for one connection: the public entry point. Feeds both
// directions into a Framer each and stitches the messages into one Statement
// per SQL statement the client ran.
//
// Message flow: https://www.postgresql.org/docs/15/protocol-flow.html
//
// What comes out, and when:
// - Simple Query 'Q': the string is split into statements (split.h); each
//   CommandComplete 'C' / EmptyQueryResponse 'I' completes the next one.
//   ErrorResponse 'E' completes the running one with its SQLSTATE and message;
//   later statements of that string never ran and produce no record.
//   The first statement starts at the Query's first byte; each later one at the
//   previous one's completion (when the server got to it).
//   Each record is held back until the next completion or ReadyForQuery, so
//   that if the server confirms fewer statements than we split (the splitter
//   cut where the server's grammar did not), the leftover text is appended to
//   the last confirmed record: every record is server-confirmed and no SQL
//   text is lost or invented. Completions beyond our pieces come out with
//   empty text (the server ran something we cannot name) and count as
//   `unmatched_responses`.
// - Extended protocol: Parse stores the text under its name (unnamed replaced
//   by each Parse; named until Close, DEALLOCATE or DISCARD ALL); Bind ties a
//   portal to a statement; each Execute gives one record, completed by
//   CommandComplete / EmptyQueryResponse / ErrorResponse / PortalSuspended
//   (rows so far). Its start is the first byte of the Parse/Bind/Describe/
//   Execute group. An error on Parse/Bind/Describe is reported on the next
//   Execute before Sync (the statement the client tried to run), or, with no
//   Execute, on a record for the failed Parse. Everything else up to Sync was
//   skipped by the server and gets no record.
// - Prepared before capture: an Execute whose portal's Bind, or whose
//   statement's Parse, was never seen (or not kept, see Limits) gives a
//   record with empty text, `statement_unresolved = true` and
//   `statement_name` = the statement's name (the portal's name when even the
//   Bind is unknown); counted in `unresolved_statements`. Never dropped.
// - Portals with a row limit: one record per Execute. An Execute that stops
//   at its limit ends with PortalSuspended and its record has the rows it
//   returned and no command tag; the next Execute of the portal is a new
//   record with the same text, name and parameters, and the last one carries
//   the CommandComplete tag. This matches the server, which logs and counts
//   each Execute (its tag counts only that Execute's rows).
// - Parameters: each Execute's record carries the values of the Bind that
//   made its portal (parameters.h); a FunctionCall's record carries its
//   arguments, with empty text and command tag "FUNCTION CALL <oid>".
// - COPY: CopyData in either direction is skipped by length (never kept or
//   taken for messages); the rows come from the "COPY n" tag.
// - NoticeResponse / NotificationResponse / ParameterStatus may arrive at any
//   time and never complete anything. CancelRequest (a connection of its own)
//   is counted in `cancel_requests`; the cancelled statement's record, on its
//   own connection, carries SQLSTATE 57014.
// - Outcome unknown: an Execute/statement still pending when ReadyForQuery
//   ends its cycle without a completion (lost in a capture gap) or when the
//   connection closes is emitted with `capture_gap = true` and
//   `status_code = ""` (empty, deliberately not "00000": we do not know that
//   it succeeded). Nothing the client sent is dropped silently.
// - Any gap or loss of framing marks the statements in flight, and those
//   whose requests follow a frontend gap up to the next Sync/Query, with
//   `capture_gap = true`.
// - Authentication ('p', 'R') and CancelRequest contents are never kept.
// - SSLRequest/GSSENCRequest answered 'S'/'G': `encrypted_connections`
//   counts it. After 'G' both directions are ignored. After 'S' the capture's
//   libssl probes may deliver the plaintext on the same stream: the session
//   decodes on if the client's next bytes start a StartupMessage (length,
//   first byte 0x00), and otherwise (a TLS record, first byte 0x14..0x17)
//   ignores the connection and counts `tls_not_captured`.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/pgsql/framer.h"
#include "protocol/pgsql/messages.h"
#include "protocol/pgsql/parameters.h"
#include "protocol/pgsql/split.h"
#include "protocol/statement.h"

namespace dbwarden::pgsql {

class Session final : private FrameHandler {
 public:
  // `info`, `sink` and `counters` must outlive the session.
  Session(ConnectionInfo& info, StatementSink& sink, const Limits& limits, Counters& counters);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() override;

  // Calls arrive in capture order (a request's bytes before its response's).
  void on_data(Direction dir, std::span<const uint8_t> bytes, uint64_t ts_ns);
  // After 'S': false (and both directions stopped) if `bytes` are ciphertext.
  bool tls_plaintext(Direction dir, std::span<const uint8_t> bytes);
  // `length` bytes of `dir` were not captured (known length).
  void on_gap(Direction dir, uint64_t length, uint64_t ts_ns);
  // `length` backend bytes were left out on purpose (the capture's bulk-data
  // bound). Rows come from the CommandComplete tag, so a statement whose
  // completion and ReadyForQuery are in the captured tail gets a normal
  // record; when the tail holds fewer or more completions than are awaited
  // (pipelined statements completed inside the skip), the cycle's statements
  // get records with `capture_gap` and no status, as for a loss. A
  // PortalSuspended after a skip has no exact row count: capture_gap.
  void on_skip(Direction dir, uint64_t length, uint64_t ts_ns);
  // Emits everything still pending (outcome unknown, see above).
  void on_close(uint64_t ts_ns);

  // For the enforcement proxy, which feeds a session exactly the bytes the client sent
  // and saw. True once the login is done and every request fed so far has its answer
  // (its last ReadyForQuery included), and the server's stream is between two messages: an
  // answer of the proxy's own goes next.
  bool idle() const { return ready_seen_ && ops_.empty() && backend_.at_message_boundary(); }
  // Extended-protocol messages were sent since the last Sync: the server holds their
  // answers until a Sync (or Flush) and would roll them back on an error.
  bool sync_pending() const;
  // The text of the prepared statement `name` ("" the unnamed one) as its Parse gave it, or
  // null when unknown (never seen, closed, or beyond the limits).
  const std::string* prepared_text(std::string_view name) const {
    auto it = prepared_.find(std::string(name));
    return it == prepared_.end() ? nullptr : &it->second->text;
  }
  // Its parameter type OIDs as its Parse gave them (0: unspecified), or null when unknown.
  const std::vector<uint32_t>* prepared_types(std::string_view name) const {
    auto it = prepared_.find(std::string(name));
    return it == prepared_.end() ? nullptr : &it->second->types;
  }
  // The text of the statement the server's next message answers: a simple Query's current
  // statement, or the prepared statement of the Execute or Describe being answered; empty
  // when there is none or it is unknown. For the proxy's masking, which asks before it
  // feeds that message (valid until the next on_data).
  std::string_view answering_text() const;
  // The transaction status of the last ReadyForQuery: 'I', 'T' or 'E'.
  uint8_t transaction_status() const { return transaction_status_; }
  // The backend's pid from BackendKeyData (0 before it): who serves the connection, for a
  // reader that cannot ask the kernel (the proxy; the capture knows it from the socket).
  uint32_t backend_pid() const { return backend_pid_; }

 private:
  struct Prepared {
    std::string text;
    bool truncated = false;
    std::vector<uint32_t> types;  // parameter type OIDs from the Parse (0 = unspecified)
  };
  struct Portal {
    std::string statement;
    std::shared_ptr<const ParameterValues> parameters;  // null: none kept
    size_t parameter_bytes = 0;  // charged to portal_parameter_bytes_
  };
  enum class OpKind : uint8_t {
    kQuery,
    kParse,
    kBind,
    kDescribe,
    kExecute,
    kClose,
    kSync,
    kFunctionCall
  };
  struct QueryState {
    std::string text;
    bool truncated = false;
    std::vector<SqlPiece> pieces;
    size_t next = 0;                 // next piece to complete
    uint64_t first_extra_bytes = 0;  // Query framing, charged to the first piece
    uint64_t last_end_ns = 0;
    bool failed = false;
    bool has_held = false;
    size_t held_piece = 0;
    Statement held;

    // Ready for the next Query, keeping the buffers' capacity (see spare_query_).
    void clear() {
      text.clear();
      truncated = false;
      pieces.clear();
      next = 0;
      first_extra_bytes = 0;
      last_end_ns = 0;
      failed = false;
      has_held = false;
      held_piece = 0;
      held.reset();
    }
  };
  // A frontend message that the backend will answer, in order.
  struct Op {
    OpKind kind = OpKind::kSync;
    bool gap = false;
    uint64_t start_ns = 0;
    uint64_t request_bytes = 0;
    std::shared_ptr<const Prepared> prepared;  // kParse, kExecute, kDescribe
    std::string statement_name;                // kParse, kExecute
    bool unresolved = false;                   // kExecute: its Parse (or Bind) was never seen
    std::shared_ptr<const ParameterValues> parameters;  // kExecute, kFunctionCall
    uint32_t function_oid = 0;                          // kFunctionCall
    std::unique_ptr<QueryState> query;                  // kQuery
  };

  void on_frame(Direction dir, const Frame& frame) override;
  void on_framing_lost(Direction dir) override;
  void on_anchored(Direction dir, std::span<const uint32_t> cycles,
                   uint64_t unframed_bytes) override;
  bool accept_anchor(Direction dir, std::span<const uint32_t> cycles) override;
  std::vector<uint32_t> awaited_cycles() const;
  void mark_gap(Direction dir);

  void on_startup(const Frame& f);
  void on_describe(const Frame& f, Op& op);
  void on_frontend(const Frame& f);
  void on_query(const Frame& f);
  void on_parse(const Frame& f);
  void on_bind(const Frame& f);
  void on_execute(const Frame& f);
  void on_close_message(const Frame& f);
  void on_function_call(const Frame& f);
  void on_function_result(const Frame& f, const ErrorFields* error);
  void erase_portal(const std::string& name);
  void clear_portals();
  void open_group(const Frame& f);
  Op& push(OpKind kind, const Frame& f);

  void on_backend(const Frame& f);
  void on_complete(const Frame& f, std::string_view tag, bool has_tag);
  void on_suspended(const Frame& f);
  void on_error(const Frame& f);
  void on_ready(const Frame& f);
  void pop_expected(OpKind kind);
  void discard_until_sync();
  void after_response();

  // Resets `s` and fills it with the record of piece `piece` of a Query.
  void piece_statement(const Op& op, size_t piece, Statement& s) const;
  Statement execute_statement(const Op& op) const;
  void complete_piece(Op& op, const Frame& f, std::string_view tag, bool has_tag);
  void finish_query(Op& op, uint64_t end_ns, bool closing);
  void emit_unknown_outcome(Statement s, uint64_t end_ns);
  void flush_held(QueryState& q);
  void emit(Statement& s);
  void forget_deallocated(std::string_view tag, std::string_view text);
  void remember(std::string_view name, std::shared_ptr<const Prepared> p);
  void forget(const std::string& name);

  ConnectionInfo& info_;
  StatementSink& sink_;
  const Limits limits_;
  Counters& counters_;
  Framer frontend_;
  Framer backend_;

  std::deque<Op> ops_;
  // The QueryState of the last finished Query, for the next one: with its
  // text, pieces and held record it is four heap blocks per Query otherwise.
  std::unique_ptr<QueryState> spare_query_;
  std::unordered_map<std::string, std::shared_ptr<const Prepared>> prepared_;
  size_t prepared_bytes_ = 0;
  std::unordered_map<std::string, Portal> portals_;
  size_t portal_parameter_bytes_ = 0;
  std::string key_;                                       // reused for map lookups

  bool ready_seen_ = false;          // first ReadyForQuery ends the startup phase
  uint8_t transaction_status_ = 'I';
  uint32_t backend_pid_ = 0;
  bool startup_seen_ = false;        // a StartupMessage (not a mid-stream join)
  bool tls_pending_ = false;         // 'S' seen: plaintext or ciphertext next?
  bool discard_until_sync_ = false;  // server is skipping to Sync after an error
  bool frontend_gap_ = false;        // frontend bytes lost since the last Sync/Query
  bool group_open_ = false;          // Parse/Bind/Describe seen since the last Execute
  uint64_t group_start_ns_ = 0;
  uint64_t group_bytes_ = 0;
  // An anchored chain (anchor.h) is being framed, up to its last ReadyForQuery:
  // its ParameterStatus may be row data (ignored); with the wrong completion
  // counts only its ReadyForQuery messages are taken.
  size_t anchored_readies_left_ = 0;
  bool anchored_mismatch_ = false;
  bool rows_inexact_ = false;          // DataRows were skipped since the last completion
  uint64_t rows_ = 0;            // DataRows since the last completion
  uint64_t response_bytes_ = 0;  // backend bytes since the last completion
};

}  // namespace dbwarden::pgsql
