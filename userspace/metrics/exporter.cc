// SPDX-License-Identifier: Apache-2.0
#include "metrics/exporter.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cstring>
#include <exception>
#include <iterator>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "metrics/label_value.h"
#include "metrics/top_fingerprints.h"

namespace dbwarden::metrics {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

constexpr std::string_view kOther = "__other__";
// A handful of database systems; anything beyond is a bug, not a workload.
constexpr size_t kMaxDbSystems = 16;

const char* const kDropReasons[5] = {"ringbuf_full", "truncated", "conn_table_full", "read_failed",
                                     "compat_syscall"};

// Statement latency: from a cached point select (tens of µs on loopback) to a
// report query (seconds).
const Histogram::BucketBoundaries& duration_buckets() {
  static const Histogram::BucketBoundaries kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0};
  return kBuckets;
}

// Totals from a source that may restart become counter increments.
uint64_t delta(uint64_t now, uint64_t& last) {
  const uint64_t d = now >= last ? now - last : now;
  last = now;
  return d;
}

void add(Counter* c, uint64_t now, uint64_t& last) {
  if (const uint64_t d = delta(now, last); d != 0) c->Increment(static_cast<double>(d));
}

// Lookup key for a label set: length-prefixed raw values, so that no two
// different tuples share a key whatever bytes they contain.
void append_key_part(std::string_view part, std::string& key) {
  const auto n = static_cast<uint32_t>(part.size());
  key.append(reinterpret_cast<const char*>(&n), sizeof(n));
  key.append(part);
}

}  // namespace

