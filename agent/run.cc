// SPDX-License-Identifier: Apache-2.0
#include "agent/run.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "agent/content_scrub.h"
#include "agent/approval_events.h"
#include "agent/approval_recovery.h"
#include "agent/enforcer.h"
#include "agent/log.h"
#include "agent/observer.h"
#include "agent/pipeline.h"
#include "agent/record_queue.h"
#include "agent/reload.h"
#include "agent/resume.h"
#include "agent/server_watcher.h"
#include "agent/systemd_notify.h"
#include "agent/version.h"
#include "audit/jsonl_writer.h"
#include "capture/capture.h"
#include "capture/local_client_key.h"
#include "metrics/exporter.h"
#include "policy/policy.h"
#include "shipping/stdout_shipper.h"
#include "shipping/syslog_shipper.h"
#include "sql/analyzer.h"

namespace dbwarden::agent {
namespace {

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_reload = 0;

void on_signal(int) { g_stop = 1; }
void on_hangup(int) { g_reload = 1; }

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: let the ring-buffer wait return EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_hangup;
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// The kernel's drop counters (pinned: they include what the ring lost while
// no agent read it), by reason, for the audit checkpoints.
std::vector<std::pair<std::string, uint64_t>> drops_by_reason(const capture::BpfCapture& cap) {
  const capture::DropCounts d = cap.drops();
  std::vector<std::pair<std::string, uint64_t>> out;
  for (size_t i = 0; i < d.by_reason.size(); i++) {
    out.emplace_back(capture::drop_reason_name(static_cast<int>(i)), d.by_reason[i]);
  }
  return out;
}

void publish_audit(metrics::Exporter& m, const audit::JsonlWriter& audit) {
  m.publish_audit(audit.records_written(), audit.bytes_written(), audit.write_errors(),
                  audit.records_dropped());
  m.set_audit_queue_bytes(audit.buffered_bytes());
}

void publish(metrics::Exporter& m, const capture::BpfCapture& cap, const Observer& obs,
             audit::JsonlWriter& audit) {
  metrics::CaptureCounters cc;
  cc.events = cap.records();
  cc.bytes = cap.payload_bytes();
  capture::DropCounts d = cap.drops();
  for (size_t i = 0; i < d.by_reason.size() && i < std::size(cc.drops); i++) {
    cc.drops[i] = d.by_reason[i];
  }
  cc.gaps = obs.stream_counters().gaps;
  cc.gap_bytes = obs.stream_counters().gap_bytes;
  cc.ring_bytes = cap.ring_bytes();
  cc.bulk_skipped_bytes = cap.bulk().skipped_bytes;
  // One set of decoder counters for now: both protocols' figures are summed.
  const pgsql::Counters& p = obs.pgsql_counters();
  const mysql::Counters& y = obs.mysql_counters();
  metrics::DecoderCounters dc;
  dc.messages = p.messages + y.packets;
  dc.invalid_messages = p.invalid_messages + y.invalid_packets;
  dc.resyncs = p.resyncs + y.resyncs;
  dc.truncated_queries = p.truncated_queries + y.truncated_queries;
  dc.encrypted_connections = p.encrypted_connections + y.encrypted_connections;
  dc.midstream_joins = p.midstream_joins + y.midstream_joins;
  dc.login_failures_authentication =
      p.login_failures_authentication + y.login_failures_authentication;
  dc.login_failures_other = p.login_failures_other + y.login_failures_other;
  dc.unresolved_statements = p.unresolved_statements + y.unresolved_statements;
  dc.cancel_requests = p.cancel_requests;
  dc.compressed_connections = y.compressed_connections;
  dc.bulk_anchored = p.bulk_anchored;
  dc.bulk_mismatched = p.bulk_mismatched;
  dc.tls_not_captured = p.tls_not_captured;
  dc.parameters_cut = p.parameters_cut;
  dc.parameters_dropped = p.parameters_dropped;
  m.publish(cc, dc);
  for (const char* system : {"postgresql", "mysql", "mariadb"}) {
    m.set_active_connections(system, static_cast<int64_t>(obs.active_connections(system)));
  }
  publish_audit(m, audit);
  audit.set_capture_drops(drops_by_reason(cap));
}

void publish_identity(metrics::Exporter& m, const Observer& obs,
                      const identity::Resolver& resolver) {
  metrics::IdentityCounters c;
  const uint64_t hook_only = resolver.stats().from_connector;
  c.from_connect_hook = hook_only;
  c.from_proc = obs.counters().peers_resolved - std::min(hook_only, obs.counters().peers_resolved);
  c.unresolved = obs.counters().peers_unresolved;
  m.publish_identity(c);
}

// The systemd unit runs as root with only the capabilities capture needs in
// its bounding set; a non-root caller with them (setcap) is fine too.
bool has_bpf_capabilities() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return false;
  char line[256];
  unsigned long long eff = 0;
  while (std::fgets(line, sizeof(line), f)) {
    if (std::sscanf(line, "CapEff: %llx", &eff) == 1) break;
  }
  std::fclose(f);
  constexpr int kCapPerfmon = 38, kCapBpf = 39;
  return (eff >> kCapBpf & 1) && (eff >> kCapPerfmon & 1);
}

void publish_shipping(metrics::Exporter& m, const shipping::StdoutShipper* out,
                      const shipping::SyslogShipper* syslog) {
  if (out) {
    auto s = out->stats();
    metrics::ShippingCounters c;
    c.sent = s.written;
    c.dropped = s.dropped;
    c.send_errors = s.write_errors;
    c.queue_bytes = s.buffered_bytes;
    m.publish_shipping("stdout", c);
  }
  if (syslog) {
    auto s = syslog->stats();
    metrics::ShippingCounters c;
    c.sent = s.sent;
    c.dropped = s.dropped;
    c.reconnects = s.reconnects;
    c.send_errors = s.send_errors + s.connect_errors + s.spool_errors;
    c.queue_bytes = s.queue_bytes;
    c.spool_bytes = s.spool_bytes;
    c.lag_seconds = static_cast<double>(s.lag_ms) / 1000.0;
    m.publish_shipping("syslog", c);
  }
}

// TLS capture: hooks libssl files that appeared since the last scan, logs
// what it found, and logs the counters whenever one that means loss changes
// (unknown SSL*, unhooked libraries, connections whose TLS was not captured).
void publish_sql(metrics::Exporter& m, const Pipeline& pipeline) {
  const sql::Analyzer& analyzer = pipeline.analyzer();
  const sql::AnalyzerCounters a = analyzer.counters();
  metrics::SqlCounters s;
  s.cache_hits = a.cache_hits;
  s.cache_misses = a.cache_misses;
  s.parsed = a.parses - std::min(a.parses, a.parse_failures);
  s.parse_failures = a.parse_failures;
  s.parses_skipped = a.parses_skipped;
  s.cache_entries = analyzer.cache_entries();
  s.redacted = pipeline.redacted();
  m.publish_sql(s);
}

void rescan_tls(capture::BpfCapture& cap, const Observer& obs, metrics::Exporter& m,
                std::string& last) {
  for (const std::string& note : cap.tls().rescan()) DBW_LOG(kInfo, "%s", note.c_str());
  capture::TlsStats t = cap.tls().stats();
  m.publish_tls({t.connections, t.plaintext_calls, t.ciphertext_suppressed, t.unknown_ssl,
                 t.calls_not_recorded, t.libraries_hooked, t.unhooked_libraries, t.attach_failures,
                 t.functions_at_sites, t.functions_on_uretprobe});
  char key[160];
  std::snprintf(key, sizeof(key), "%llu/%llu/%llu/%llu",
                static_cast<unsigned long long>(t.libraries_hooked),
                static_cast<unsigned long long>(t.unhooked_libraries),
                static_cast<unsigned long long>(t.unknown_ssl),
                static_cast<unsigned long long>(obs.pgsql_counters().tls_not_captured));
  if (last == key) return;
  last = key;
  DBW_LOG(kInfo,
          "TLS: %llu libssl file(s) hooked, %llu unhooked TLS librar(ies), %llu connection(s) "
          "decrypted, %llu call(s) on an unknown SSL*, %llu connection(s) not captured",
          static_cast<unsigned long long>(t.libraries_hooked),
          static_cast<unsigned long long>(t.unhooked_libraries),
          static_cast<unsigned long long>(t.connections),
          static_cast<unsigned long long>(t.unknown_ssl),
          static_cast<unsigned long long>(obs.pgsql_counters().tls_not_captured));
}

// The replay's metrics, for comparing two builds' counts of one recording.
Status write_metrics(const metrics::Exporter& m, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return Status::Error("cannot write the metrics to " + path);
  const std::string text = m.serialize();
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written) return Status::Error("writing the metrics to " + path);
  return Status::Ok();
}

