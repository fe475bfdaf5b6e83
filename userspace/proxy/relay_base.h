// SPDX-License-Identifier: Apache-2.0
//
// What the PostgreSQL and the MySQL relays (pg_relay.h, mysql_relay.h) share: the judge
// asked once per SQL message with its verdicts kept for the records, the decoder session
// that sees every byte either way, the generation each prepared statement was judged under,
// a blocked message held until the server is idle, and the end of a connection with the
// protocol's fatal error. `P` names the protocol's session and decoder types, its two
// directions, its dialect and how it names a prepared statement.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "approvals/broker.h"
#include "protocol/statement.h"
#include "proxy/annotator.h"
#include "proxy/byte_buffer.h"
#include "proxy/decision_log.h"
#include "proxy/explain_estimate.h"
#include "proxy/explain_worker.h"
#include "proxy/judge.h"
#include "proxy/relay.h"
#include "sql/redact.h"

namespace dbwarden::proxy {

struct RelayLimits {
  // Query/Parse messages up to this size are read whole and judged; a larger one is judged
  // as unparsed (the policy's on_unparsed decides).
  size_t max_judged_bytes = (1u << 20) + 4096;
  // A result message (row) that masking must rewrite is held whole up to this size; a
  // larger one ends the connection rather than leave unmasked.
  size_t max_masked_message_bytes = 64u << 20;
};

// Who is asking, as a reviewer sees it: the connection's whole identity chain.
inline approvals::Requester requester_of(const ConnectionInfo& c) {
  approvals::Requester w;
  w.db_user = c.user;
  w.database = c.database;
  w.application_name = c.application_name;
  w.client_address = c.client_address;
  w.client_port = c.client_port;
  if (c.peer.pid != 0) {
    w.pid = c.peer.pid;
    w.uid = c.peer.uid;
    w.executable = c.peer.executable;
    w.user_name = c.peer.user_name;
    w.command = c.peer.command;
    w.unit = c.peer.systemd_unit;
    w.container = c.peer.container_id;
    if (c.peer.login_uid) {
      w.login_uid = *c.peer.login_uid;
      w.login_user = c.peer.login_user;
    }
  }
  return w;
}

// Between the records' annotator and the agent's sink: a statement an approval released
// (action "approved:ID") or a JIT grant let through ("granted") also leaves an approval
// record with its real outcome (rows, status) once it completed.
class ApprovalOutcomes final : public RecordSink {
 public:
  explicit ApprovalOutcomes(RecordSink& next) : next_(next) {}
  void on_record(const Statement& statement, std::string_view rule, std::string_view action,
                 const MaskTally* masks) override {
    next_.on_record(statement, rule, action, masks);
    if (broker == nullptr || statement.connection == nullptr) return;
    approvals::Event e;
    constexpr std::string_view kApproved = "approved:";
    if (action.starts_with(kApproved)) {
      e.kind = "executed";
      e.id = std::strtoull(std::string(action.substr(kApproved.size())).c_str(), nullptr, 10);
    } else if (action == "granted") {
      e.kind = "grant_used";
      e.id = grant_id;
    } else {
      return;
    }
    approvals::RequestSpec spec;
    spec.rule.assign(rule);
    spec.who = requester_of(*statement.connection);
    e.rule = spec.rule;
    e.request = &spec;
    if (statement.returned_rows) e.rows = static_cast<int64_t>(*statement.returned_rows);
    e.status_code = statement.status_code;
    broker->record(e);
  }

  approvals::Broker* broker = nullptr;
  uint64_t grant_id = 0;  // the request whose JIT grant let the last granted message through