struct Exporter::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  // One metric family each, registered under its name and help; the unlabelled
  // counter()/gauge() below add its single series.
  Family<Counter>& counter_family(const std::string& name, const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(*registry);
  }
  Family<Gauge>& gauge_family(const std::string& name, const std::string& help) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(*registry);
  }
  Family<Histogram>& histogram_family(const std::string& name, const std::string& help) {
    return prometheus::BuildHistogram().Name(name).Help(help).Register(*registry);
  }
  Counter* counter(const std::string& name, const std::string& help) {
    return &counter_family(name, help).Add({});
  }
  Gauge* gauge(const std::string& name, const std::string& help) {
    return &gauge_family(name, help).Add({});
  }
  std::unique_ptr<prometheus::Exposer> exposer;

  Family<Counter>* statements = nullptr;
  Family<Histogram>* durations = nullptr;
  Family<Gauge>* connections = nullptr;
  Counter* label_overflow = nullptr;
  Counter* other_statements = nullptr;  // created on first overflow

  std::unordered_map<std::string, Counter*> statement_counters;
  Family<Counter>* fingerprints = nullptr;
  size_t max_fingerprints = kDefaultMaxFingerprints;
  TopFingerprints top_fingerprints{10 * kDefaultMaxFingerprints};
  struct ExportedFingerprint {
    Counter* counter = nullptr;
    uint64_t count = 0;  // what the series shows
  };
  std::unordered_map<std::string, ExportedFingerprint> exported_fingerprints;
  std::unordered_map<std::string, Histogram*> duration_histograms;

  // The series a statement's labels led to last time, per connection and
  // operation: the common statement finds its counter and histogram by one
  // slot read and five short comparisons, no key built and no string hashed.
  // An entry is only a memo of statement_counter()/per_db_system(): it holds
  // the label values it was made from and serves only a statement with the
  // same ones, so a connection whose database, user or application changed
  // (or a new connection in the slot) just misses. Series are never removed
  // from those families, so the pointers stay valid.
  struct CachedSeries {
    std::string db_system, database, user, operation, status_code;
    Counter* counter = nullptr;  // null: empty slot
    Histogram* duration = nullptr;
    bool overflow = false;  // counted under __other__: also a label_overflow
  };
  static constexpr size_t kCachedSeries = 1024;  // a power of two
  std::unique_ptr<CachedSeries[]> series_cache = std::make_unique<CachedSeries[]>(kCachedSeries);
  std::unordered_map<std::string, Gauge*> connection_gauges;
  std::string key;  // scratch, reused so that a cache hit allocates nothing

  Counter* capture_events = nullptr;
  Counter* capture_bytes = nullptr;
  Counter* capture_drops[5] = {};
  Counter* capture_gaps = nullptr;
  Counter* capture_gap_bytes = nullptr;
  Counter* capture_ring_bytes = nullptr;
  Counter* capture_bulk_skipped_bytes = nullptr;
  Counter* bulk_anchored = nullptr;
  Counter* bulk_mismatched = nullptr;
  Counter* decoder_messages = nullptr;
  Counter* decoder_invalid = nullptr;
  Counter* decoder_resyncs = nullptr;
  Counter* decoder_truncated = nullptr;
  Counter* decoder_encrypted = nullptr;
  Counter* decoder_midstream = nullptr;
  Counter* decoder_unresolved = nullptr;
  Counter* decoder_cancels = nullptr;
  Counter* decoder_compressed = nullptr;
  Counter* decoder_tls_not_captured = nullptr;
  Counter* parameters_cut = nullptr;
  Counter* parameters_dropped = nullptr;
  Counter* sql_hits = nullptr;
  Counter* sql_misses = nullptr;
  Counter* sql_parsed = nullptr;
  Counter* sql_parse_failed = nullptr;
  Counter* sql_parse_skipped = nullptr;
  Counter* sql_redacted = nullptr;
  Gauge* sql_cache_entries = nullptr;
  SqlCounters last_sql;
  Counter* identity_sources[3] = {};
  IdentityCounters last_identity;
  Counter* login_failures_auth = nullptr;
  Counter* login_failures_other = nullptr;
  Counter* audit_records = nullptr;
  Counter* audit_bytes = nullptr;
  Counter* audit_write_errors = nullptr;
  Counter* audit_dropped = nullptr;

  Gauge* audit_queue = nullptr;
  Counter* reloads_ok = nullptr;
  Counter* reloads_failed = nullptr;
  Family<Counter>* policy_decisions = nullptr;
  std::unordered_map<std::string, Counter*> policy_series;  // rule \x1f action
  std::string policy_key;
  Family<Counter>* masked_values = nullptr;
  std::unordered_map<std::string, Counter*> masked_series;  // rule \x1f detector

  // The series of `family` labelled {name_a="a", name_b="b"}, found by a key of both values
  // (both values bounded by label_value()).
  Counter* pair_series(Family<Counter>& family, std::unordered_map<std::string, Counter*>& series,
                       const char* name_a, std::string_view a, const char* name_b,
                       std::string_view b) {
    policy_key.assign(a).push_back('\x1f');
    policy_key.append(b);
    auto it = series.find(policy_key);
    if (it == series.end()) {
      Counter* counter = &family.Add({{name_a, label_value(a)}, {name_b, label_value(b)}});
      it = series.emplace(policy_key, counter).first;
    }
    return it->second;
  }
  Counter* proxy_connections_total = nullptr;
  Counter* proxy_upstream_failures = nullptr;
  Counter* proxy_identity_failures = nullptr;
  Counter* proxy_refused = nullptr;
  Counter* proxy_tls_handshakes = nullptr;
  Counter* proxy_tls_failures = nullptr;
  Counter* proxy_tls_reload_failures = nullptr;
  Gauge* proxy_active = nullptr;
  Counter* pg_reach_sets[3] = {};  // hit, miss, wait
  Counter* pg_catalog_evictions = nullptr;
  Counter* steering_counts[4] = {};
  Gauge* enforcement_mode = nullptr;
  Gauge* enforcement_alive = nullptr;
  Gauge* enforcement_fail_open = nullptr;
  Gauge* enforcement_existing = nullptr;
  EnforcementCounters last_enforcement;
  Gauge* learn_identities = nullptr;
  Gauge* learn_fingerprints = nullptr;
  Counter* learn_capped_identity = nullptr;
  Counter* learn_capped_total = nullptr;
  Counter* learn_write_errors = nullptr;
  LearnCounters last_learn;
  Gauge* approvals_pending = nullptr;
  Gauge* approvals_oldest = nullptr;
  Gauge* approvals_webhook_queue = nullptr;
  Counter* approvals_requests = nullptr;
  Counter* approvals_decisions[kApprovalOutcomes] = {};
  Histogram* approvals_decision_seconds[kApprovalOutcomes] = {};
  Counter* approvals_webhook_failures = nullptr;
  Counter* approvals_webhook_outcomes[4] = {};  // delivered, gave_up, dropped, decided_first
  Counter* approvals_records_dropped = nullptr;
  Counter* approvals_blast_role[3] = {};  // answered, timed_out, dropped
  Counter* approvals_refused[kApprovalChannels][kApprovalRefusalReasons] = {};
  ApprovalCounters last_approvals;

  void register_approvals() {
    approvals_pending =
        gauge("dbwarden_approvals_pending", "Approval requests waiting for a decision.");
    approvals_oldest = gauge("dbwarden_approvals_oldest_pending_seconds",
                             "How long the oldest pending approval request has waited (0: none).");
    approvals_requests = counter("dbwarden_approvals_requests_total",
                                 "Statements held for approval (requests made).");
    auto& decisions =
        counter_family("dbwarden_approvals_decisions_total",
                       "Approval requests decided, by outcome: approved, denied (by a "
                       "person, or as the agent stopped), expired (the rule's timeout), "
                       "withdrawn (the client went away).");
    auto& seconds = histogram_family("dbwarden_approvals_decision_seconds",
                                     "Time from an approval request to its decision, by outcome.");
    const Histogram::BucketBoundaries bounds(std::begin(kApprovalDecisionBuckets),
                                             std::end(kApprovalDecisionBuckets));
    for (size_t i = 0; i < kApprovalOutcomes; ++i) {
      approvals_decisions[i] = &decisions.Add({{"outcome", kApprovalOutcomeNames[i]}});
      approvals_decision_seconds[i] = &seconds.Add({{"outcome", kApprovalOutcomeNames[i]}}, bounds);
    }
    approvals_webhook_failures =
        counter("dbwarden_approvals_webhook_failures_total",
                "Webhook deliveries of approval requests that failed (no connection, timeout, "
                "an answer other than 2xx), each attempt counted.");
    auto& outcomes = counter_family("dbwarden_approvals_webhook_notifications_total",
                                    "Approval requests the webhook was to announce, by outcome: "
                                    "delivered, gave_up (attempts, deadline or refusal), dropped "
                                    "(queue full), decided_first (decided before delivery).");
    const char* const names[4] = {"delivered", "gave_up", "dropped", "decided_first"};
    for (size_t i = 0; i < 4; ++i)
      approvals_webhook_outcomes[i] = &outcomes.Add({{"outcome", names[i]}});
    approvals_webhook_queue = gauge("dbwarden_approvals_webhook_queue",
                                    "Approval notifications waiting for their (next) attempt.");
    approvals_records_dropped =
        counter("dbwarden_approvals_records_dropped_total",
                "Approval steps not written to the audit trail: its queue was full.");
    auto& role = counter_family(
        "dbwarden_approvals_blast_role_explains_total",
        "EXPLAINs of held statements' blast radius run through the agent's own role (the "
        "client's session was inside a transaction), by outcome: answered (with an estimate "
        "or a reason), timed_out (of those answered), dropped (its queue was full: the "
        "request went out with the estimate unavailable).");
    const char* const role_outcomes[3] = {"answered", "timed_out", "dropped"};
    for (size_t i = 0; i < 3; ++i)
      approvals_blast_role[i] = &role.Add({{"outcome", role_outcomes[i]}});
    auto& refused =
        counter_family("dbwarden_approvals_refused_total",
                       "Approvers' requests refused (each also an approval record "
                       "`refused`, rate-bounded), by channel (cli, api, web) and reason.");
    for (size_t c = 0; c < kApprovalChannels; ++c) {
      for (size_t r = 0; r < kApprovalRefusalReasons; ++r) {
        approvals_refused[c][r] = &refused.Add(
            {{"channel", kApprovalChannelNames[c]}, {"reason", kApprovalRefusalReasonNames[r]}});
      }
    }
  }
  Family<Counter>* ship_sent = nullptr;
  Family<Counter>* ship_dropped = nullptr;
  Family<Counter>* ship_reconnects = nullptr;
  Family<Counter>* ship_errors = nullptr;
  Family<Gauge>* ship_queue = nullptr;
  Family<Gauge>* ship_spool = nullptr;
  Family<Gauge>* ship_lag = nullptr;
  // Per sink: the metrics and the totals last published (sinks are ours: few).
  struct Shipping {
    Counter *sent, *dropped, *reconnects, *errors;
    Gauge *queue, *spool, *lag;
    ShippingCounters last;
  };
  std::unordered_map<std::string, Shipping> shipping;

  CaptureCounters last_capture;
  DecoderCounters last_decoder;
  uint64_t last_audit[4] = {};
  // TLS: events (counters, last totals) and levels.
  Counter* tls_events[5] = {};
  uint64_t last_tls[5] = {};
  Gauge *tls_hooked = nullptr, *tls_unhooked = nullptr, *tls_failed = nullptr;
  Gauge *tls_at_sites = nullptr, *tls_on_uretprobe = nullptr;

  Impl(const std::string& version, size_t fingerprint_limit)
      : max_fingerprints(fingerprint_limit), top_fingerprints(10 * fingerprint_limit) {
    statements =
        &counter_family("dbwarden_statements_total",
                        "SQL statements observed, by database, user, operation and SQLSTATE.");
    fingerprints = &counter_family("dbwarden_fingerprint_statements_total",
                                   "SQL statements observed, by statement fingerprint (literals "
                                   "replaced) and summary: the most frequent fingerprints only "
                                   "(space-saving counts, exact for clear leaders).");
    durations = &histogram_family("dbwarden_statement_duration_seconds",
                                  "Time from a statement's first request byte to its completion.");
    connections =
        &gauge_family("dbwarden_connections_active", "Database connections currently tracked.");
    label_overflow = counter("dbwarden_metrics_label_overflow_total",
                             "Statements counted under __other__ labels because "
                             "dbwarden_statements_total reached its label-set limit.");

    auto& reloads =
        counter_family("dbwarden_config_reloads_total",
                       "Config reloads on SIGHUP, by result (failed: running config kept).");
    reloads_ok = &reloads.Add({{"result", "ok"}});
    reloads_failed = &reloads.Add({{"result", "failed"}});

    capture_events =
        counter("dbwarden_capture_events_total", "Capture events read from the kernel.");
    capture_bytes = counter("dbwarden_capture_bytes_total", "Payload bytes captured.");
    auto& dropped =
        counter_family("dbwarden_capture_dropped_total", "Capture events lost, by reason.");
    for (int i = 0; i < 5; ++i) capture_drops[i] = &dropped.Add({{"reason", kDropReasons[i]}});
    capture_gaps = counter("dbwarden_capture_gaps_total", "Stream gaps: bytes the capture missed.");
    capture_gap_bytes = counter("dbwarden_capture_gap_bytes_total", "Bytes missed in stream gaps.");
    capture_ring_bytes = counter("dbwarden_capture_ring_bytes_total",
                                 "Ring-buffer bytes consumed (records with their ring headers).");
    capture_bulk_skipped_bytes =
        counter("dbwarden_capture_bulk_skipped_bytes_total",
                "Server-to-client bytes left out on purpose by the bulk-data bound.");
    auto& recoveries = counter_family("dbwarden_decoder_bulk_recoveries_total",
                                      "Message boundaries found again after a bulk-data skip: "
                                      "anchored, or mismatched (completions lost in the skip).");
    bulk_anchored = &recoveries.Add({{"outcome", "anchored"}});
    bulk_mismatched = &recoveries.Add({{"outcome", "mismatched"}});

    decoder_messages = counter("dbwarden_decoder_messages_total", "Protocol messages decoded.");
    auto& errors =
        counter_family("dbwarden_decoder_errors_total", "Protocol decoding errors, by kind.");
    decoder_invalid = &errors.Add({{"kind", "invalid_message"}});
    decoder_resyncs = &errors.Add({{"kind", "resync"}});
    decoder_truncated = counter("dbwarden_decoder_truncated_queries_total",
                                "Statements whose text was cut to the configured maximum.");
    decoder_encrypted = counter("dbwarden_decoder_encrypted_connections_total",
                                "Connections that switched to TLS the agent could not read.");
    auto& logins = counter_family("dbwarden_login_failures_total",
                                  "Logins the server refused: authentication (SQLSTATE class 28) "
                                  "or other (unknown database, too many connections, ...).");
    login_failures_auth = &logins.Add({{"reason", "authentication"}});
    login_failures_other = &logins.Add({{"reason", "other"}});
    decoder_midstream = counter("dbwarden_decoder_midstream_joins_total",
                                "Connections picked up after their startup (no identity yet).");
    decoder_unresolved =
        counter("dbwarden_decoder_unresolved_statements_total",
                "Executions of a prepared statement whose text was never seen (prepared "
                "before capture): recorded with its name, dbwarden.statement_unresolved.");
    decoder_cancels = counter("dbwarden_decoder_cancel_requests_total",
                              "PostgreSQL CancelRequest packets (the key is never kept).");
    decoder_compressed = counter("dbwarden_decoder_compressed_connections_total",
                                 "MySQL connections using the compressed protocol (not decoded).");
    decoder_tls_not_captured =
        counter("dbwarden_decoder_tls_not_captured_total",
                "Connections that switched to TLS whose plaintext was not captured.");
    auto& bounded = counter_family("dbwarden_decoder_parameters_bounded_total",
                                   "Bound parameter values cut to the per-value bound, or dropped "
                                   "beyond the per-statement bounds.");
    parameters_cut = &bounded.Add({{"outcome", "cut"}});
    parameters_dropped = &bounded.Add({{"outcome", "dropped"}});
    auto& analyses =
        counter_family("dbwarden_sql_analyses_total",
                       "Statements analysed, by whether their normalised text was cached.");
    sql_hits = &analyses.Add({{"result", "cache_hit"}});
    sql_misses = &analyses.Add({{"result", "cache_miss"}});
    auto& parses = counter_family("dbwarden_sql_parses_total",
                                  "PostgreSQL cache misses by grammar use: parsed by libpg_query, "
                                  "failed (classified by tokens), skipped (token answer certain).");
    sql_parsed = &parses.Add({{"result", "parsed"}});
    sql_parse_failed = &parses.Add({{"result", "failed"}});
    sql_parse_skipped = &parses.Add({{"result", "skipped"}});
    sql_redacted = &counter_family("dbwarden_sql_redacted_statements_total",
                                   "Statements a credential (password, hash, connection-string "
                                   "password) was cut out of before any output saw them.")
                        .Add({});
    sql_cache_entries =
        &gauge_family("dbwarden_sql_cache_entries", "Normalised statements in the analysis cache.")
             .Add({});

    auto& identity = counter_family("dbwarden_identity_local_clients_total",
                                    "Connections from processes on this host, by how the client "
                                    "process was named: from /proc while it ran, from the connect "
                                    "hook alone (it had exited: no executable or unit), or not at "
                                    "all.");
    identity_sources[0] = &identity.Add({{"source", "proc"}});
    identity_sources[1] = &identity.Add({{"source", "connect_hook"}});
    identity_sources[2] = &identity.Add({{"source", "unresolved"}});

    audit_records = counter("dbwarden_audit_records_total", "Audit records written.");
    audit_bytes = counter("dbwarden_audit_bytes_total", "Audit bytes written.");
    audit_write_errors = counter("dbwarden_audit_write_errors_total", "Failed audit log writes.");
    audit_dropped = counter("dbwarden_audit_dropped_total",
                            "Audit records dropped because the write buffer was full.");

    auto& tls = counter_family("dbwarden_tls_events_total",
                               "TLS capture events, by kind: connections found to carry TLS, "
                               "plaintext SSL_read/SSL_write results emitted, ciphertext syscalls "
                               "suppressed, libssl calls on an SSL* of no tracked socket, server "
                               "libssl calls the kernel had no memory to note.");
    tls_events[0] = &tls.Add({{"kind", "connection"}});
    tls_events[1] = &tls.Add({{"kind", "plaintext_call"}});
    tls_events[2] = &tls.Add({{"kind", "ciphertext_suppressed"}});
    tls_events[3] = &tls.Add({{"kind", "unknown_ssl"}});
    tls_events[4] = &tls.Add({{"kind", "call_not_recorded"}});
    auto& libs = gauge_family("dbwarden_tls_libraries",
                              "TLS library files seen: libssl hooked, other TLS libraries not "
                              "hooked, libssl files that could not be hooked.");
    tls_hooked = &libs.Add({{"state", "hooked"}});
    tls_unhooked = &libs.Add({{"state", "unhooked"}});
    tls_failed = &libs.Add({{"state", "attach_failed"}});
    auto& placed = gauge_family("dbwarden_tls_probed_functions",
                                "libssl functions hooked, by probe placement: on emulated "
                                "instructions (sites) or entry + uretprobe (single-stepped).");
    tls_at_sites = &placed.Add({{"placement", "sites"}});
    tls_on_uretprobe = &placed.Add({{"placement", "uretprobe"}});

    audit_queue = &gauge_family("dbwarden_audit_queue_bytes",
                                "Audit bytes formatted and waiting for the writer thread.")
                       .Add({});
    auto sink_counter = [&](const char* name, const char* help) {
      return &counter_family(name, help);
    };
    auto sink_gauge = [&](const char* name, const char* help) { return &gauge_family(name, help); };
    ship_sent = sink_counter("dbwarden_shipping_sent_total",
                             "Audit records delivered to a shipping destination.");
    ship_dropped =
        sink_counter("dbwarden_shipping_dropped_total",
                     "Audit records a shipping destination lost (queue and spool full).");
    ship_reconnects = sink_counter("dbwarden_shipping_reconnects_total",
                                   "Connections re-established to a shipping destination.");
    ship_errors = sink_counter("dbwarden_shipping_errors_total",
                               "Failed sends or connection attempts to a shipping destination.");
    ship_queue = sink_gauge("dbwarden_shipping_queue_bytes",
                            "Bytes waiting in memory for a shipping destination.");
    ship_spool = sink_gauge("dbwarden_shipping_spool_bytes",
                            "Bytes spooled on disk while a shipping destination is unreachable.");
    ship_lag = sink_gauge("dbwarden_shipping_lag_seconds",
                          "Age of the oldest audit record not yet delivered to a destination.");

    policy_decisions =
        &counter_family("dbwarden_policy_decisions_total",
                        "Statements judged by the enforcement policy, by deciding rule "
                        "(empty: none matched) and action.");
    masked_values = &counter_family("dbwarden_masked_values_total",
                                    "Result values the proxy masked, by mask rule and detector "
                                    "(\"column\": a whole value under the rule's columns).");
    proxy_connections_total =
        counter("dbwarden_proxy_connections_total", "Client connections the proxy accepted.");
    proxy_upstream_failures = counter("dbwarden_proxy_upstream_failures_total",
                                      "Proxied clients refused: the server could not be reached.");
    proxy_identity_failures =
        counter("dbwarden_proxy_identity_failures_total",
                "Proxied unix clients refused: their credentials could not be taken upstream.");
    proxy_refused = counter("dbwarden_proxy_refused_total",
                            "Connections the proxy refused (connection limit, not steered).");
    proxy_tls_handshakes = counter("dbwarden_proxy_tls_handshakes_total",
                                   "Client TLS handshakes the proxy completed (terminated).");
    proxy_tls_failures =
        counter("dbwarden_proxy_tls_failures_total",
                "Client connections closed because their TLS handshake or a record failed.");
    proxy_tls_reload_failures =
        counter("dbwarden_proxy_tls_reload_failures_total",
                "Certificate/key reloads (SIGHUP) that failed; the running pair stays in use.");
    proxy_active =
        &gauge_family("dbwarden_proxy_connections", "Client connections open through the proxy.")
             .Add({});
    auto& reach = counter_family(
        "dbwarden_proxy_pg_reach_sets_total",
        "PostgreSQL connections that needed their scope's reach set (masking inside "
        "transactions): taken from another connection's lookup without a query (hit), asked "
        "of the server (miss), or waited for another connection's lookup (wait).");
    pg_reach_sets[0] = &reach.Add({{"result", "hit"}});
    pg_reach_sets[1] = &reach.Add({{"result", "miss"}});
    pg_reach_sets[2] = &reach.Add({{"result", "wait"}});
    pg_catalog_evictions =
        counter("dbwarden_proxy_pg_catalog_evictions_total",
                "PostgreSQL catalog scopes and startup keys the proxy dropped past their bounds "
                "(least recently used first).");
    auto& steered = counter_family("dbwarden_steering_connections_total",
                                   "New connections to protected servers seen by steering: handed "
                                   "to the proxy, or with the proxy down let through (fail open) "
                                   "or refused (fail closed).");
    steering_counts[0] = &steered.Add({{"transport", "tcp"}, {"outcome", "steered"}});
    steering_counts[1] = &steered.Add({{"transport", "unix"}, {"outcome", "steered"}});
    steering_counts[2] = &steered.Add({{"transport", "any"}, {"outcome", "fail_open"}});
    steering_counts[3] = &steered.Add({{"transport", "any"}, {"outcome", "fail_closed"}});
    auto& enforcement = gauge_family("dbwarden_enforcement_state",
                                     "enforce_mode 1 in enforce mode; proxy_alive 1 while the "
                                     "proxy serves; fail_open_configured 1 when a dead proxy lets "
                                     "clients through unchecked (fail-mode open); "
                                     "unsteered_connections: open before enforcement began.");
    enforcement_mode = &enforcement.Add({{"state", "enforce_mode"}});
    enforcement_alive = &enforcement.Add({{"state", "proxy_alive"}});
    enforcement_fail_open = &enforcement.Add({{"state", "fail_open_configured"}});
    enforcement_existing = &enforcement.Add({{"state", "unsteered_connections"}});
    auto& learned = gauge_family("dbwarden_learn_learned",
                                 "Learn mode's learned set: identities, and fingerprints over all "
                                 "identities.");
    learn_identities = &learned.Add({{"kind", "identities"}});
    learn_fingerprints = &learned.Add({{"kind", "fingerprints"}});
    auto& not_learned =
        counter_family("dbwarden_learn_not_learned_total",
                       "New fingerprints learn mode refused to keep: a cap was "
                       "reached (max_fingerprints_per_identity, max_fingerprints).");
    learn_capped_identity = &not_learned.Add({{"cap", "per_identity"}});
    learn_capped_total = &not_learned.Add({{"cap", "total"}});
    learn_write_errors = counter("dbwarden_learn_write_errors_total",
                                 "Flushes of the learned set to the state directory that failed "
                                 "(what was learned stays in memory and is retried).");

    register_approvals();

    gauge_family("dbwarden_build_info", "Always 1; the version label names the running agent.")
        .Add({{"version", label_value(version)}})
        .Set(1);
  }

  static bool same(const std::string& cached, const std::string& value) {
    return cached.size() == value.size() &&
           std::memcmp(cached.data(), value.data(), value.size()) == 0;
  }

  // Slot of a connection's statements of one operation: the connection id
  // spreads connections, the operation's length and ends its statements
  // (BEGIN, SELECT, UPDATE, COMMIT of one transaction take different slots).
  static size_t series_slot(const ConnectionInfo& c, const Statement& s) {
    uint64_t h = c.connection_id * 0x9e3779b97f4a7c15ULL;
    const std::string& op = s.operation;
    if (!op.empty()) {
      h ^= (static_cast<uint64_t>(op.size()) << 16) |
           (static_cast<uint64_t>(static_cast<unsigned char>(op.front())) << 8) |
           static_cast<unsigned char>(op.back());
      h *= 0xc2b2ae3d27d4eb4fULL;
    }
    return static_cast<size_t>(h >> 32) & (kCachedSeries - 1);
  }

  void count_statement(const ConnectionInfo& c, const Statement& s) {
    CachedSeries& e = series_cache[series_slot(c, s)];
    if (e.counter == nullptr || !same(e.status_code, s.status_code) ||
        !same(e.operation, s.operation) || !same(e.user, c.user) || !same(e.database, c.database) ||
        !same(e.db_system, c.db_system)) {
      e.counter = statement_counter(c, s);
      e.overflow = e.counter == other_statements;
      e.duration = per_db_system(*durations, duration_histograms, c.db_system, duration_buckets());
      e.db_system.assign(c.db_system);
      e.database.assign(c.database);
      e.user.assign(c.user);
      e.operation.assign(s.operation);
      e.status_code.assign(s.status_code);
    } else if (e.overflow) {
      label_overflow->Increment();  // as statement_counter() does for every such statement
    }
    e.counter->Increment();
    const uint64_t ns = s.end_ns > s.start_ns ? s.end_ns - s.start_ns : 0;
    e.duration->Observe(static_cast<double>(ns) * 1e-9);
  }

  Counter* statement_counter(const ConnectionInfo& c, const Statement& s) {
    key.clear();
    append_key_part(c.db_system, key);
    append_key_part(c.database, key);
    append_key_part(c.user, key);
    append_key_part(s.operation, key);
    append_key_part(s.status_code, key);
    if (auto it = statement_counters.find(key); it != statement_counters.end()) return it->second;
    if (statement_counters.size() >= kMaxStatementLabelSets) {
      label_overflow->Increment();
      if (other_statements == nullptr) {
        const std::string other(kOther);
        other_statements = &statements->Add({{"db_system", other},
                                             {"db_namespace", other},
                                             {"db_user", other},
                                             {"operation", other},
                                             {"status_code", other}});
      }
      return other_statements;
    }
    Counter* counter = &statements->Add({{"db_system", label_value(c.db_system)},
                                         {"db_namespace", label_value(c.database)},
                                         {"db_user", label_value(c.user)},
                                         {"operation", label_value(s.operation)},
                                         {"status_code", label_value(s.status_code)}});
    statement_counters.emplace(key, counter);
    return counter;
  }

  // Series follow the current top: a fingerprint entering it gets a series
  // starting at its count, one leaving it loses its series (a later return
  // starts a new one). While in the top a series only grows, so it stays a
  // valid counter; the space-saving count of a candidate never decreases.
  void sync_fingerprints() {
    std::unordered_map<std::string, ExportedFingerprint> next;
    for (TopFingerprints::Entry& e : top_fingerprints.top(max_fingerprints)) {
      ExportedFingerprint x;
      if (auto it = exported_fingerprints.find(e.fingerprint); it != exported_fingerprints.end()) {
        // Its count only fell if it was evicted and counted anew: a new series.
        if (e.count >= it->second.count) {
          x = it->second;
        } else {
          fingerprints->Remove(it->second.counter);
        }
        exported_fingerprints.erase(it);
      }
      if (x.counter == nullptr) {
        x.counter = &fingerprints->Add(
            {{"fingerprint", label_value(e.fingerprint)}, {"summary", label_value(e.summary)}});
      }
      if (e.count > x.count) x.counter->Increment(static_cast<double>(e.count - x.count));
      x.count = e.count;
      next.emplace(std::move(e.fingerprint), x);
    }
    for (auto& [fp, x] : exported_fingerprints) fingerprints->Remove(x.counter);
    exported_fingerprints = std::move(next);
  }

  // db_system is set by our own decoders, so a small fixed bound is enough.
  template <typename T, typename... Args>
  T* per_db_system(Family<T>& family, std::unordered_map<std::string, T*>& cache,
                   const std::string& db_system, Args&&... args) {
    if (auto it = cache.find(db_system); it != cache.end()) return it->second;
    const bool overflow = cache.size() >= kMaxDbSystems;
    T* metric =
        &family.Add({{"db_system", overflow ? std::string(kOther) : label_value(db_system)}},
                    std::forward<Args>(args)...);
    if (!overflow) cache.emplace(db_system, metric);
    return metric;
  }
};