void publish_enforcement(metrics::Exporter& m, const Enforcer& e, const ApprovalEvents& events) {
  const EnforcerStats s = e.stats();
  m.publish_enforcement(s.enforcement);
  m.publish_learn(s.learn);
  metrics::ApprovalCounters a;
  e.approval_counters(monotonic_ns(), a);
  a.records_dropped = events.dropped();
  m.publish_approvals(a);
}

std::string join_ports(const std::vector<uint16_t>& ports) {
  std::string out;
  for (uint16_t p : ports) out += (out.empty() ? "" : ",") + std::to_string(p);
  return out;
}

// The observer's syscall capture (bpf/dbwarden.bpf.c), resumed from its pins when a previous
// agent left them.
Result<std::unique_ptr<capture::BpfCapture>> open_capture(const Config& config, Observer& observer,
                                                          audit::JsonlWriter& audit) {
  capture::Options copts;
  copts.ringbuf_bytes = config.ringbuf_bytes;
  copts.bulk_head_bytes = config.bulk_head_bytes;
  copts.bulk_tail_bytes = config.bulk_tail_bytes;
  copts.record_path = config.record_file;
  copts.pin_dir = config.bpf_pin_dir;
  auto capture = capture::BpfCapture::Open(copts, observer);
  if (!capture.ok()) return capture.status();
  observer.set_capture(capture.value().get());
  audit.set_capture_drops(drops_by_reason(*capture.value()));
  if (capture.value()->data_hooks() == capture::DataHooks::kSyscall) {
    DBW_LOG(kInfo,
            "capture: this kernel has no socket tracepoints (Linux < 6.3): data calls are "
            "hooked per system call, so every read and write on the host starts a program");
  }
  if (capture.value()->resumed()) {
    std::vector<uint16_t> all_ports = config.postgres_ports;
    all_ports.insert(all_ports.end(), config.mysql_ports.begin(), config.mysql_ports.end());
    if (Status s = unwatch_stale_ports(*capture.value(), all_ports); !s.ok()) {
      DBW_LOG(kWarning, "%s", s.message().c_str());
    }
    size_t n = resume_connections(*capture.value(), observer);
    DBW_LOG(kInfo, "resumed the capture pinned at %s: %zu connection(s) carried over",
            config.bpf_pin_dir.c_str(), n);
  } else if (!config.bpf_pin_dir.empty()) {
    DBW_LOG(kInfo,
            "capture pinned at %s: it stays attached across restarts (`dbwarden detach` "
            "removes it)",
            config.bpf_pin_dir.c_str());
  }
  return capture;
}

