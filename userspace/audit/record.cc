// SPDX-License-Identifier: Apache-2.0
#include "audit/record.h"

#include <charconv>
#include <cstring>
#include <ctime>
#include <string_view>

#include "audit/json_escape.h"

namespace dbwarden::audit {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

void append_uint(uint64_t v, std::string& out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

// `key` is a JSON string literal with its quotes and the colon, e.g. ",\"k\":".
void append_string_field(std::string_view key, std::string_view value, std::string& out) {
  out.append(key);
  append_json_string(value, out);
}

void append_uint_field(std::string_view key, uint64_t value, std::string& out) {
  out.append(key);
  append_uint(value, out);
}

}  // namespace

void append_rfc3339_nanos(int64_t unix_ns, std::string& out) {
  if (unix_ns < 0) unix_ns = 0;
  const int64_t seconds = unix_ns / kNanosPerSecond;
  const auto nanos = static_cast<uint32_t>(unix_ns % kNanosPerSecond);

  // Records arrive in time order, so the calendar part changes once a second;
  // cache it rather than call gmtime_r (which takes glibc's tz lock) per record.
  thread_local int64_t cached_second = -1;
  thread_local char cached_prefix[32];  // "YYYY-MM-DDTHH:MM:SS"
  thread_local size_t cached_length = 0;
  if (seconds != cached_second) {
    const auto t = static_cast<time_t>(seconds);
    struct tm tm {};
    gmtime_r(&t, &tm);
    cached_length = strftime(cached_prefix, sizeof(cached_prefix), "%Y-%m-%dT%H:%M:%S", &tm);
    cached_second = seconds;
  }
  out.append(cached_prefix, cached_length);

  char frac[11] = {'.', '0', '0', '0', '0', '0', '0', '0', '0', '0', 'Z'};
  uint32_t v = nanos;
  for (int i = 9; i >= 1; --i) {
    frac[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out.append(frac, sizeof(frac));
}

namespace {

// The local client process, when the agent resolved one. Keys follow the
// OpenTelemetry process/user conventions under `client.`, since `process.pid`
// is the database server's own process.
void append_peer_fields(const PeerIdentity& p, std::string& out) {
  if (p.pid == 0) return;
  append_uint_field(",\"client.process.pid\":", p.pid, out);
  append_string_field(",\"client.process.command\":", p.command, out);
  append_string_field(",\"client.process.executable.path\":", p.executable, out);
  append_uint_field(",\"client.user.id\":", p.uid, out);
  if (!p.user_name.empty()) append_string_field(",\"client.user.name\":", p.user_name, out);
  if (p.login_uid.has_value()) {
    append_uint_field(",\"dbwarden.login_uid\":", *p.login_uid, out);
    if (!p.login_user.empty()) {
      append_string_field(",\"dbwarden.login_user\":", p.login_user, out);
    }
  }
  if (!p.systemd_unit.empty()) {
    append_string_field(",\"dbwarden.client.systemd_unit\":", p.systemd_unit, out);
  }
  if (!p.container_id.empty()) append_string_field(",\"container.id\":", p.container_id, out);
}

// db.query.parameter.N (OpenTelemetry: the key is the parameter's index).
void append_parameters(const std::vector<std::optional<std::string>>& parameters,
                       std::string& out) {
  for (size_t i = 0; i < parameters.size(); ++i) {
    out.append(",\"db.query.parameter.");
    append_uint(i, out);
    out.append("\":");
    if (parameters[i].has_value()) {
      append_json_string(*parameters[i], out);
    } else {
      out.append("null");
    }
  }
}

}  // namespace

void format_record(const Statement& st, int64_t realtime_offset_ns, std::string& out) {
  static const ConnectionInfo kNoConnection;
  const ConnectionInfo& c = st.connection != nullptr ? *st.connection : kNoConnection;

  out.append("{\"time\":\"");
  append_rfc3339_nanos(static_cast<int64_t>(st.start_ns) + realtime_offset_ns, out);
  out.push_back('"');
  append_uint_field(
      ",\"duration_us\":", st.end_ns > st.start_ns ? (st.end_ns - st.start_ns) / 1000 : 0, out);
  append_uint_field(",\"connection_id\":", c.connection_id, out);
  append_string_field(",\"db.system.name\":", c.db_system, out);
  append_string_field(",\"db.namespace\":", c.database, out);
  append_string_field(",\"db.user\":", c.user, out);
  append_string_field(",\"db.query.text\":", st.text, out);
  append_string_field(",\"db.operation.name\":", st.operation, out);
  if (!st.summary.empty()) append_string_field(",\"db.query.summary\":", st.summary, out);
  if (!st.collections.empty()) {
    append_string_field(",\"db.collection.name\":", st.collections.front(), out);
    out.append(",\"dbwarden.collections\":[");
    for (size_t i = 0; i < st.collections.size(); ++i) {
      if (i > 0) out.push_back(',');
      append_json_string(st.collections[i], out);
    }
    out.push_back(']');
  }
  if (!st.fingerprint.empty()) {
    append_string_field(",\"dbwarden.fingerprint\":", st.fingerprint, out);
  }
  append_string_field(",\"db.response.status_code\":", st.status_code, out);
  if (st.returned_rows.has_value()) {
    append_uint_field(",\"db.response.returned_rows\":", *st.returned_rows, out);
  }
  if (!st.statement_name.empty()) {
    append_string_field(",\"db.statement.name\":", st.statement_name, out);
  }
  append_parameters(st.parameters, out);
  if (c.unix_socket) {
    out.append(",\"network.transport\":\"unix\"");
  } else {
    out.append(",\"network.transport\":\"tcp\"");
    append_string_field(",\"client.address\":", c.client_address, out);
    append_uint_field(",\"client.port\":", c.client_port, out);
  }
  append_uint_field(",\"server.port\":", c.server_port, out);
  append_uint_field(",\"process.pid\":", c.server_pid, out);
  if (!c.application_name.empty()) {
    append_string_field(",\"db.client.application_name\":", c.application_name, out);
  }
  if (!st.error_message.empty()) {
    append_string_field(",\"error.message\":", st.error_message, out);
  }
  append_peer_fields(c.peer, out);
  if (st.text_truncated) out.append(",\"dbwarden.query_truncated\":true");
  if (st.capture_gap) out.append(",\"dbwarden.capture_gap\":true");
  if (st.statement_unresolved) out.append(",\"dbwarden.statement_unresolved\":true");
  if (st.unbounded_write) out.append(",\"dbwarden.unbounded_write\":true");
  out.append("}\n");
}

}  // namespace dbwarden::audit