Result<std::unique_ptr<Exporter>> Exporter::Start(const std::string& address,
                                                  const std::string& version,
                                                  size_t max_fingerprints) {
  auto exporter =
      std::unique_ptr<Exporter>(new Exporter(std::make_unique<Impl>(version, max_fingerprints)));
  if (!address.empty()) {
    if (Status s = exporter->serve(address); !s.ok()) return s;
  }
  return exporter;
}

Status Exporter::serve(const std::string& address) {
  if (impl_->exposer) return Status::Error("metrics: already served");
  try {
    impl_->exposer = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return Status::Error("metrics: cannot serve on " + address +
                         " (is the address valid and the port free?): " + e.what());
  }
  impl_->exposer->RegisterCollectable(impl_->registry);
  return Status::Ok();
}

Exporter::Exporter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Exporter::~Exporter() = default;

void Exporter::on_statement(const Statement& statement) {
  static const ConnectionInfo kNoConnection;
  const ConnectionInfo& c = statement.connection != nullptr ? *statement.connection : kNoConnection;
  impl_->count_statement(c, statement);
  if (!statement.policy_action.empty()) {
    // Rule names come from the policy file, a bounded set; an approval's action names its
    // request ("approved:7"): the label keeps the outcome only.
    const std::string_view action =
        std::string_view(statement.policy_action).substr(0, statement.policy_action.find(':'));
    impl_
        ->pair_series(*impl_->policy_decisions, impl_->policy_series, "rule", statement.policy_rule,
                      "action", action)
        ->Increment();
  }
  for (const MaskedCount& mc : statement.masked_by) {
    // Rule names come from the policy file, detectors from its built-ins and its own list
    // (at most 64): bounded.
    impl_
        ->pair_series(*impl_->masked_values, impl_->masked_series, "rule", mc.rule, "detector",
                      mc.detector)
        ->Increment(mc.values);
  }
  if (!statement.fingerprint.empty()) {
    impl_->top_fingerprints.add(statement.fingerprint, statement.summary);
  }
}