// enforce-observer = off: no capture program may stay attached, not even one an earlier
// agent pinned (its tracepoints would tax every syscall of the host for nothing).
void leave_capture_off(const Config& config) {
  int removed = 0;
  if (!config.bpf_pin_dir.empty()) {
    if (Status s = capture::remove_pins(config.bpf_pin_dir, &removed); !s.ok()) {
      DBW_LOG(kWarning, "enforce-observer off: cannot remove the capture pinned at %s: %s",
              config.bpf_pin_dir.c_str(), s.message().c_str());
    }
  }
  DBW_LOG(kInfo,
          "enforce-observer off: no syscall capture%s; the proxy records every steered "
          "statement, connections that are not steered (open before enforcement) are not "
          "audited",
          removed > 0 ? " (the capture an earlier agent pinned is removed)" : "");
}

}  // namespace

int run(const Config& config) {
  log::Level level = log::Level::kInfo;
  log::parse_level(config.log_level, level);
  log::set_level(level);
  if (geteuid() != 0 && !has_bpf_capabilities()) {
    DBW_LOG(kError,
            "capture needs root or CAP_BPF and CAP_PERFMON: run it as root, with sudo, or "
            "through the systemd unit");
    return kExitNoPrivilege;
  }
  install_signal_handlers();
  if (config.mode == "observe") {
    if (auto left = leave_enforcement(config.steer_pin_dir); !left.ok()) {
      DBW_LOG(kError,
              "observe mode: cannot remove the steering an enforce run left at %s: %s "
              "(clients may still be steered to a proxy that is gone; `dbwarden detach`)",
              config.steer_pin_dir.c_str(), left.status().message().c_str());
      return kExitError;
    } else if (left.value() > 0) {
      DBW_LOG(kWarning,
              "observe mode: removed the steering an enforce run left at %s (%d pin(s)); the "
              "servers' sockets have their modes back and clients reach the servers directly",
              config.steer_pin_dir.c_str(), left.value());
    }
  }

  audit::WriterOptions wopts;
  wopts.path = config.audit_file;
  if (config.audit_format == "zst") {
    // A frame holds what the writer has at a flush, at most 100 ms of records.
    wopts.format = audit::TrailFormat::kFrames;
    wopts.flush_interval = wopts.frame_interval;
  }
  wopts.hmac_key_file = config.audit_hmac_key_file;
  wopts.state_dir = config.audit_state_dir;
  wopts.rotate_bytes = config.audit_rotate_bytes;
  wopts.rotate_age = std::chrono::seconds(config.audit_rotate_age_seconds);
  wopts.compress_rotated = config.audit_compress_level > 0;
  if (wopts.compress_rotated) wopts.zstd_level = config.audit_compress_level;
  wopts.checkpoint_records = config.audit_checkpoint_records;
  wopts.checkpoint_interval = std::chrono::seconds(config.audit_checkpoint_interval_seconds);
  wopts.fsync_interval = std::chrono::milliseconds(config.audit_fsync_interval_ms);
  // Enforce mode with the observer off: no syscall capture at all, the proxy records alone.
  const bool observing = config.mode != "enforce" || config.enforce_observer == "on";
  // The open checkpoint waits for the capture's (pinned) drop counters: after
  // a crash it then says what the ring lost while no agent was reading.
  wopts.defer_open_checkpoint = observing;
  auto audit = audit::JsonlWriter::Open(wopts);
  if (!audit.ok()) {
    DBW_LOG(kError, "%s", audit.status().message().c_str());
    return kExitError;
  }
  if (audit.value()->recovered()) {
    DBW_LOG(kWarning,
            "audit log %s: the previous agent did not stop cleanly; the chain continues after "
            "its last complete record (%llu byte(s) of a torn record cut off), recorded in a "
            "recovery record",
            config.audit_file.c_str(), static_cast<unsigned long long>(audit.value()->bytes_cut()));
  }
  // Served only once every probe and watch is live (below): until then a
  // readiness check gets no answer.
  auto exporter = metrics::Exporter::Start("", kVersion);
  if (!exporter.ok()) {
    DBW_LOG(kError, "%s", exporter.status().message().c_str());
    return kExitError;
  }

  std::vector<StatementSink*> outputs{audit.value().get(), exporter.value().get()};
  std::unique_ptr<shipping::StdoutShipper> to_stdout;
  if (config.audit_stdout) {
    auto s = shipping::StdoutShipper::Start({}, audit.value()->realtime_offset_ns());
    if (!s.ok()) {
      DBW_LOG(kError, "%s", s.status().message().c_str());
      return kExitError;
    }
    to_stdout = std::move(s.value());
    outputs.push_back(to_stdout.get());
  }
  std::unique_ptr<shipping::SyslogShipper> to_syslog;
  if (!config.syslog_address.empty()) {
    shipping::SyslogOptions o;
    o.address = config.syslog_address;
    o.tls = config.syslog_tls;
    o.ca_file = config.syslog_ca_file;
    o.server_name = config.syslog_server_name;
    o.spool_dir = config.syslog_spool_dir;
    if (o.spool_dir.empty()) {
      std::string base = config.audit_state_dir;
      if (base.empty()) {
        auto slash = config.audit_file.rfind('/');
        base = slash == std::string::npos ? "." : config.audit_file.substr(0, slash);
      }
      o.spool_dir = base + "/syslog-spool";
    }
    o.spool_max_bytes = config.syslog_spool_max_bytes;
    auto s = shipping::SyslogShipper::Start(o, audit.value()->realtime_offset_ns());
    if (!s.ok()) {
      DBW_LOG(kError, "%s", s.status().message().c_str());
      return kExitError;
    }
    to_syslog = std::move(s.value());
    outputs.push_back(to_syslog.get());
    DBW_LOG(kInfo, "shipping audit records to syslog at %s (spool %s)", o.address.c_str(),
            o.spool_dir.c_str());
  }
  const auto parameter_policy = MakeParameterPolicy(config.record_parameters);
  Pipeline pipeline(outputs, parameter_policy.get());
  // The policy's content detectors over records and log lines (observe mode too when a
  // policy is given; none: nothing changes). Cleared from the log before it goes.
  ContentScrub scrub;
  struct ClearLogFilter {
    ~ClearLogFilter() { log::set_filter(nullptr); }
  } clear_log_filter;
  if (config.mode != "enforce" && !config.policy_file.empty()) {
    auto p = policy::Policy::load_file(config.policy_file);
    if (!p.ok()) {
      DBW_LOG(kError, "policy %s", p.status().message().c_str());
      return kExitUsage;
    }
    scrub.set(p.value());
  }
  pipeline.set_scrub(&scrub);
  log::set_filter(&scrub);
  DecoderLimits limits;
  limits.pgsql.max_query_bytes = config.max_query_bytes;
  limits.mysql.max_query_bytes = config.max_query_bytes;
  identity::Resolver resolver;
  Observer observer(pipeline, limits, config.mysql_ports, &resolver);

  std::unique_ptr<capture::BpfCapture> capture;
  std::unique_ptr<ServerWatcher> watcher;
  if (observing) {
    auto opened = open_capture(config, observer, *audit.value());
    if (!opened.ok()) {
      DBW_LOG(kError, "%s", opened.status().message().c_str());
      return kExitError;
    }
    capture = std::move(opened.value());
    watcher = std::make_unique<ServerWatcher>(*capture, config.postgres_ports, config.mysql_ports);
    ServerWatcher* w = watcher.get();
    observer.set_server_listener([w](const dbw_server_event& e) { w->on_kernel_found(e); });
    if (Status s = watcher->start(); !s.ok()) {
      DBW_LOG(kError, "%s", s.message().c_str());
      return kExitError;
    }
  } else {
    leave_capture_off(config);
  }
  // Enforce mode: the proxy's records reach the pipeline through this queue, on this thread.
  RecordQueue proxy_records;
  ApprovalEvents approval_events;     // the approvals broker's steps, for the audit trail
  approval_events.set_scrub(&scrub);  // requests' texts: no detected value in them
  std::unique_ptr<Enforcer> enforcer;
  if (config.mode == "enforce") {
    observer.set_proxy_pid(static_cast<uint32_t>(getpid()));
    // The proxy names a local TCP client from what the capture's connect hook saw, as the
    // observer does: without it a process /proc was last scanned before is missed. With the
    // observer off it has /proc alone (read at accept, while the client waits for its login).
    const capture::BpfCapture* cap = capture.get();
    proxy::ConnectorLookup connectors;
    if (cap != nullptr) {
      connectors = [cap](const std::string& client, uint16_t client_port, const std::string& server,
                         uint16_t server_port) -> std::optional<identity::SeenConnector> {
        auto key = capture::tcp_client_key(client, client_port, server, server_port);
        if (!key) return std::nullopt;
        auto info = cap->local_client(*key);
        if (!info) return std::nullopt;
        return seen_connector(*info);
      };
    }
    auto e = Enforcer::Start(config, proxy_records, connectors, &approval_events);
    if (!e.ok()) {
      DBW_LOG(kError, "%s", e.status().message().c_str());
      return e.status().message().rfind("policy ", 0) == 0 ? kExitUsage : kExitError;
    }
    enforcer = std::move(e.value());
    scrub.set(enforcer->policy());
    DBW_LOG(kInfo, "%s", enforcer->summary().c_str());
  } else {
    // Requests an enforcing agent held when it died are denied and recorded now, whatever
    // this run does (approval_recovery.h); enforce mode does it in Enforcer::Start.
    const std::string journal = approvals_journal_path(config);
    if (auto n = recover_pending_approvals(journal, &approval_events); !n.ok()) {
      DBW_LOG(kWarning, "approvals: %s", n.status().message().c_str());
    } else if (n.value() > 0) {
      DBW_LOG(kWarning,
              "approvals: %zu request(s) left pending by an agent that did not stop cleanly: "
              "denied (agent_restart)",
              n.value());
      approval_events.drain(*audit.value());
    }
  }
  std::string tls_report;
  // Before "observing": the probes are live.
  if (capture) rescan_tls(*capture, observer, *exporter.value(), tls_report);
  std::string watching = "PostgreSQL on port(s) " + join_ports(config.postgres_ports);
  if (config.postgres_ports.empty()) watching = "";
  if (!config.mysql_ports.empty()) {
    watching += (watching.empty() ? "" : " and ") + std::string("MySQL on port(s) ") +
                join_ports(config.mysql_ports);
  }
  // Ready means capturing: the programs are attached, the ports, paths and
  // servers watched, the libssl probes placed. Only now /metrics answers, the
  // "observing" line is written and systemd hears READY=1.
  if (!config.metrics_address.empty()) {
    if (Status s = exporter.value()->serve(config.metrics_address); !s.ok()) {
      DBW_LOG(kError, "%s", s.message().c_str());
      return kExitError;
    }
  }
  DBW_LOG(kInfo,
          "observing %s: %zu server process(es) found now, new ones picked up as they start; "
          "audit log %s; metrics http://%s/metrics",
          watching.c_str(), watcher ? watcher->server_processes() : 0, config.audit_file.c_str(),
          config.metrics_address.c_str());
  SystemdNotifier systemd = SystemdNotifier::FromEnvironment();
  systemd.ready("observing " + watching);
  uint64_t last_watchdog = 0;

  Config running = config;
  Reloader reloader(running, watcher.get(), observer, exporter.value().get());

  uint64_t last_tick = 0;
  int status = kExitOk;
  while (!g_stop) {
    if (g_reload) {
      g_reload = 0;
      (void)reloader.reload();  // logged and counted; the running config stays on error
      if (enforcer) {
        if (Status s = enforcer->reload_policy(running.policy_file); !s.ok()) {
          DBW_LOG(kError, "reload: %s; the running policy stays", s.message().c_str());
          exporter.value()->count_config_reload(false);
        } else {
          scrub.set(enforcer->policy());
          DBW_LOG(kInfo, "reload: policy %s applied", running.policy_file.c_str());
        }
        if (Status s = enforcer->reload_tls(); !s.ok()) {
          DBW_LOG(kError, "reload: %s; the running certificate and key stay", s.message().c_str());
        } else if (!config.proxy_tls_cert_file.empty()) {
          DBW_LOG(kInfo, "reload: proxy TLS certificate %s loaded for new clients",
                  config.proxy_tls_cert_file.c_str());
        }
      } else if (!running.policy_file.empty()) {
        // Observe mode: the policy serves the content detectors only.
        if (auto p = policy::Policy::load_file(running.policy_file); p.ok()) {
          scrub.set(p.value());
          DBW_LOG(kInfo, "reload: policy %s applied (content detectors)",
                  running.policy_file.c_str());
        } else {
          DBW_LOG(kError, "reload: policy %s; the running policy stays",
                  p.status().message().c_str());
          exporter.value()->count_config_reload(false);
        }
      }
    }
    // Enforce mode turns faster: the proxy's records wait in the queue until then.
    Result<int> polled = 0;
    if (capture) {
      polled = capture->poll(enforcer ? 20 : 100);
    } else {
      const timespec turn{0, 20'000'000};
      nanosleep(&turn, nullptr);  // a signal ends it early
    }
    if (enforcer) {
      proxy_records.drain(pipeline);
      approval_events.drain(*audit.value());
    }
    if (!polled.ok()) {
      DBW_LOG(kError, "%s", polled.status().message().c_str());
      status = kExitError;
      break;
    }
    uint64_t now = monotonic_ns();
    if (watcher && watcher->refresh_pending()) {
      // The kernel found a server and captures it already; catch up now.
      if (Status s = watcher->refresh(); !s.ok()) {
        DBW_LOG(kWarning, "refreshing the server list: %s", s.message().c_str());
      }
    }
    audit.value()->flush_if_due(now);
    // The loop turns at least every 100 ms; a stuck loop stops the pets and
    // systemd restarts the agent.
    if (systemd.watchdog_interval_ns() && now - last_watchdog >= systemd.watchdog_interval_ns()) {
      last_watchdog = now;
      systemd.watchdog();
    }
    if (now - last_tick >= 1'000'000'000ull) {
      last_tick = now;
      if (watcher) {
        if (Status s = watcher->refresh(); !s.ok()) {
          DBW_LOG(kWarning, "refreshing the server list: %s", s.message().c_str());
        }
      }
      if (capture) {
        rescan_tls(*capture, observer, *exporter.value(), tls_report);
        publish(*exporter.value(), *capture, observer, *audit.value());
      } else {
        publish_audit(*exporter.value(), *audit.value());
      }
      publish_sql(*exporter.value(), pipeline);
      publish_identity(*exporter.value(), observer, resolver);
      exporter.value()->publish_fingerprints();
      publish_shipping(*exporter.value(), to_stdout.get(), to_syslog.get());
      if (enforcer) {
        enforcer->tick(now);
        publish_enforcement(*exporter.value(), *enforcer, approval_events);
      }
    }
  }

  systemd.stopping();
  // The proxy first: its open connections end and their records join the queue.
  enforcer.reset();
  proxy_records.drain(pipeline);
  approval_events.drain(*audit.value());
  // Drain what the kernel already captured, then end every connection so that
  // statements waiting for a response are still recorded.
  while (capture) {
    auto n = capture->poll(0);
    if (!n.ok() || n.value() == 0) break;
  }
  observer.close_all(monotonic_ns());
  tls_report.clear();  // the TLS counters once more, whatever changed
  if (capture) rescan_tls(*capture, observer, *exporter.value(), tls_report);
  if (Status s = audit.value()->flush(); !s.ok()) {
    DBW_LOG(kError, "final audit flush failed: %s", s.message().c_str());
    status = kExitError;
  }
  // Give the collectors a few seconds; what is left waits in the spool.
  if (to_syslog) {
    if (Status s = to_syslog->flush(std::chrono::seconds(5)); !s.ok()) {
      DBW_LOG(kWarning, "syslog: %s (kept in the spool for the next start)", s.message().c_str());
    }
  }
  if (to_stdout) (void)to_stdout->flush(std::chrono::seconds(2));
  DBW_LOG(kInfo, "stopped; %llu statements audited",
          static_cast<unsigned long long>(audit.value()->records_written()));
  return status;
}

