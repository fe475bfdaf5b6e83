// SPDX-License-Identifier: Apache-2.0
//
// The protocol-neutral result of decoding: one Statement per SQL statement a
// client ran, with the identity of the connection it ran on. Protocol decoders
// produce them; the agent analyses them (userspace/sql) and hands them to the
// audit writer and the metrics exporter, which both implement StatementSink.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dbwarden {

// The local process on the client end of a connection (loopback TCP or a unix
// socket), resolved once per connection by the agent; pid 0 when unknown or
// remote.
struct PeerIdentity {
  uint32_t pid = 0;
  uint32_t uid = 0;
  std::string user_name;
  std::optional<uint32_t> login_uid;  // audit loginuid: the human behind sudo
  std::string login_user;
  std::string command;     // comm
  std::string executable;  // /proc/<pid>/exe
  std::string systemd_unit;
  std::string container_id;
};

// Who is on the other end of a connection, as far as the wire and the socket
// tell. Filled in by capture (addresses, pid) and by the decoder (startup).
struct ConnectionInfo {
  uint64_t connection_id = 0;
  // db.system.name: "postgresql", "mysql", or "mariadb" (MySQL protocol; the
  // server's greeting names MariaDB in its version string).
  std::string db_system;
  std::string client_address;    // "127.0.0.1", "::1"; empty for unix sockets
  uint16_t client_port = 0;      // 0 for unix sockets
  uint16_t server_port = 0;      // the database port (also for unix sockets)
  bool unix_socket = false;
  uint32_t server_pid = 0;       // the backend process serving the connection
  // From the protocol's startup/handshake. Empty until seen.
  std::string user;
  std::string database;
  std::string application_name;
  PeerIdentity peer;
};

// Values masked in one statement's results by one mask rule and one detector
// ("column" for the rule's column list): dbwarden_masked_values_total{rule,detector}.
struct MaskedCount {
  std::string rule;
  std::string detector;
  uint32_t values = 0;
};

struct Statement {
  const ConnectionInfo* connection = nullptr;  // valid for the duration of the callback
  uint64_t start_ns = 0;  // CLOCK_MONOTONIC: first request byte
  uint64_t end_ns = 0;    // CLOCK_MONOTONIC: completion (CommandComplete/Error/...)
  std::string text;       // the statement's SQL, at most Limits::max_query_bytes
  bool text_truncated = false;
  // db.response.status_code: "00000" on success (every system); on failure
  // the SQLSTATE for PostgreSQL, the error number for MySQL/MariaDB ("1146").
  // Empty: the outcome is unknown.
  std::string status_code = "00000";
  std::string sqlstate;  // MySQL/MariaDB failures: the ERR's SQLSTATE (dbwarden.sqlstate)
  std::string error_message;          // server's message on failure (never auth data)
  std::optional<uint64_t> returned_rows;
  std::string command_tag;  // e.g. "SELECT 3", "INSERT 0 1"
  std::string statement_name;  // extended protocol: prepared statement name, if any
  bool capture_gap = false;   // bytes of this connection were missed around it
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
  // Bound values of an extended-protocol Bind or COM_STMT_EXECUTE, by
  // position (db.query.parameter.N, N from 0); nullopt is SQL NULL. Decoders
  // fill it; the pipeline passes it through one hook (ParameterPolicy) before
  // any output sees it, which is where masking plugs in.
  std::vector<std::optional<std::string>> parameters;
  // The statement ran through a prepared statement/portal whose SQL text was
  // never seen (prepared before capture); `statement_name` says which.
  bool statement_unresolved = false;

  // Filled by the SQL analyser (agent pipeline), not by decoders.
  std::string operation;    // db.operation.name, e.g. "SELECT"
  std::string summary;      // db.query.summary: operation + main table, "SELECT accounts"
  std::string fingerprint;  // dbwarden.fingerprint: 16 hex digits, stable across literals
  // Tables touched, schema-qualified where written, first = main table
  // (db.collection.name), all of them in dbwarden.collections.
  std::vector<std::string> collections;
  // UPDATE/DELETE without a WHERE clause (dbwarden.unbounded_write).
  bool unbounded_write = false;
  // Set by the pipeline: a credential was cut out of the text, a bound value
  // or the error message (sql/redact.h; dbwarden.redacted).
  bool redacted = false;

  // Enforcement mode: the policy's decision on this statement (dbwarden.policy.rule,
  // dbwarden.policy.action), set by the proxy; empty in observe mode.
  std::string policy_rule;
  std::string policy_action;
  // Masking (issue 13), set by the proxy: result columns with at least one masked value
  // (dbwarden.masked_columns) and values masked (dbwarden.masked_values), whole or in part,
  // and the values by rule and detector (metrics only).
  uint32_t masked_columns = 0;
  uint32_t masked_values = 0;
  std::vector<MaskedCount> masked_by;

  // Back to the default values, keeping the strings' and vectors' capacity:
  // a decoder that refills one Statement per statement then allocates nothing
  // once the buffers have grown.
  void reset() {
    connection = nullptr;
    start_ns = 0;
    end_ns = 0;
    text.clear();
    text_truncated = false;
    status_code.assign("00000");
    sqlstate.clear();
    error_message.clear();
    returned_rows.reset();
    command_tag.clear();
    statement_name.clear();
    capture_gap = false;
    request_bytes = 0;
    response_bytes = 0;
    parameters.clear();
    statement_unresolved = false;
    operation.clear();
    summary.clear();
    fingerprint.clear();
    collections.clear();
    unbounded_write = false;
    redacted = false;
    policy_rule.clear();
    policy_action.clear();
    masked_columns = 0;
    masked_values = 0;
    masked_by.clear();
  }
};

class StatementSink {
 public:
  virtual ~StatementSink() = default;
  virtual void on_statement(const Statement& statement) = 0;
};

}  // namespace dbwarden