void Exporter::count_config_reload(bool ok) {
  (ok ? impl_->reloads_ok : impl_->reloads_failed)->Increment();
}

void Exporter::set_active_connections(const std::string& db_system, int64_t n) {
  impl_->per_db_system(*impl_->connections, impl_->connection_gauges, db_system)
      ->Set(static_cast<double>(n));
}

void Exporter::publish(const CaptureCounters& capture, const DecoderCounters& decoder) {
  Impl& m = *impl_;
  CaptureCounters& lc = m.last_capture;
  add(m.capture_events, capture.events, lc.events);
  add(m.capture_bytes, capture.bytes, lc.bytes);
  for (int i = 0; i < 5; ++i) add(m.capture_drops[i], capture.drops[i], lc.drops[i]);
  add(m.capture_gaps, capture.gaps, lc.gaps);
  add(m.capture_gap_bytes, capture.gap_bytes, lc.gap_bytes);
  add(m.capture_ring_bytes, capture.ring_bytes, lc.ring_bytes);
  add(m.capture_bulk_skipped_bytes, capture.bulk_skipped_bytes, lc.bulk_skipped_bytes);

  DecoderCounters& ld = m.last_decoder;
  add(m.decoder_messages, decoder.messages, ld.messages);
  add(m.decoder_invalid, decoder.invalid_messages, ld.invalid_messages);
  add(m.decoder_resyncs, decoder.resyncs, ld.resyncs);
  add(m.decoder_truncated, decoder.truncated_queries, ld.truncated_queries);
  add(m.decoder_encrypted, decoder.encrypted_connections, ld.encrypted_connections);
  add(m.decoder_midstream, decoder.midstream_joins, ld.midstream_joins);
  add(m.login_failures_auth, decoder.login_failures_authentication,
      ld.login_failures_authentication);
  add(m.login_failures_other, decoder.login_failures_other, ld.login_failures_other);
  add(m.decoder_unresolved, decoder.unresolved_statements, ld.unresolved_statements);
  add(m.decoder_cancels, decoder.cancel_requests, ld.cancel_requests);
  add(m.decoder_compressed, decoder.compressed_connections, ld.compressed_connections);
  add(m.decoder_tls_not_captured, decoder.tls_not_captured, ld.tls_not_captured);
  add(m.parameters_cut, decoder.parameters_cut, ld.parameters_cut);
  add(m.parameters_dropped, decoder.parameters_dropped, ld.parameters_dropped);
  add(m.bulk_anchored, decoder.bulk_anchored, ld.bulk_anchored);
  add(m.bulk_mismatched, decoder.bulk_mismatched, ld.bulk_mismatched);
}