 private:
  RecordSink& next_;
};

template <class P>
class RelayBase : public Relay {
 public:
  void on_client(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) final {
    // An approved message goes first: it came before anything the client sent since.
    step_released(out, now_ns);
    bool more = true;
    while (more && released_.empty() && stepping() && !in.empty()) {
      more = step(in, out, now_ns);
    }
  }
  bool wants_client_bytes() const final {
    return !holding_ && !closing_ && request_ == 0 && !explaining_;
  }
  uint64_t blocked_messages() const { return blocked_; }
  // Statements a require_approval rule holds go to `broker` (null: they are blocked).
  void set_approvals(approvals::Broker* broker) {
    broker_ = broker;
    outcomes_.broker = broker;
  }
  // Before a held data-changing statement's request goes to the broker, its blast radius is
  // estimated by an EXPLAIN on the client's own session (explain_estimate.h); off: requests
  // carry none.
  void set_blast_radius(bool on) { blast_radius_ = on; }
  // When the client's session cannot run that EXPLAIN (inside a transaction, busy), the
  // agent's own connection as a configured role runs it (explain_worker.h); null: none.
  void set_explain_worker(ExplainWorker* worker) { worker_ = worker; }
  bool on_role_explained(uint64_t ticket, const BlastEstimate& e, RelayOutput& out,
                         uint64_t now_ns) final {
    if (!explaining_ || role_ticket_ == 0 || ticket != role_ticket_) return false;
    role_ticket_ = 0;
    explained(e, out, now_ns, BlastViaRole(worker_->role(P::kDialect == Dialect::kMysql)));
    return true;
  }
  // While the EXPLAIN runs the client is read too, so that one that goes away is noticed.
  bool awaiting_approval() const final { return request_ != 0 || explaining_; }
  void on_upstream_closed() final {
    // The client is told if it is still there when the broker's wake-up comes back.
    cancel_held("the server ended the connection", /*end_connection=*/true);
  }
  void on_approval_decided(RelayOutput& out, uint64_t now_ns) final {
    if (request_ == 0) return;
    std::string reason;
    const auto state = broker_->state(request_, &reason);
    if (state == approvals::State::kPending) return;
    const uint64_t id = request_;
    request_ = 0;
    broker_->forget(id);
    std::vector<uint8_t> message = std::move(approval_held_);
    approval_held_.clear();
    if (state == approvals::State::kApproved) {
      // Stepped again as if just sent: judged by the policy in force now (a reload that
      // blocks it since blocks it), its mask rules armed and its results masked exactly as
      // an unheld statement's; ask_approval() lets it through as approved.
      released_.append(message);
      approved_id_ = id;
      step_released(out, now_ns);
      return;
    }
    const std::string_view what = state ? approvals::state_name(*state) : "withdrawn";
    Verdict& v = verdict_.decisive;
    const bool end_connection = cancel_ends_connection_;
    if (canceled_) {
      // The client's own cancel: answered as the server answers one.
      canceled_ = false;
      cancel_ends_connection_ = false;
      reason = std::move(cancel_reason_);
      cancel_reason_.clear();
      // PostgreSQL query_canceled; MySQL ER_QUERY_INTERRUPTED, or ER_CONNECTION_KILLED for
      // a KILL CONNECTION.
      v.sqlstate = P::kDialect == Dialect::kMysql ? "70100" : "57014";
      v.mysql_errno = end_connection ? 1927 : 1317;
    }
    v.message = "dbwarden: approval request " + std::to_string(id) + " " + std::string(what) +
                (reason.empty() ? "" : ": " + reason);
    mark_statements(std::string(what == "expired"     ? "expired:"
                                : what == "withdrawn" ? "withdrawn:"
                                                      : "denied:") +
                        std::to_string(id),
                    /*block=*/true);
    ++blocked_;
    deny_held(std::move(message), out, now_ns);
    if (end_connection) {
      // KILL CONNECTION: the server ends the thread's session; the client has its error.
      closing_ = true;
      out.close_after_flush();
    }
  }

 protected:
  RelayBase(ConnectionInfo& info, Judge& judge, RecordSink& records,
            const typename P::Limits& decoder_limits, const RelayLimits& limits,
            typename P::Counters& counters)
      : info_(info),
        judge_(judge),
        outcomes_(records),
        annotator_(decisions_, judge, P::kDialect, outcomes_),
        session_(info, annotator_, decoder_limits, counters),
        limits_(limits) {}

