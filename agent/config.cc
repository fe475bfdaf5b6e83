// SPDX-License-Identifier: Apache-2.0
#include "agent/config.h"

#include <boost/program_options.hpp>
#include <algorithm>
#include <cctype>
#include <fstream>
#include <tuple>
#include <type_traits>
#include <ostream>

#include "agent/version.h"
#include "capture/capture.h"

namespace dbwarden::agent {
namespace po = boost::program_options;
namespace {

po::options_description settings() {
  po::options_description d("Settings (also accepted in the config file as key = value)");
  d.add_options()
      ("audit-file", po::value<std::string>(), "audit log path (default "
       "/var/log/dbwarden/audit.jsonl.zst, or audit.jsonl with --audit-format jsonl)")
      ("audit-format", po::value<std::string>(),
       "zst (default: JSON Lines in sealed zstd frames, read with `dbwarden audit cat` or "
       "zstdcat) or jsonl (plain JSON Lines, a chain field in every record; costs more CPU "
       "per record, see bench/README.md)")
      ("metrics-address", po::value<std::string>(),
       "Prometheus endpoint HOST:PORT (default 127.0.0.1:9977; loopback unless you mean it)")
      ("postgres-port", po::value<std::vector<unsigned>>(),
       "PostgreSQL port to watch, repeatable (default 5432); its unix sockets are found too")
      ("mysql-port", po::value<std::vector<unsigned>>(),
       "MySQL/MariaDB port to watch, repeatable (default none); the unix sockets of the server "
       "listening there are found too")
      ("max-query-bytes", po::value<uint64_t>(),
       "longest statement text kept in a record; longer is cut and marked (default 1048576)")
      ("record-parameters", po::value<bool>(),
       "record bound parameter values (extended protocol, prepared statements) as "
       "db.query.parameter.N (default true; false: never recorded)")
      ("ringbuf-bytes", po::value<uint32_t>(),
       "kernel ring buffer size, a power of two (default 16777216)")
      ("bulk-head-bytes", po::value<uint32_t>(),
       "PostgreSQL server-to-client writes longer than head + tail (result rows, COPY out) "
       "are captured as their first this many bytes and their last --bulk-tail-bytes; the "
       "middle is counted, not copied (default 1024, at most 8192)")
      ("bulk-tail-bytes", po::value<uint32_t>(),
       "see --bulk-head-bytes; must hold CommandComplete + ReadyForQuery: 0 (with head 0: "
       "the bound is off) or 64..8192 (default 1024)")
      ("audit-hmac-key-file", po::value<std::string>(),
       "key file for an HMAC-SHA-256 audit chain (default: plain SHA-256); never logged")
      ("audit-state-dir", po::value<std::string>(),
       "where the chain head is kept between restarts (default: next to the audit log)")
      ("audit-rotate-bytes", po::value<uint64_t>(),
       "rotate the audit log at this size; rotated files are zstd-compressed "
       "(default 134217728, 0: never)")
      ("audit-rotate-age-seconds", po::value<uint64_t>(),
       "rotate the audit log at this age (default 86400, 0: never)")
      ("audit-compress-level", po::value<int>(),
       "--audit-format jsonl: zstd level for rotated audit logs, 1..19 (default 1: fastest, "
       "~14x on audit JSON), 0: do not compress (zst frames are compressed as written)")
      ("audit-checkpoint-records", po::value<uint64_t>(),
       "write a chain checkpoint every N records (default 100000, 0: only at rotation)")
      ("audit-checkpoint-interval-seconds", po::value<uint64_t>(),
       "... and every N seconds (default 300, 0: never)")
      ("audit-fsync-interval-ms", po::value<uint64_t>(),
       "fdatasync the audit log at most this long after a write: what a power loss can take "
       "(default 200, the flush interval; 0: left to the kernel, the state file still syncs "
       "what it names once a second)")
      ("audit-stdout", po::value<bool>(),
       "also write every audit record to stdout, one JSON line each (containers, journald); "
       "default false")
      ("syslog-address", po::value<std::string>(),
       "also ship every audit record to this RFC 5424 syslog collector, HOST:PORT over TCP "
       "with octet-counted framing (default: off)")
      ("syslog-tls", po::value<bool>(), "use TLS to the syslog collector (default false)")
      ("syslog-ca-file", po::value<std::string>(),
       "CA certificates to trust for the collector (default: the system store)")
      ("syslog-server-name", po::value<std::string>(),
       "name expected in the collector's certificate (default: the HOST of --syslog-address)")
      ("syslog-spool-dir", po::value<std::string>(),
       "where records wait on disk while the collector is unreachable (default: "
       "syslog-spool next to the audit chain state)")
      ("syslog-spool-max-bytes", po::value<uint64_t>(),
       "spool bound; beyond it new records are dropped and counted (default 268435456)")
      ("log-level", po::value<std::string>(),
       "the agent's own log on stderr/journald: error, warning, info or debug (default info)")
      ("bpf-pin-dir", po::value<std::string>(),
       "bpffs directory where the kernel state is pinned, so that a restarted agent resumes "
       "the connections it was tracking (default /sys/fs/bpf/dbwarden; empty: do not pin). "
       "`dbwarden detach` removes it")
      ("mode", po::value<std::string>(),
       "observe (default: watch, change nothing) or enforce (steer client connections "
       "through the local policy proxy; needs --policy)")
      ("policy", po::value<std::string>(),
       "policy file (YAML; `dbwarden policy check FILE` validates it): the rules in enforce "
       "mode; in both modes its mask rules' content detectors mask values in audit records, "
       "metrics labels and log lines")
      ("fail-mode", po::value<std::string>(),
       "enforce mode, when the proxy is down: closed (default: new connections are refused) "
       "or open (they reach the server directly, unchecked)")
      ("enforce-existing", po::value<std::string>(),
       "enforce mode, connections already open at start (they cannot be steered): keep "
       "(default: listed and counted) or terminate (after --enforce-existing-grace-seconds)")
      ("enforce-existing-grace-seconds", po::value<uint64_t>(),
       "grace period before enforce-existing = terminate ends them (default 60)")
      ("proxy-socket-dir", po::value<std::string>(),
       "enforce mode: directory of the proxy's unix sockets (default /run/dbwarden)")
      ("steer-pin-dir", po::value<std::string>(),
       "bpffs directory where steering is pinned, so it outlives a proxy restart (default "
       "/sys/fs/bpf/dbwarden-steer)")
      ("proxy-tls-cert-file", po::value<std::string>(),
       "enforce mode: PEM certificate (chain) for TLS toward clients, terminated in the proxy "
       "(default none: TLS is refused and clients continue in plaintext or give up, per their "
       "sslmode)")
      ("proxy-tls-key-file", po::value<std::string>(), "key for --proxy-tls-cert-file")
      ("enforce-observer", po::value<std::string>(),
       "enforce mode: on (default: the observer's syscall capture runs beside the proxy and "
       "audits connections that are not steered, e.g. those open before enforcement) or off "
       "(the proxy alone records every steered statement; nothing else is audited)")
      ("approvals-socket", po::value<std::string>(),
       "enforce mode: the approvers' socket for `dbwarden approvals` (default "
       "<proxy-socket-dir>/approvals.sock)")
      ("approvals-group", po::value<std::string>(),
       "enforce mode: unix group whose members may connect to the approvals socket (default "
       "none: root only)")
      ("approvals-tokens", po::value<std::string>(),
       "enforce mode: the approvers' token file (NAME and SHA-256 of the token, a line each; "
       "`dbwarden approvals token add NAME` writes it). Given, the agent serves the approvals "
       "HTTP API and web inbox on --approvals-listen (default: not served)")
      ("approvals-listen", po::value<std::string>(),
       "where the approvals API and inbox listen, HOST:PORT or [IPv6]:PORT (default "
       "127.0.0.1:9978; loopback unless you mean it)")
      ("approvals-tls-cert-file", po::value<std::string>(),
       "PEM certificate (chain): the approvals API and inbox over HTTPS only (default: HTTP)")
      ("approvals-tls-key-file", po::value<std::string>(), "key for --approvals-tls-cert-file")
      ("approvals-url", po::value<std::string>(),
       "the inbox's origin as approvers' browsers reach it, e.g. https://db1.example.com:9978 "
       "(default: the listen address; required when listening on all addresses): requests for "
       "another Host or from another Origin are refused")
      ("approvals-webhook-url", po::value<std::string>(),
       "enforce mode: POST each new approval request as JSON (with a Slack-compatible `text`) "
       "to this http:// or https:// URL, retried with backoff (default none)")
      ("approvals-webhook-secret-file", po::value<std::string>(),
       "file holding the key (16-4096 bytes) that signs each webhook POST: "
       "X-Dbwarden-Signature: sha256=HMAC(key, X-Dbwarden-Timestamp + \".\" + body)")
      ("approvals-blast-radius-postgres-role", po::value<std::string>(),
       "enforce mode: when a held statement's own session cannot run the EXPLAIN of its blast "
       "radius (inside a transaction), the agent runs it as this PostgreSQL role, over the "
       "server's unix socket with peer authentication (a pg_ident map from the agent's OS user "
       "to the role; no password anywhere). Default none: \"estimate unavailable\"")
      ("approvals-blast-radius-mysql-user", po::value<std::string>(),
       "enforce mode: the same for MySQL/MariaDB, as this account over the server's unix socket "
       "with unix_socket authentication: an OS user of the same name must exist (the agent "
       "connects as it). Default none")
      ("record", po::value<std::string>(),
       "also write every raw capture record to this new file (replay it with `dbwarden "
       "replay`), created 0600; it holds statement text as captured, before redaction, "
       "so passwords too: protect it more than the audit log");
  return d;
}

// A repeatable port option: replaces `out` when given, each value 1..65535.
Status take_ports(const po::variables_map& vm, const char* key, std::vector<uint16_t>& out) {
  if (!vm.count(key)) return Status::Ok();
  out.clear();
  for (unsigned p : vm[key].as<std::vector<unsigned>>()) {
    if (p == 0 || p > 65535) {
      return Status::Error(std::string("--") + key + " must be 1..65535, got " + std::to_string(p));
    }
    out.push_back(static_cast<uint16_t>(p));
  }
  return Status::Ok();
}

Status validate(Config& c) {
  if (c.audit_file.empty()) return Status::Error("--audit-file must not be empty");
  if (c.audit_format != "zst" && c.audit_format != "jsonl") {
    return Status::Error("--audit-format must be zst or jsonl, got '" + c.audit_format + "'");
  }
  auto colon = c.metrics_address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == c.metrics_address.size()) {
    return Status::Error("--metrics-address must be HOST:PORT, got '" + c.metrics_address + "'");
  }
  try {
    unsigned long port = std::stoul(c.metrics_address.substr(colon + 1));
    if (port == 0 || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return Status::Error("--metrics-address has a bad port: '" + c.metrics_address + "'");
  }
  if (c.postgres_ports.empty() && c.mysql_ports.empty()) {
    return Status::Error("at least one --postgres-port or --mysql-port is needed");
  }
  for (uint16_t p : c.mysql_ports) {
    if (std::find(c.postgres_ports.begin(), c.postgres_ports.end(), p) != c.postgres_ports.end()) {
      return Status::Error("port " + std::to_string(p) +
                           " is given as both --postgres-port and --mysql-port");
    }
  }
  if (c.max_query_bytes < 64) return Status::Error("--max-query-bytes must be at least 64");
  if (c.audit_compress_level < 0 || c.audit_compress_level > 19) {
    return Status::Error("--audit-compress-level must be 0..19, got " +
                         std::to_string(c.audit_compress_level));
  }
  if (c.log_level != "error" && c.log_level != "warning" && c.log_level != "info" &&
      c.log_level != "debug") {
    return Status::Error("--log-level must be error, warning, info or debug, got '" +
                         c.log_level + "'");
  }
  if (c.ringbuf_bytes < 4096 || (c.ringbuf_bytes & (c.ringbuf_bytes - 1))) {
    return Status::Error("--ringbuf-bytes must be a power of two >= 4096, got " +
                         std::to_string(c.ringbuf_bytes));
  }
  if (Status s = capture::validate_bulk_bound(c.bulk_head_bytes, c.bulk_tail_bytes); !s.ok()) {
    return s;
  }
  if (c.mode != "observe" && c.mode != "enforce") {
    return Status::Error("--mode must be observe or enforce, got '" + c.mode + "'");
  }
  if (c.fail_mode != "closed" && c.fail_mode != "open") {
    return Status::Error("--fail-mode must be closed or open, got '" + c.fail_mode + "'");
  }
  if (c.enforce_existing != "keep" && c.enforce_existing != "terminate") {
    return Status::Error("--enforce-existing must be keep or terminate, got '" +
                         c.enforce_existing + "'");
  }
  if (!c.approvals_webhook_url.empty() && c.approvals_webhook_url.rfind("http://", 0) != 0 &&
      c.approvals_webhook_url.rfind("https://", 0) != 0) {
    return Status::Error("--approvals-webhook-url must start with http:// or https://");
  }
  if (!c.approvals_webhook_secret_file.empty() && c.approvals_webhook_url.empty()) {
    return Status::Error("--approvals-webhook-secret-file needs --approvals-webhook-url");
  }
  if (c.enforce_observer != "on" && c.enforce_observer != "off") {
    return Status::Error("--enforce-observer must be on or off, got '" + c.enforce_observer + "'");
  }
  if (c.mode != "enforce" && c.enforce_observer == "off") {
    return Status::Error("--enforce-observer off needs --mode enforce (observe mode is the "
                         "observer)");
  }
  if (c.mode == "enforce" && c.policy_file.empty()) {
    return Status::Error("--mode enforce needs --policy FILE (the shipped default: "
                         "/etc/dbwarden/policy.yaml)");
  }
  if (c.proxy_tls_cert_file.empty() != c.proxy_tls_key_file.empty()) {
    return Status::Error("--proxy-tls-cert-file and --proxy-tls-key-file go together");
  }
  if (c.approvals_tls_cert_file.empty() != c.approvals_tls_key_file.empty()) {
    return Status::Error("--approvals-tls-cert-file and --approvals-tls-key-file go together");
  }
  for (const auto& [key, name, max] :
       {std::tuple<const char*, const std::string*, size_t>{
            "approvals-blast-radius-postgres-role", &c.approvals_blast_radius_postgres_role, 63},
        {"approvals-blast-radius-mysql-user", &c.approvals_blast_radius_mysql_user, 32}}) {
    if (name->empty()) continue;
    if (c.mode != "enforce") {
      return Status::Error(std::string("--") + key +
                           " needs --mode enforce (the blast radius is estimated for statements "
                           "the proxy holds)");
    }
    const bool bad_char = std::any_of(name->begin(), name->end(), [](char ch) {
      return !std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.';
    });
    if (name->size() > max || bad_char) {
      return Status::Error(std::string("--") + key + " must be 1-" + std::to_string(max) +
                           " letters, digits, '_', '-' or '.', got '" + *name + "'");
    }
  }
  if (c.approvals_tokens.empty() &&
      (!c.approvals_tls_cert_file.empty() || !c.approvals_url.empty())) {
    return Status::Error("--approvals-tls-cert-file and --approvals-url need --approvals-tokens "
                         "(the approvals API is served only for approvers with tokens)");
  }
  return Status::Ok();
}

}  // namespace

Result<std::optional<Config>> parse_run_config(int argc, const char* const* argv,
                                               std::ostream& out) {
  po::options_description general("dbwarden run: observe database traffic on this host");
  general.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("config,c", po::value<std::string>(), "config file (same keys as the options below)");
  po::options_description all;
  all.add(general).add(settings());

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
    if (vm.count("help")) {
      out << "Usage: dbwarden run [options]\n\n" << all << "\n";
      return std::optional<Config>();
    }
    if (vm.count("version")) {
      out << "dbwarden " << kVersion << "\n";
      return std::optional<Config>();
    }
    Config c;
    if (vm.count("config")) {
      c.config_file = vm["config"].as<std::string>();
      std::ifstream file(c.config_file);
      if (!file) {
        return Status::Error("cannot read config file " + c.config_file +
                             ": check the path and permissions");
      }
      // Stored second: the command line wins over the file.
      po::store(po::parse_config_file(file, settings()), vm);
    }
    po::notify(vm);
    if (vm.count("audit-format")) c.audit_format = vm["audit-format"].as<std::string>();
    if (vm.count("audit-file")) {
      c.audit_file = vm["audit-file"].as<std::string>();
    } else if (c.audit_format == "jsonl") {
      c.audit_file = "/var/log/dbwarden/audit.jsonl";
    }
    if (vm.count("metrics-address")) c.metrics_address = vm["metrics-address"].as<std::string>();
    if (Status s = take_ports(vm, "postgres-port", c.postgres_ports); !s.ok()) return s;
    if (Status s = take_ports(vm, "mysql-port", c.mysql_ports); !s.ok()) return s;
    if (vm.count("max-query-bytes")) c.max_query_bytes = vm["max-query-bytes"].as<uint64_t>();
    if (vm.count("record-parameters")) c.record_parameters = vm["record-parameters"].as<bool>();
    if (vm.count("ringbuf-bytes")) c.ringbuf_bytes = vm["ringbuf-bytes"].as<uint32_t>();
    if (vm.count("bulk-head-bytes")) c.bulk_head_bytes = vm["bulk-head-bytes"].as<uint32_t>();
    if (vm.count("bulk-tail-bytes")) c.bulk_tail_bytes = vm["bulk-tail-bytes"].as<uint32_t>();
    if (vm.count("record")) c.record_file = vm["record"].as<std::string>();
    auto take = [&](const char* key, auto& field) {
      if (vm.count(key)) field = vm[key].as<std::remove_reference_t<decltype(field)>>();
    };
    take("log-level", c.log_level);
    take("bpf-pin-dir", c.bpf_pin_dir);
    c.args.assign(argv, argv + argc);
    take("audit-stdout", c.audit_stdout);
    take("syslog-address", c.syslog_address);
    take("syslog-tls", c.syslog_tls);
    take("syslog-ca-file", c.syslog_ca_file);
    take("syslog-server-name", c.syslog_server_name);
    take("syslog-spool-dir", c.syslog_spool_dir);
    take("syslog-spool-max-bytes", c.syslog_spool_max_bytes);
    take("audit-hmac-key-file", c.audit_hmac_key_file);
    take("audit-state-dir", c.audit_state_dir);
    take("audit-rotate-bytes", c.audit_rotate_bytes);
    take("audit-rotate-age-seconds", c.audit_rotate_age_seconds);
    take("audit-compress-level", c.audit_compress_level);
    take("audit-checkpoint-records", c.audit_checkpoint_records);
    take("audit-checkpoint-interval-seconds", c.audit_checkpoint_interval_seconds);
    take("audit-fsync-interval-ms", c.audit_fsync_interval_ms);
    take("mode", c.mode);
    take("policy", c.policy_file);
    take("fail-mode", c.fail_mode);
    take("enforce-existing", c.enforce_existing);
    take("enforce-existing-grace-seconds", c.enforce_existing_grace_seconds);
    take("proxy-socket-dir", c.proxy_socket_dir);
    take("steer-pin-dir", c.steer_pin_dir);
    take("proxy-tls-cert-file", c.proxy_tls_cert_file);
    take("proxy-tls-key-file", c.proxy_tls_key_file);
    take("enforce-observer", c.enforce_observer);
    take("approvals-socket", c.approvals_socket);
    take("approvals-group", c.approvals_group);
    take("approvals-tokens", c.approvals_tokens);
    take("approvals-listen", c.approvals_listen);
    take("approvals-tls-cert-file", c.approvals_tls_cert_file);
    take("approvals-tls-key-file", c.approvals_tls_key_file);
    take("approvals-url", c.approvals_url);
    take("approvals-webhook-url", c.approvals_webhook_url);
    take("approvals-webhook-secret-file", c.approvals_webhook_secret_file);
    take("approvals-blast-radius-postgres-role", c.approvals_blast_radius_postgres_role);
    take("approvals-blast-radius-mysql-user", c.approvals_blast_radius_mysql_user);
    if (c.approvals_socket.empty()) c.approvals_socket = c.proxy_socket_dir + "/approvals.sock";
    if (Status s = validate(c); !s.ok()) return s;
    return std::optional<Config>(std::move(c));
  } catch (const po::error& e) {
    return Status::Error(std::string(e.what()) + " (see `dbwarden run --help`)");
  }
}