void Exporter::publish_fingerprints() { impl_->sync_fingerprints(); }

void Exporter::publish_sql(const SqlCounters& sql) {
  Impl& m = *impl_;
  SqlCounters& l = m.last_sql;
  add(m.sql_hits, sql.cache_hits, l.cache_hits);
  add(m.sql_misses, sql.cache_misses, l.cache_misses);
  add(m.sql_parsed, sql.parsed, l.parsed);
  add(m.sql_parse_failed, sql.parse_failures, l.parse_failures);
  add(m.sql_parse_skipped, sql.parses_skipped, l.parses_skipped);
  add(m.sql_redacted, sql.redacted, l.redacted);
  m.sql_cache_entries->Set(static_cast<double>(sql.cache_entries));
}

void Exporter::publish_identity(const IdentityCounters& identity) {
  Impl& m = *impl_;
  IdentityCounters& l = m.last_identity;
  add(m.identity_sources[0], identity.from_proc, l.from_proc);
  add(m.identity_sources[1], identity.from_connect_hook, l.from_connect_hook);
  add(m.identity_sources[2], identity.unresolved, l.unresolved);
}

void Exporter::publish_tls(const TlsCounters& tls) {
  Impl& m = *impl_;
  add(m.tls_events[0], tls.connections, m.last_tls[0]);
  add(m.tls_events[1], tls.plaintext_calls, m.last_tls[1]);
  add(m.tls_events[2], tls.ciphertext_suppressed, m.last_tls[2]);
  add(m.tls_events[3], tls.unknown_ssl, m.last_tls[3]);
  add(m.tls_events[4], tls.calls_not_recorded, m.last_tls[4]);
  m.tls_hooked->Set(static_cast<double>(tls.libraries_hooked));
  m.tls_unhooked->Set(static_cast<double>(tls.unhooked_libraries));
  m.tls_failed->Set(static_cast<double>(tls.attach_failures));
  m.tls_at_sites->Set(static_cast<double>(tls.functions_at_sites));
  m.tls_on_uretprobe->Set(static_cast<double>(tls.functions_on_uretprobe));
}