  // One step over the front of `in`; false when it needs more bytes or holds.
  virtual bool step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) = 0;
  // Called while holding, after the server's bytes: answers the held message once the
  // server has answered everything before it.
  virtual void release_held(RelayOutput& out, uint64_t now_ns) = 0;

  // The held message was denied (verdict_.decisive says how to answer): answer it as a
  // blocked one, never sending it.
  virtual void deny_held(std::vector<uint8_t> message, RelayOutput& out, uint64_t now_ns) = 0;

  enum class Approval { kPass, kHeld, kBlock };
  // verdict_.decisive asks for approval of the whole message, the first `total` bytes of
  // `in`. kPass: a JIT grant covers every statement of it (the caller passes it on);
  // kHeld: it waits for the broker (taken from `in`); kBlock: no broker, or the broker is
  // full: the caller blocks it with verdict_.decisive (its message says why).
  // kHeld also while the EXPLAIN of its blast radius runs: the request goes to the broker
  // once that is answered (explained()).
  Approval ask_approval(ByteBuffer& in, size_t total, RelayOutput& out, uint64_t now_ns) {
    Verdict& v = verdict_.decisive;
    if (approved_id_ != 0 && &in == &released_) {
      mark_statements("approved:" + std::to_string(approved_id_), /*block=*/false);
      v.block = false;
      return Approval::kPass;
    }
    if (broker_ == nullptr) {
      v.message += " (approvals are not enabled: blocked)";
      return Approval::kBlock;
    }
    const std::string identity = identity_key();
    bool all_granted = true;
    uint64_t grant = 0;
    for (const JudgedStatement& s : verdict_.statements) {
      if (s.verdict.approvals == 0) continue;
      const uint64_t g = broker_->grant_of(s.verdict.fingerprint, identity, now_ns);
      all_granted = all_granted && g != 0;
      if (grant == 0) grant = g;
    }
    if (all_granted) {
      outcomes_.grant_id = grant;
      mark_statements("granted", /*block=*/false);
      v.block = false;
      return Approval::kPass;
    }
    approvals::RequestSpec spec;
    spec.rule = v.rule;
    const auto message = in.data().first(total);
    // Reviewers and the audit trail see the statement with its credentials cut out, as
    // every record does (sql/redact.h).
    const sql::Dialect sd =
        P::kDialect == Dialect::kMysql ? sql::Dialect::kMysql : sql::Dialect::kPostgresql;
    std::string redacted;
    for (const JudgedStatement& s : verdict_.statements) {
      if (!spec.text.empty()) spec.text += "; ";
      spec.text += sql::redact_credentials(sd, s.text, redacted) ? redacted : s.text;
      if (!s.verdict.runs.empty()) {
        // An SQL EXECUTE: the reviewer sees the statement it runs too.
        spec.text += " -- runs: ";
        spec.text +=
            sql::redact_credentials(sd, s.verdict.runs, redacted) ? redacted : s.verdict.runs;
      }
    }
    spec.operation = v.operation;
    bool first = true;
    for (const JudgedStatement& s : verdict_.statements) {
      if (s.verdict.approvals == 0) continue;
      for (const std::string& t : s.verdict.tables) {
        if (std::find(spec.tables.begin(), spec.tables.end(), t) == spec.tables.end()) {
          spec.tables.push_back(t);
        }
      }
      if (spec.why.empty()) spec.why = s.verdict.why;
      // Ran before only when every held statement did; unknown when any is.
      const int ran = s.verdict.ran_before;
      spec.ran_before = first                                ? ran
                        : spec.ran_before == -1 || ran == -1 ? -1
                                                             : std::min(spec.ran_before, ran);
      first = false;
    }
    spec.fingerprint = v.fingerprint;
    spec.identity = identity;
    spec.approvers = v.approvers;
    spec.approvals = v.approvals;
    spec.timeout_ns = v.approval_timeout_ms * 1'000'000ull;
    spec.who = requester_of(info_);
    if (blast_radius_ && estimate(spec, in, total, out)) {
      // The request goes to the broker with the EXPLAIN's answer (explained()).
      explain_spec_ = std::move(spec);
      explaining_ = true;
      approval_held_.assign(message.begin(), message.end());
      in.consume(total);
      return Approval::kHeld;
    }
    auto id = broker_->submit(std::move(spec), now_ns);
    if (!id.ok()) {
      v.message = "dbwarden: statement needs approval, and " + id.status().message();
      return Approval::kBlock;
    }
    request_ = id.value();
    approval_held_.assign(message.begin(), message.end());
    in.consume(total);
    mark_statements("require_approval:" + std::to_string(request_), /*block=*/true);
    return Approval::kHeld;
  }
  // The blast radius of the held message (the first `total` bytes of `in`): true when an
  // EXPLAIN went to the server on the client's session, or to the agent's role when the
  // session could not run it (its answer comes to explained()); else `spec` says why there
  // is no estimate (the reason of the last way tried), or nothing when no held statement
  // changes data.
  bool estimate(approvals::RequestSpec& spec, ByteBuffer& in, size_t total, RelayOutput& out) {
    const JudgedStatement* target = nullptr;
    size_t changing = 0;
    for (const JudgedStatement& s : verdict_.statements) {
      if (s.verdict.approvals != 0 && !s.verdict.runs.empty() && WantsBlastRadius(s.verdict.runs)) {
        // Its EXPLAIN would need the EXECUTE's values bound as the server binds them.
        spec.blast_unavailable =
            "the statement runs through an SQL prepared statement (EXECUTE): not estimated";
        return false;
      }
      if (s.verdict.approvals == 0 || !WantsBlastRadius(s.text)) continue;
      target = &s;
      ++changing;
    }
    if (changing == 0) return false;
    if (changing > 1) {
      spec.blast_unavailable = "the message holds several data-changing statements";
      return false;
    }
    ExplainJob job;
    std::string& why = spec.blast_unavailable;
    if (start_explain(target->text, in.data().first(total), in, out, why, job)) return true;
    if (job.text.empty()) return false;  // the statement's own reason: no other way helps
    const bool mysql = P::kDialect == Dialect::kMysql;
    if (worker_ == nullptr || worker_->role(mysql).empty()) {
      why += ", and the agent's role is not configured";
      return false;
    }
    if (job.text.size() > kMaxRoleStatementBytes || job.text.find('\0') != std::string::npos) {
      why += ", and the statement cannot be sent in an EXPLAIN of the agent's role";
      return false;
    }
    job.mysql = mysql;
    job.ticket = worker_->next_ticket();
    const uint64_t ticket = job.ticket;
    if (!worker_->submit(std::move(job))) {
      why += ", and the agent's role has too many EXPLAINs waiting";
      return false;
    }
    why.clear();
    role_ticket_ = ticket;
    return true;
  }
  static constexpr size_t kMaxRoleStatementBytes = 256 * 1024;
  // Sends the EXPLAIN of `text`, a statement of the held `message` (still at the front of
  // `in`, which may hold what follows it), or says in `unavailable` why it cannot. When the
  // reason is the session's state (not the statement), `role` gets what the agent's role
  // needs to run it instead (its text and parameters); else its text stays empty.
  virtual bool start_explain(std::string_view text, std::span<const uint8_t> message,
                             const ByteBuffer& in, RelayOutput& out, std::string& unavailable,
                             ExplainJob& role) = 0;
  // The EXPLAIN's answer ended: the request goes to the broker with its estimate (or why
  // there is none), obtained as `via` says. Refused (too many pending), the held message is
  // answered as denied.
  void explained(const BlastEstimate& e, RelayOutput& out, uint64_t now_ns,
                 std::string_view via = kBlastViaClientSession) {
    explaining_ = false;
    approvals::RequestSpec spec = std::move(explain_spec_);
    explain_spec_ = {};
    if (e.ok) {
      spec.blast_rows = static_cast<int64_t>(std::min<uint64_t>(e.rows, INT64_MAX));
      spec.blast_via.assign(via);
    } else {
      spec.blast_unavailable = e.failure;
    }
    auto id = broker_->submit(std::move(spec), now_ns);
    if (!id.ok()) {
      verdict_.decisive.message =
          "dbwarden: statement needs approval, and " + id.status().message();
      ++blocked_;
      canceled_ = false;
      std::vector<uint8_t> message = std::move(approval_held_);
      approval_held_.clear();
      deny_held(std::move(message), out, now_ns);
      return;
    }
    request_ = id.value();
    mark_statements("require_approval:" + std::to_string(request_), /*block=*/true);
    // Canceled by its client meanwhile: the broker's wake-up answers it (on_approval_decided).
    if (canceled_) broker_->withdraw(request_, 0, cancel_reason_);
  }
  // Steps the released (approved) message until it is through or must wait.
  void step_released(RelayOutput& out, uint64_t now_ns) {
    bool more = true;
    while (more && stepping() && !released_.empty()) more = step(released_, out, now_ns);
    if (released_.empty()) approved_id_ = 0;
  }
  bool stepping() const { return !closing_ && !holding_ && request_ == 0 && !explaining_; }
  // The JIT grant's identity: the same database user and database from the same local
  // process owner (uid, login uid) or client address.
  std::string identity_key() const {
    std::string k = info_.user + "@" + info_.database;
    if (info_.peer.pid != 0) {
      k += " uid=" + std::to_string(info_.peer.uid);
      if (info_.peer.login_uid) k += " login_uid=" + std::to_string(*info_.peer.login_uid);
    } else {
      k += " from " + info_.client_address;
    }
    return k;
  }
  // Whether `v` is the kind of verdict that decided the message (verdict_.decisive): a
  // block, or an approval that was denied or could not be asked for.
  bool decides(const Verdict& v) const {
    return v.block && (v.approvals != 0) == (verdict_.decisive.approvals != 0);
  }
  // The held message's statements get `action` in their records (the request id with it).
  void mark_statements(const std::string& action, bool block) {
    for (JudgedStatement& s : verdict_.statements) {
      if (s.verdict.approvals == 0) continue;
      s.verdict.action = action;
      s.verdict.block = block;
      decisions_.remember(s);
    }
    verdict_.decisive.action = action;
  }
  // The client canceled its statement: the request is withdrawn, and answered when the
  // broker's wake-up comes back (on_approval_decided).
  // `reason` (default "canceled by the client") goes to the client's error; `end_connection`
  // closes the connection after it (a MySQL KILL CONNECTION).
  void cancel_held(std::string reason = {}, bool end_connection = false) {
    if ((request_ == 0 && !explaining_) || canceled_) return;
    canceled_ = true;
    cancel_reason_ = reason.empty() ? "canceled by the client" : std::move(reason);
    cancel_ends_connection_ = end_connection;
    // Still explaining: withdrawn as soon as the request is made (explained()).
    if (request_ != 0) broker_->withdraw(request_, 0, cancel_reason_);
  }
  // The client went away: its request is withdrawn.
  void withdraw_request() {
    if (request_ == 0) return;
    broker_->withdraw(request_, 0);
    request_ = 0;
  }

