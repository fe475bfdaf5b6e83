// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden run` settings: command line first, then the config file (same
// keys, `key = value` lines), then built-in defaults.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace dbwarden::agent {

struct Config {
  std::string config_file;  // empty: none
  // The default follows audit_format: audit.jsonl.zst, or audit.jsonl for jsonl.
  std::string audit_file = "/var/log/dbwarden/audit.jsonl.zst";
  // "zst": sealed zstd frames (audit/frame.h); "jsonl": plain JSON Lines, a
  // chain field in every record (audit/chain.h).
  std::string audit_format = "zst";
  std::string metrics_address = "127.0.0.1:9977";
  std::vector<uint16_t> postgres_ports{5432};
  std::vector<uint16_t> mysql_ports;  // none by default
  uint64_t max_query_bytes = 1u << 20;
  bool record_parameters = true;  // bound values as db.query.parameter.N (parameter_policy.h)
  uint32_t ringbuf_bytes = 16u << 20;
  // The bulk-data bound (capture::Options): PostgreSQL server-to-client writes
  // keep their first/last this many bytes; both 0: off.
  uint32_t bulk_head_bytes = 1024;
  uint32_t bulk_tail_bytes = 1024;
  std::string record_file;  // non-empty: also record raw capture records (for replay)
  std::string log_level = "info";  // error, warning, info, debug
  // Where the capture state is pinned in bpffs; empty: not pinned (the
  // programs go away with the process).
  std::string bpf_pin_dir = "/sys/fs/bpf/dbwarden";
  // The `run` arguments this was parsed from, so that SIGHUP can parse the
  // same command line and the (changed) config file again.
  std::vector<std::string> args;
  // Shipping: besides the file, every record to stdout and/or a syslog collector.
  bool audit_stdout = false;
  std::string syslog_address;  // HOST:PORT; empty: off
  bool syslog_tls = false;
  std::string syslog_ca_file;
  std::string syslog_server_name;
  std::string syslog_spool_dir;  // empty: <audit state dir or log dir>/syslog-spool
  uint64_t syslog_spool_max_bytes = 256ull << 20;
  // Tamper-evident audit trail (see userspace/audit/jsonl_writer.h).
  std::string audit_hmac_key_file;  // empty: plain SHA-256 chain
  std::string audit_state_dir;      // empty: next to the audit log
  uint64_t audit_rotate_bytes = 128ull << 20;
  uint64_t audit_rotate_age_seconds = 86400;
  int audit_compress_level = 1;  // zstd level for rotated files; 0: keep them uncompressed
  uint64_t audit_checkpoint_records = 100000;
  uint64_t audit_checkpoint_interval_seconds = 300;
  uint64_t audit_fsync_interval_ms = 200;  // 0: no fdatasync but the state file's
  // Enforcement (README "Enforcement"): observe (passive, the default) or enforce (client
  // connections steered through the local policy proxy).
  std::string mode = "observe";
  std::string policy_file;           // enforce: the policy (YAML); required in enforce mode
  std::string fail_mode = "closed";  // closed | open: the proxy is down
  std::string enforce_existing = "keep";  // keep | terminate: connections open at start
  uint64_t enforce_existing_grace_seconds = 60;
  std::string proxy_socket_dir = "/run/dbwarden";  // the proxy's unix sockets
  std::string steer_pin_dir = "/sys/fs/bpf/dbwarden-steer";
  std::string proxy_tls_cert_file;  // TLS toward clients; empty: SSLRequest answered 'N'
  std::string proxy_tls_key_file;
  // enforce: on (default) keeps the observer's syscall capture beside the proxy, so that
  // connections steering cannot move (open before enforcement) are audited too; off runs the
  // proxy alone, with no capture program attached (README "Enforcement", "Observer off").
  std::string enforce_observer = "on";
  std::string approvals_socket;  // approvers' CLI socket; empty: <proxy_socket_dir>/approvals.sock
  std::string approvals_group;   // unix group that may connect to it; empty: root only
  // The approvals HTTP API and web inbox (agent/approvals_http_server.h): served when a
  // tokens file is given.
  std::string approvals_tokens;  // NAME SHA-256 lines (`dbwarden approvals token add`)
  std::string approvals_listen = "127.0.0.1:9978";
  std::string approvals_tls_cert_file;  // both set: HTTPS
  std::string approvals_tls_key_file;
  std::string approvals_url;  // the inbox's origin as browsers reach it; empty: the listen address
  // Each new approval request is POSTed here (agent/approval_webhook.h); empty: no webhook.
  std::string approvals_webhook_url;
  std::string approvals_webhook_secret_file;  // HMAC key for X-Dbwarden-Signature; empty: none
  // The blast radius's middle fallback (proxy/explain_worker.h): when the held client's
  // session cannot run the EXPLAIN, the agent runs it on a connection of its own, as this
  // PostgreSQL role (peer authentication, a pg_ident map from the agent's OS user) and this
  // MySQL / MariaDB account (unix_socket authentication: the OS user of that name). Empty: off.
  std::string approvals_blast_radius_postgres_role;
  std::string approvals_blast_radius_mysql_user;
};

// Parses `dbwarden run` arguments (argv[0] is "run"). Returns nullopt after
// printing --help or --version to `out`; an error Status names the problem.
Result<std::optional<Config>> parse_run_config(int argc, const char* const* argv,
                                               std::ostream& out);

// `dbwarden replay FILE --audit-file PATH`: decodes a recording offline.
struct ReplayConfig {
  std::string recording;
  std::string audit_file;
  // "jsonl" (default: a plain file to read) or "zst" (the framed trail, as `run`'s default).
  std::string audit_format = "jsonl";
  uint64_t max_query_bytes = 1u << 20;
  std::vector<uint16_t> mysql_ports;  // as given to `run`: they pick the decoder
  // Statements also go to a metrics exporter (registry only, nothing served),
  // as in `run`: the replay costs what the live agent's decode thread does.
  bool metrics = true;
  std::string metrics_file;  // non-empty: the registry's exposition text, written at the end
};
Result<std::optional<ReplayConfig>> parse_replay_config(int argc, const char* const* argv,
                                                        std::ostream& out);

}  // namespace dbwarden::agent
