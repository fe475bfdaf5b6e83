// SPDX-License-Identifier: Apache-2.0
//
// Prometheus metrics for the agent, served over HTTP (/metrics) by
// prometheus-cpp. Names follow https://prometheus.io/docs/practices/naming/:
//
//   dbwarden_statements_total{db_system,db_namespace,db_user,operation,status_code}
//   dbwarden_statement_duration_seconds{db_system}        histogram, 50 us .. 10 s
//   dbwarden_connections_active{db_system}                gauge
//   dbwarden_capture_events_total, dbwarden_capture_bytes_total
//   dbwarden_capture_dropped_total{reason}
//   ringbuf_full|truncated|conn_table_full|read_failed|compat_syscall dbwarden_capture_gaps_total,
//   dbwarden_capture_gap_bytes_total dbwarden_capture_ring_bytes_total       ring-buffer bytes the
//   agent consumed dbwarden_capture_bulk_skipped_bytes_total  left out on purpose by the bulk-data
//   bound dbwarden_decoder_bulk_recoveries_total{outcome}  anchored|mismatched (after a bulk skip)
//   dbwarden_decoder_messages_total
//   dbwarden_decoder_errors_total{kind}     invalid_message|resync
//   dbwarden_decoder_truncated_queries_total, dbwarden_decoder_encrypted_connections_total,
//   dbwarden_decoder_midstream_joins_total
//   dbwarden_decoder_unresolved_statements_total  executes of statements prepared before capture
//   dbwarden_decoder_cancel_requests_total, dbwarden_decoder_compressed_connections_total,
//   dbwarden_decoder_tls_not_captured_total
//   dbwarden_decoder_parameters_bounded_total{outcome}  cut|dropped (limits on bound values)
//   dbwarden_sql_analyses_total{result}     cache_hit|cache_miss
//   dbwarden_sql_parses_total{result}       parsed|failed|skipped (libpg_query on a miss)
//   dbwarden_sql_cache_entries              gauge
//   dbwarden_sql_redacted_statements_total  statements a credential was cut out of (sql/redact.h)
//   dbwarden_audit_records_total, dbwarden_audit_bytes_total,
//   dbwarden_audit_write_errors_total, dbwarden_audit_dropped_total
//   dbwarden_metrics_label_overflow_total   statements counted under "__other__"
//   dbwarden_fingerprint_statements_total{fingerprint,summary}
//                                           per statement fingerprint (sql/normalize.h)
//   dbwarden_build_info{version}            gauge, always 1
//   dbwarden_approvals_pending, dbwarden_approvals_oldest_pending_seconds   gauges
//   dbwarden_approvals_requests_total, dbwarden_approvals_decisions_total{outcome}
//   dbwarden_approvals_decision_seconds{outcome}  histogram, 0.1 s .. 7 d (time to decision)
//   dbwarden_approvals_webhook_failures_total     failed webhook attempts (retried or not)
//   dbwarden_approvals_webhook_notifications_total{outcome}
//                                           delivered|gave_up|dropped|decided_first
//   dbwarden_approvals_webhook_queue, dbwarden_approvals_records_dropped_total
//   dbwarden_approvals_refused_total{channel,reason}   approvers' requests refused
//                                           (cli|api|web x kApprovalRefusalReasonNames)
//
// Cardinality is bounded: at most kMaxStatementLabelSets distinct label sets
// for dbwarden_statements_total; statements beyond that are counted with every
// label set to "__other__". Label values are made valid UTF-8 and cut to 128
// bytes (metrics/label_value.h). dbwarden_fingerprint_statements_total has
// one series for each of the `max_fingerprints` (default kDefaultMaxFingerprints)
// most frequent fingerprints, counted in bounded memory (metrics/top_fingerprints.h,
// 10 x max_fingerprints candidates) and re-ranked by publish_fingerprints():
// a fingerprint that leaves the top loses its series.
//
// Threads: on_statement, set_active_connections and the publish calls come
// from one thread (the agent's decode thread); the HTTP server collects from
// its own threads, which prometheus-cpp synchronises.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "protocol/statement.h"