int replay(const ReplayConfig& config) {
  audit::WriterOptions wopts;
  wopts.path = config.audit_file;
  if (config.audit_format == "zst") wopts.format = audit::TrailFormat::kFrames;
  wopts.wait_when_full = true;  // offline: every record, however fast the input comes
  auto audit = audit::JsonlWriter::Open(wopts);
  if (!audit.ok()) {
    DBW_LOG(kError, "%s", audit.status().message().c_str());
    return kExitError;
  }
  std::vector<StatementSink*> outputs{audit.value().get()};
  // The live agent counts every statement in the exporter too; so does the
  // replay (registry only: an empty address serves nothing).
  std::unique_ptr<metrics::Exporter> exporter;
  if (config.metrics) {
    auto e = metrics::Exporter::Start("", kVersion);
    if (!e.ok()) {
      DBW_LOG(kError, "%s", e.status().message().c_str());
      return kExitError;
    }
    exporter = std::move(e.value());
    outputs.push_back(exporter.get());
  }
  Pipeline pipeline(outputs);
  DecoderLimits limits;
  limits.pgsql.max_query_bytes = config.max_query_bytes;
  limits.mysql.max_query_bytes = config.max_query_bytes;
  Observer observer(pipeline, limits, config.mysql_ports);
  auto stats = capture::replay(config.recording, observer);
  if (!stats.ok()) {
    DBW_LOG(kError, "%s", stats.status().message().c_str());
    return kExitError;
  }
  observer.close_all(0);
  if (Status s = audit.value()->flush(); !s.ok()) {
    DBW_LOG(kError, "%s", s.message().c_str());
    return kExitError;
  }
  if (exporter) {
    publish_sql(*exporter, pipeline);
    exporter->publish_fingerprints();
    if (!config.metrics_file.empty()) {
      if (Status s = write_metrics(*exporter, config.metrics_file); !s.ok()) {
        DBW_LOG(kError, "%s", s.message().c_str());
        return kExitError;
      }
    }
  }
  DBW_LOG(kInfo, "replayed %llu records (%llu malformed); %llu statements",
          static_cast<unsigned long long>(stats.value().records),
          static_cast<unsigned long long>(stats.value().malformed),
          static_cast<unsigned long long>(audit.value()->records_written()));
  return stats.value().malformed ? kExitError : kExitOk;
}

}  // namespace dbwarden::agent