void Exporter::publish_audit(uint64_t records, uint64_t bytes, uint64_t write_errors,
                             uint64_t dropped) {
  Impl& m = *impl_;
  add(m.audit_records, records, m.last_audit[0]);
  add(m.audit_bytes, bytes, m.last_audit[1]);
  add(m.audit_write_errors, write_errors, m.last_audit[2]);
  add(m.audit_dropped, dropped, m.last_audit[3]);
}

void Exporter::set_audit_queue_bytes(uint64_t bytes) {
  impl_->audit_queue->Set(static_cast<double>(bytes));
}

void Exporter::publish_shipping(const std::string& sink, const ShippingCounters& c) {
  Impl& m = *impl_;
  auto it = m.shipping.find(sink);
  if (it == m.shipping.end()) {
    const prometheus::Labels labels{{"sink", label_value(sink)}};
    Impl::Shipping s{&m.ship_sent->Add(labels),       &m.ship_dropped->Add(labels),
                     &m.ship_reconnects->Add(labels), &m.ship_errors->Add(labels),
                     &m.ship_queue->Add(labels),      &m.ship_spool->Add(labels),
                     &m.ship_lag->Add(labels),        ShippingCounters{}};
    it = m.shipping.emplace(sink, s).first;
  }
  Impl::Shipping& s = it->second;
  add(s.sent, c.sent, s.last.sent);
  add(s.dropped, c.dropped, s.last.dropped);
  add(s.reconnects, c.reconnects, s.last.reconnects);
  add(s.errors, c.send_errors, s.last.send_errors);
  s.queue->Set(static_cast<double>(c.queue_bytes));
  s.spool->Set(static_cast<double>(c.spool_bytes));
  s.lag->Set(c.lag_seconds);
}