namespace dbwarden::metrics {

// Snapshot of capture totals since the agent started, published each second.
struct CaptureCounters {
  uint64_t events = 0, bytes = 0;
  // ringbuf_full, truncated, conn_table_full, read_failed, compat_syscall
  uint64_t drops[5] = {};
  uint64_t gaps = 0, gap_bytes = 0;
  uint64_t ring_bytes = 0, bulk_skipped_bytes = 0;
};

// Snapshot of protocol decoder totals since the agent started.
struct DecoderCounters {
  uint64_t login_failures_authentication = 0, login_failures_other = 0;
  uint64_t messages = 0, invalid_messages = 0, resyncs = 0, truncated_queries = 0,
           encrypted_connections = 0, midstream_joins = 0;
  uint64_t unresolved_statements = 0, cancel_requests = 0, compressed_connections = 0,
           tls_not_captured = 0, parameters_cut = 0, parameters_dropped = 0;
  uint64_t bulk_anchored = 0, bulk_mismatched = 0;
};

// Snapshot of SQL analysis totals (sql/analyzer.h AnalyzerCounters) and the
// cache's size.
struct SqlCounters {
  uint64_t cache_hits = 0, cache_misses = 0;
  uint64_t parsed = 0, parse_failures = 0, parses_skipped = 0;
  uint64_t cache_entries = 0;
  uint64_t redacted = 0;  // statements a credential was cut out of
};

inline constexpr size_t kMaxStatementLabelSets = 1000;
inline constexpr size_t kDefaultMaxFingerprints = 100;

struct ShippingCounters {
  uint64_t sent = 0, dropped = 0, reconnects = 0, send_errors = 0;  // totals
  uint64_t queue_bytes = 0, spool_bytes = 0;                        // levels
  double lag_seconds = 0;  // age of the oldest record not yet delivered
};

// TLS capture (capture/tls_attach.h TlsStats): totals and levels.
struct TlsCounters {
  uint64_t connections = 0, plaintext_calls = 0, ciphertext_suppressed = 0, unknown_ssl = 0;
  uint64_t calls_not_recorded = 0;
  uint64_t libraries_hooked = 0, unhooked_libraries = 0, attach_failures = 0;
  uint64_t functions_at_sites = 0, functions_on_uretprobe = 0;
};

// Local client connections by how their process was named (totals).
struct IdentityCounters {
  uint64_t from_proc = 0;          // /proc read while the client ran (full identity)
  uint64_t from_connect_hook = 0;  // the client had exited: the connect hook's view alone
  uint64_t unresolved = 0;         // neither
};

// Enforce mode (agent/enforcer.h): the proxy and steering. Totals and levels.
struct EnforcementCounters {
  uint64_t proxy_accepted = 0, proxy_upstream_failures = 0, proxy_identity_failures = 0,
           proxy_refused = 0;
  uint64_t proxy_tls_handshakes = 0, proxy_tls_failures = 0;  // client TLS terminated / failed
  // SIGHUP: certificate/key reloads that did not load (the running pair stays).
  uint64_t proxy_tls_reload_failures = 0;
  uint64_t proxy_active = 0;                   // level
  uint64_t steered_tcp = 0, steered_unix = 0;  // connections handed to the proxy
  uint64_t fail_open = 0, fail_closed = 0;     // proxy down: passed through / refused
  uint64_t existing_connections = 0;           // level: open before enforcement
  bool proxy_alive = false;
  bool fail_open_mode = false;
  // PostgreSQL reach sets shared between connections (proxy/pg_catalog.h).
  uint64_t pg_reach_hits = 0, pg_reach_misses = 0, pg_reach_waits = 0, pg_catalog_evictions = 0;
};

// Learn mode (learn/learn.h): the learned set and what could not be learned. Totals and
// levels; novel fingerprints are policy decisions (rule learn:novel_fingerprint).
struct LearnCounters {
  uint64_t identities = 0, fingerprints = 0;  // levels
  uint64_t capped_identity = 0, capped_total = 0, write_errors = 0;
};

// Approvals (issue 14): the broker's requests and decisions, and the webhook that tells
// approvers of new requests. Totals and levels.
inline constexpr size_t kApprovalOutcomes = 4;  // approved, denied, expired, withdrawn
inline constexpr const char* kApprovalOutcomeNames[kApprovalOutcomes] = {"approved", "denied",
                                                                         "expired", "withdrawn"};
// Time to decision, seconds: a script approving at once, a person in minutes, a rule's
// timeout of up to 7 days.
inline constexpr double kApprovalDecisionBuckets[] = {
    0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400, 604800};
inline constexpr size_t kApprovalDecisionBucketCount =
    sizeof(kApprovalDecisionBuckets) / sizeof(kApprovalDecisionBuckets[0]);
// Refused approvers' requests (agent/approval_refusals.h): by channel and reason.
inline constexpr size_t kApprovalChannels = 3;
inline constexpr const char* kApprovalChannelNames[kApprovalChannels] = {"cli", "api", "web"};
inline constexpr size_t kApprovalRefusalReasons = 11;
inline constexpr const char* kApprovalRefusalReasonNames[kApprovalRefusalReasons] = {
    "no_token",        "wrong_token",      "cross_site",   "csrf",
    "bad_request",     "own_request",      "not_approver", "unknown_request",
    "already_decided", "already_approved", "no_reason"};
struct ApprovalCounters {
  uint64_t pending = 0;               // level: requests waiting for a decision
  double oldest_pending_seconds = 0;  // level: how long the oldest has waited (0: none)
  uint64_t requests = 0;              // total
  uint64_t decisions[kApprovalOutcomes] = {};
  // Time to decision per outcome: decisions per bucket (not cumulative; the last one is
  // above every bound) and the sum of the seconds.
  uint64_t decision_buckets[kApprovalOutcomes][kApprovalDecisionBucketCount + 1] = {};
  double decision_seconds[kApprovalOutcomes] = {};
  // The webhook (agent/approval_webhook.h).
  uint64_t webhook_delivered = 0, webhook_failures = 0, webhook_gave_up = 0, webhook_dropped = 0,
           webhook_decided_first = 0;
  uint64_t webhook_queued = 0;   // level
  uint64_t records_dropped = 0;  // approval records lost (the trail's queue was full)
  // The blast radius's EXPLAIN through the agent's role (proxy/explain_worker.h): answered,
  // timed out (of those answered), dropped (its queue was full).
  uint64_t blast_role_answered = 0, blast_role_timed_out = 0, blast_role_dropped = 0;
  uint64_t refused[kApprovalChannels][kApprovalRefusalReasons] = {};  // totals
};

class Exporter : public StatementSink {
 public:
  // Serves the registry on `address` ("127.0.0.1:9977", "[::1]:9977"). An
  // empty address builds the registry but serves nothing (tests, selfcheck).
  static Result<std::unique_ptr<Exporter>> Start(const std::string& address,
                                                 const std::string& version,
                                                 size_t max_fingerprints = kDefaultMaxFingerprints);
  ~Exporter() override;
  // Starts serving on `address` an exporter started with an empty one: the
  // agent counts from the start but answers /metrics only once it captures
  // (a readiness check that gets an answer may rely on being audited).
  Status serve(const std::string& address);
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  void on_statement(const Statement& statement) override;
  void set_active_connections(const std::string& db_system, int64_t n);
  // Arguments are running totals; the exporter adds the difference since the
  // previous call. A total that went down (its source restarted) counts from 0.
  void publish(const CaptureCounters& capture, const DecoderCounters& decoder);
  void publish_audit(uint64_t records, uint64_t bytes, uint64_t write_errors, uint64_t dropped);
  // Queue of the audit writer thread (bytes formatted, not yet written).
  void set_audit_queue_bytes(uint64_t bytes);
  // One shipping destination ("stdout", "syslog"): monotonic totals and levels.
  void publish_shipping(const std::string& sink, const ShippingCounters& counters);
  // TLS capture: dbwarden_tls_events_total{kind}, dbwarden_tls_libraries{state},
  // dbwarden_tls_probed_functions{placement}.
  void publish_tls(const TlsCounters& tls);
  void publish_sql(const SqlCounters& sql);
  // dbwarden_identity_local_clients_total{source}.
  void publish_identity(const IdentityCounters& identity);
  // Re-ranks the fingerprints and updates dbwarden_fingerprint_statements_total.
  void publish_fingerprints();

  // dbwarden_proxy_*, dbwarden_steering_*, dbwarden_enforcement_*. Policy decisions are
  // counted per statement (dbwarden_policy_decisions_total{rule,action}) by on_statement.
  void publish_enforcement(const EnforcementCounters& counters);
  void publish_learn(const LearnCounters& counters);
  // dbwarden_approvals_*: present (at zero) from the start, in observe mode too.
  void publish_approvals(const ApprovalCounters& counters);

  // One SIGHUP config reload: applied (ok) or refused, running config kept.
  void count_config_reload(bool ok);

  // The whole registry in the text exposition format (tests, promtool).
  std::string serialize() const;

 private:
  struct Impl;
  explicit Exporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dbwarden::metrics