  // Judges one message's text into verdict_ and keeps each statement's verdict for its
  // record.
  void judge(std::string_view text, bool complete, bool backslash_escapes) {
    judge_.judge(info_, P::kDialect, text, complete, backslash_escapes, &sql_prepared_, &verdict_);
    for (const auto& s : verdict_.statements) decisions_.remember(s);
  }
  // The judged message goes to the server: its SQL PREPAREs and DEALLOCATEs take effect.
  // `sure` false: it may yet be refused (sql_prepared.h).
  void sent_judged(bool sure = true) { sql_prepared_.commit(sure); }
  // Whether prepared statement `key` was judged under the policy in force.
  bool judged_now(const typename P::StatementKey& key) const {
    auto it = judged_at_.find(key);
    return it != judged_at_.end() && it->second == judge_.generation();
  }
  void note_judged(const typename P::StatementKey& key) {
    if (judged_at_.size() >= 4096) judged_at_.clear();  // bounded: they are judged again
    judged_at_[key] = judge_.generation();
  }
  // The blocked message, the first `total` bytes of `in`, waits for release_held().
  bool hold(ByteBuffer& in, size_t total, RelayOutput& out, uint64_t now_ns) {
    const auto message = in.data().first(total);
    held_.assign(message.begin(), message.end());
    in.consume(total);
    holding_ = true;
    release_held(out, now_ns);
    return !holding_;
  }
  // Client bytes: to the server or not, and to the decoder in any case.
  void pass(std::span<const uint8_t> bytes, bool to_server, RelayOutput& out, uint64_t now_ns) {
    if (bytes.empty()) return;
    if (to_server) out.to_server(bytes);
    session_.on_data(P::kFromClient, bytes, now_ns);
  }
  // The proxy's own answer, as the server's would be: to the client and the decoder.
  void answer(std::span<const uint8_t> reply, RelayOutput& out, uint64_t now_ns) {
    out.to_client(reply);
    session_.on_data(P::kFromServer, reply, now_ns);
  }
  // Ends the connection with `reply`, the protocol's fatal error, once it is written.
  // `recorded`: the decoder sees it too (it ends a statement); a reply to bytes that were
  // never the protocol's stays out of the records.
  void close_with(std::span<const uint8_t> reply, bool recorded, RelayOutput& out,
                  uint64_t now_ns) {
    if (recorded) {
      answer(reply, out, now_ns);
    } else {
      out.to_client(reply);
    }
    closing_ = true;
    out.close_after_flush();
  }

