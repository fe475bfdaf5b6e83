// SPDX-License-Identifier: Apache-2.0
#include "agent/reload.h"

#include <sstream>

#include "agent/log.h"

namespace dbwarden::agent {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

ConfigDiff diff_config(const Config& a, const Config& b) {
  ConfigDiff d;
  d.ports = a.postgres_ports != b.postgres_ports || a.mysql_ports != b.mysql_ports;
  d.max_query_bytes = a.max_query_bytes != b.max_query_bytes;
  d.log_level = a.log_level != b.log_level;
  // Everything else is fixed for the life of the process: the kernel objects
  // (ring buffer, pins), the open files and sockets, the shipping threads.
  auto fixed = [&](const char* name, bool differs) {
    if (differs) d.needs_restart.emplace_back(name);
  };
  fixed("audit-file", a.audit_file != b.audit_file);
  fixed("metrics-address", a.metrics_address != b.metrics_address);
  fixed("ringbuf-bytes", a.ringbuf_bytes != b.ringbuf_bytes);
  fixed("bulk-head-bytes", a.bulk_head_bytes != b.bulk_head_bytes);
  fixed("bulk-tail-bytes", a.bulk_tail_bytes != b.bulk_tail_bytes);
  fixed("record", a.record_file != b.record_file);
  fixed("bpf-pin-dir", a.bpf_pin_dir != b.bpf_pin_dir);
  fixed("audit-stdout", a.audit_stdout != b.audit_stdout);
  fixed("syslog-address", a.syslog_address != b.syslog_address);
  fixed("syslog-tls", a.syslog_tls != b.syslog_tls);
  fixed("syslog-ca-file", a.syslog_ca_file != b.syslog_ca_file);
  fixed("syslog-server-name", a.syslog_server_name != b.syslog_server_name);
  fixed("syslog-spool-dir", a.syslog_spool_dir != b.syslog_spool_dir);
  fixed("syslog-spool-max-bytes", a.syslog_spool_max_bytes != b.syslog_spool_max_bytes);
  fixed("audit-hmac-key-file", a.audit_hmac_key_file != b.audit_hmac_key_file);
  fixed("audit-state-dir", a.audit_state_dir != b.audit_state_dir);
  fixed("audit-rotate-bytes", a.audit_rotate_bytes != b.audit_rotate_bytes);
  fixed("audit-rotate-age-seconds", a.audit_rotate_age_seconds != b.audit_rotate_age_seconds);
  fixed("audit-compress-level", a.audit_compress_level != b.audit_compress_level);
  fixed("audit-format", a.audit_format != b.audit_format);
  fixed("audit-checkpoint-records", a.audit_checkpoint_records != b.audit_checkpoint_records);
  fixed("audit-checkpoint-interval-seconds",
        a.audit_checkpoint_interval_seconds != b.audit_checkpoint_interval_seconds);
  fixed("mode", a.mode != b.mode);
  fixed("enforce-observer", a.enforce_observer != b.enforce_observer);
  fixed("audit-fsync-interval-ms", a.audit_fsync_interval_ms != b.audit_fsync_interval_ms);
  fixed("approvals-webhook-url", a.approvals_webhook_url != b.approvals_webhook_url);
  fixed("approvals-webhook-secret-file",
        a.approvals_webhook_secret_file != b.approvals_webhook_secret_file);
  return d;
}

Result<Config> reparse_config(const Config& running) {
  if (running.args.empty()) return Status::Error("no command line to parse again");
  std::vector<const char*> argv;
  for (const auto& a : running.args) argv.push_back(a.c_str());
  std::ostringstream ignored;  // --help/--version cannot appear in a running agent's args
  auto parsed = parse_run_config(static_cast<int>(argv.size()), argv.data(), ignored);
  if (!parsed.ok()) return parsed.status();
  if (!parsed.value()) return Status::Error("the command line asks for help, not a run");
  return std::move(*parsed.value());
}

Status Reloader::reload() {
  auto next = reparse_config(config_);
  Status result = Status::Ok();
  if (!next.ok()) {
    result = Status::Error("config reload failed, running config kept: " + next.status().message());
  } else {
    Config& n = next.value();
    ConfigDiff d = diff_config(config_, n);
    if (d.ports && watcher_ == nullptr) {
      // Enforce mode with the observer off: the proxy's routes are set at start.
      d.needs_restart.emplace_back("postgres-port/mysql-port");
      d.ports = false;
    } else if (d.ports) {
      if (Status s = watcher_->set_ports(n.postgres_ports, n.mysql_ports); !s.ok()) {
        // Partly applied ports are worse than either set: go back to the old.
        (void)watcher_->set_ports(config_.postgres_ports, config_.mysql_ports);
        result = Status::Error("config reload failed applying the ports (" + s.message() +
                               "), running config kept");
      } else {
        observer_.set_mysql_ports(n.mysql_ports);
        config_.postgres_ports = n.postgres_ports;
        config_.mysql_ports = n.mysql_ports;
      }
    }
    if (result.ok()) {
      if (d.max_query_bytes) {
        DecoderLimits limits;
        limits.pgsql.max_query_bytes = n.max_query_bytes;
        limits.mysql.max_query_bytes = n.max_query_bytes;
        observer_.set_limits(limits);
        config_.max_query_bytes = n.max_query_bytes;
      }
      if (d.log_level) {
        log::Level level = log::Level::kInfo;
        log::parse_level(n.log_level, level);
        log::set_level(level);
        config_.log_level = n.log_level;
      }
      if (!d.needs_restart.empty()) {
        DBW_LOG(kWarning, "config reload: %s changed but needs restart; kept as running",
                join(d.needs_restart).c_str());
      }
      DBW_LOG(kInfo, "config reloaded%s%s%s%s", d.any() ? ":" : ", nothing changed",
              d.ports ? " ports" : "", d.max_query_bytes ? " max-query-bytes" : "",
              d.log_level ? " log-level" : "");
    }
  }
  if (!result.ok()) DBW_LOG(kError, "%s", result.message().c_str());
  if (metrics_) metrics_->count_config_reload(result.ok());
  return result;
}

}  // namespace dbwarden::agent