Result<std::optional<ReplayConfig>> parse_replay_config(int argc, const char* const* argv,
                                                        std::ostream& out) {
  po::options_description d("dbwarden replay: decode a capture recording offline");
  d.add_options()
      ("help,h", "show this help")
      ("recording", po::value<std::string>(), "recording made with `dbwarden run --record`")
      ("audit-file", po::value<std::string>(), "where to write the audit records")
      ("audit-format", po::value<std::string>(),
       "jsonl (default: plain JSON Lines) or zst (sealed zstd frames, `dbwarden run`'s default)")
      ("mysql-port", po::value<std::vector<unsigned>>(),
       "MySQL/MariaDB port to watch, repeatable (default none); the unix sockets of the server "
       "listening there are found too")
      ("max-query-bytes", po::value<uint64_t>(), "as for `dbwarden run`")
      ("no-metrics", "do not feed the metrics exporter (by default every statement is counted "
       "as `dbwarden run` counts it, without serving the metrics)")
      ("metrics-file", po::value<std::string>(),
       "write the metrics in the Prometheus text format to this file at the end");
  po::positional_options_description pos;
  pos.add("recording", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(d).positional(pos).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      out << "Usage: dbwarden replay RECORDING --audit-file PATH\n\n" << d << "\n";
      return std::optional<ReplayConfig>();
    }
    ReplayConfig c;
    if (!vm.count("recording") || !vm.count("audit-file")) {
      return Status::Error("replay needs a recording and --audit-file (see `dbwarden replay "
                           "--help`)");
    }
    c.recording = vm["recording"].as<std::string>();
    c.audit_file = vm["audit-file"].as<std::string>();
    if (vm.count("audit-format")) c.audit_format = vm["audit-format"].as<std::string>();
    if (c.audit_format != "zst" && c.audit_format != "jsonl") {
      return Status::Error("--audit-format must be zst or jsonl, got '" + c.audit_format + "'");
    }
    if (vm.count("max-query-bytes")) c.max_query_bytes = vm["max-query-bytes"].as<uint64_t>();
    if (Status s = take_ports(vm, "mysql-port", c.mysql_ports); !s.ok()) return s;
    c.metrics = vm.count("no-metrics") == 0;
    if (vm.count("metrics-file")) c.metrics_file = vm["metrics-file"].as<std::string>();
    if (!c.metrics && !c.metrics_file.empty()) {
      return Status::Error("replay: --metrics-file needs the metrics (drop --no-metrics)");
    }
    return std::optional<ReplayConfig>(std::move(c));
  } catch (const po::error& e) {
    return Status::Error(std::string(e.what()) + " (see `dbwarden replay --help`)");
  }
}

}  // namespace dbwarden::agent