void Exporter::publish_enforcement(const EnforcementCounters& c) {
  Impl& m = *impl_;
  EnforcementCounters& l = m.last_enforcement;
  add(m.proxy_connections_total, c.proxy_accepted, l.proxy_accepted);
  add(m.proxy_upstream_failures, c.proxy_upstream_failures, l.proxy_upstream_failures);
  add(m.proxy_identity_failures, c.proxy_identity_failures, l.proxy_identity_failures);
  add(m.proxy_refused, c.proxy_refused, l.proxy_refused);
  add(m.proxy_tls_handshakes, c.proxy_tls_handshakes, l.proxy_tls_handshakes);
  add(m.proxy_tls_failures, c.proxy_tls_failures, l.proxy_tls_failures);
  add(m.proxy_tls_reload_failures, c.proxy_tls_reload_failures, l.proxy_tls_reload_failures);
  add(m.pg_reach_sets[0], c.pg_reach_hits, l.pg_reach_hits);
  add(m.pg_reach_sets[1], c.pg_reach_misses, l.pg_reach_misses);
  add(m.pg_reach_sets[2], c.pg_reach_waits, l.pg_reach_waits);
  add(m.pg_catalog_evictions, c.pg_catalog_evictions, l.pg_catalog_evictions);
  add(m.steering_counts[0], c.steered_tcp, l.steered_tcp);
  add(m.steering_counts[1], c.steered_unix, l.steered_unix);
  add(m.steering_counts[2], c.fail_open, l.fail_open);
  add(m.steering_counts[3], c.fail_closed, l.fail_closed);
  m.proxy_active->Set(static_cast<double>(c.proxy_active));
  m.enforcement_mode->Set(1);
  m.enforcement_alive->Set(c.proxy_alive ? 1 : 0);
  m.enforcement_fail_open->Set(c.fail_open_mode ? 1 : 0);
  m.enforcement_existing->Set(static_cast<double>(c.existing_connections));
}