  ConnectionInfo& info_;
  Judge& judge_;
  DecisionLog decisions_;
  ApprovalOutcomes outcomes_;
  RecordAnnotator annotator_;
  typename P::Session session_;
  RelayLimits limits_;

  bool holding_ = false;  // a blocked message waits for the server to go idle
  bool closing_ = false;
  std::vector<uint8_t> held_;  // its bytes, fed to the decoder on release
  MessageVerdict verdict_;
  SqlPrepared sql_prepared_;  // the session's SQL-level prepared statements, by name
  std::vector<uint8_t> scratch_;
  uint64_t blocked_ = 0;
  approvals::Broker* broker_ = nullptr;
  uint64_t request_ = 0;                // the approval request the held message waits on
  std::vector<uint8_t> approval_held_;  // its bytes, none yet sent
  // An approved message, stepped again before any later client bytes; approved_id_ is its
  // request while any of it is left.
  ByteBuffer released_;
  uint64_t approved_id_ = 0;
  bool canceled_ = false;                // the held message's client canceled it
  std::string cancel_reason_;            // ... why, for its error ("": the client's cancel)
  bool cancel_ends_connection_ = false;  // ... and the connection ends (KILL CONNECTION)
  bool blast_radius_ = false;
  // The held message's EXPLAIN runs (estimate()); its request, to submit once answered.
  bool explaining_ = false;
  approvals::RequestSpec explain_spec_;
  ExplainWorker* worker_ = nullptr;
  uint64_t role_ticket_ = 0;  // the agent's role runs the EXPLAIN: the answer's ticket

 private:
  // The judge's generation each prepared statement was last judged under: one judged under
  // another (the policy was reloaded since) is judged again when it is executed.
  std::unordered_map<typename P::StatementKey, uint64_t> judged_at_;
};

}  // namespace dbwarden::proxy