void Exporter::publish_learn(const LearnCounters& c) {
  Impl& m = *impl_;
  LearnCounters& l = m.last_learn;
  add(m.learn_capped_identity, c.capped_identity, l.capped_identity);
  add(m.learn_capped_total, c.capped_total, l.capped_total);
  add(m.learn_write_errors, c.write_errors, l.write_errors);
  m.learn_identities->Set(static_cast<double>(c.identities));
  m.learn_fingerprints->Set(static_cast<double>(c.fingerprints));
}

void Exporter::publish_approvals(const ApprovalCounters& c) {
  Impl& m = *impl_;
  ApprovalCounters& l = m.last_approvals;
  m.approvals_pending->Set(static_cast<double>(c.pending));
  m.approvals_oldest->Set(c.oldest_pending_seconds);
  m.approvals_webhook_queue->Set(static_cast<double>(c.webhook_queued));
  add(m.approvals_requests, c.requests, l.requests);
  for (size_t i = 0; i < kApprovalOutcomes; ++i) {
    add(m.approvals_decisions[i], c.decisions[i], l.decisions[i]);
    std::vector<double> increments(kApprovalDecisionBucketCount + 1);
    bool any = false;
    for (size_t b = 0; b <= kApprovalDecisionBucketCount; ++b) {
      increments[b] =
          static_cast<double>(delta(c.decision_buckets[i][b], l.decision_buckets[i][b]));
      any |= increments[b] != 0;
    }
    const double sum = c.decision_seconds[i] - l.decision_seconds[i];
    l.decision_seconds[i] = c.decision_seconds[i];
    if (any) m.approvals_decision_seconds[i]->ObserveMultiple(increments, sum > 0 ? sum : 0);
  }
  add(m.approvals_webhook_failures, c.webhook_failures, l.webhook_failures);
  add(m.approvals_webhook_outcomes[0], c.webhook_delivered, l.webhook_delivered);
  add(m.approvals_webhook_outcomes[1], c.webhook_gave_up, l.webhook_gave_up);
  add(m.approvals_webhook_outcomes[2], c.webhook_dropped, l.webhook_dropped);
  add(m.approvals_webhook_outcomes[3], c.webhook_decided_first, l.webhook_decided_first);
  add(m.approvals_records_dropped, c.records_dropped, l.records_dropped);
  add(m.approvals_blast_role[0], c.blast_role_answered, l.blast_role_answered);
  add(m.approvals_blast_role[1], c.blast_role_timed_out, l.blast_role_timed_out);
  add(m.approvals_blast_role[2], c.blast_role_dropped, l.blast_role_dropped);
  for (size_t ch = 0; ch < kApprovalChannels; ++ch) {
    for (size_t r = 0; r < kApprovalRefusalReasons; ++r) {
      add(m.approvals_refused[ch][r], c.refused[ch][r], l.refused[ch][r]);
    }
  }
}

std::string Exporter::serialize() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

}  // namespace dbwarden::metrics
