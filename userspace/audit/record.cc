// SPDX-License-Identifier: Apache-2.0
#include "audit/record.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>
#include <memory>
#include <string_view>

#include "audit/json_escape.h"

namespace dbwarden::audit {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr size_t kRfc3339NanosBytes = 30;  // "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"
constexpr size_t kMaxUintDigits = 20;

// Writes kRfc3339NanosBytes bytes at `p`; returns their end.
char* write_rfc3339_nanos(int64_t unix_ns, char* p) {
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
  std::memcpy(p, cached_prefix, cached_length);
  p += cached_length;

  char frac[11] = {'.', '0', '0', '0', '0', '0', '0', '0', '0', '0', 'Z'};
  uint32_t v = nanos;
  for (int i = 9; i >= 1; --i) {
    frac[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  std::memcpy(p, frac, sizeof(frac));
  return p + sizeof(frac);
}

// Writes a record straight into the bytes of `out`: each piece makes room for
// its worst case (one inlined comparison), then copies with a raw pointer.
// std::string::append is an out-of-line call with its own checks per piece,
// and a record is some thirty pieces. Room grows in steps of kSlack; what
// was not written is cut off at the end.
class RecordBuffer {
 public:
  explicit RecordBuffer(std::string& out) : out_(out), length_(out.size()) {}
  ~RecordBuffer() { out_.resize(length_); }
  RecordBuffer(const RecordBuffer&) = delete;
  RecordBuffer& operator=(const RecordBuffer&) = delete;

  // `s` as it is: a key (a JSON literal with its quotes and colon,
  // e.g. ",\"k\":") or another piece of fixed JSON.
  void raw(std::string_view s) {
    std::memcpy(room(s.size()), s.data(), s.size());
    length_ += s.size();
  }
  void json_string(std::string_view s) {
    end_at(write_json_string(s, room(json_string_bound(s.size()))));
  }
  void uint(uint64_t v) {
    char* p = room(kMaxUintDigits);
    end_at(std::to_chars(p, p + kMaxUintDigits, v).ptr);
  }
  void time(int64_t unix_ns) { end_at(write_rfc3339_nanos(unix_ns, room(kRfc3339NanosBytes))); }
  size_t size() const { return length_; }  // bytes written so far

  void string_field(std::string_view key, std::string_view value) {
    raw(key);
    json_string(value);
  }
  void uint_field(std::string_view key, uint64_t value) {
    raw(key);
    uint(value);
  }

 private:
  static constexpr size_t kSlack = 1024;

  char* room(size_t n) {
    if (out_.size() - length_ < n) out_.resize(length_ + n + kSlack);
    return out_.data() + length_;
  }
  void end_at(const char* p) { length_ = static_cast<size_t>(p - out_.data()); }

  std::string& out_;
  size_t length_;  // bytes of out_ written; out_.size() - length_ is room
};

}  // namespace

void append_rfc3339_nanos(int64_t unix_ns, std::string& out) { RecordBuffer(out).time(unix_ns); }

namespace {

// The fields a connection repeats in every record, formatted once per
// connection and then copied as three runs of bytes (they sit at three places
// in the key order). A slot is a memo keyed by the connection id that holds a
// copy of every input it was made from and serves only a connection equal to
// it in all of them: a later USE or SET application_name, a peer resolved
// after the first statement, or another connection in the same slot is a miss
// that formats anew. Comparing is cheaper than formatting: no escaping, no
// number printing. One table per thread (records are formatted on the decode
// thread; a shipper formatting too shares it).
class ConnectionFields {
 public:
  struct Fragments {
    std::string_view head;  // connection_id .. db.user
    std::string_view tail;  // network.transport .. db.client.application_name
    std::string_view peer;  // client.process.* .. container.id, if any
  };

  const Fragments& of(const ConnectionInfo& c) {
    Slot& slot = slots_[c.connection_id & (kSlots - 1)];
    if (!slot.filled || !same(slot.source, c)) fill(slot, c);
    return slot.fragments;
  }

 private:
  // A new field of ConnectionInfo or PeerIdentity must be compared in same()
  // (and formatted in fill() if it goes into the record); these sizes are
  // here to make the one who adds it look.
  static_assert(sizeof(PeerIdentity) == 2 * sizeof(uint32_t) + sizeof(std::optional<uint32_t>) +
                                            6 * sizeof(std::string),
                "compare the new field in same()");
  // 16: the two ports, the unix flag and the server pid, padded.
  static_assert(sizeof(ConnectionInfo) ==
                    sizeof(uint64_t) + 5 * sizeof(std::string) + 16 + sizeof(PeerIdentity),
                "compare the new field in same()");

  static constexpr size_t kSlots = 256;  // a power of two

  struct Slot {
    bool filled = false;
    ConnectionInfo source;
    std::string text;
    Fragments fragments;
  };

  static bool same(const PeerIdentity& a, const PeerIdentity& b) {
    return a.pid == b.pid && a.uid == b.uid && a.login_uid == b.login_uid &&
           a.command == b.command && a.executable == b.executable && a.user_name == b.user_name &&
           a.login_user == b.login_user && a.systemd_unit == b.systemd_unit &&
           a.container_id == b.container_id;
  }
  static bool same(const ConnectionInfo& a, const ConnectionInfo& b) {
    return a.connection_id == b.connection_id && a.client_port == b.client_port &&
           a.server_port == b.server_port && a.unix_socket == b.unix_socket &&
           a.server_pid == b.server_pid && a.user == b.user && a.database == b.database &&
           a.db_system == b.db_system && a.client_address == b.client_address &&
           a.application_name == b.application_name && same(a.peer, b.peer);
  }

  static void fill(Slot& slot, const ConnectionInfo& c);

  std::unique_ptr<Slot[]> slots_ = std::make_unique<Slot[]>(kSlots);
};

// The local client process, when the agent resolved one. Keys follow the
// OpenTelemetry process/user conventions under `client.`, since `process.pid`
// is the database server's own process.
void append_peer_fields(const PeerIdentity& p, RecordBuffer& out) {
  if (p.pid == 0) return;
  out.uint_field(",\"client.process.pid\":", p.pid);
  out.string_field(",\"client.process.command\":", p.command);
  out.string_field(",\"client.process.executable.path\":", p.executable);
  out.uint_field(",\"client.user.id\":", p.uid);
  if (!p.user_name.empty()) out.string_field(",\"client.user.name\":", p.user_name);
  if (p.login_uid.has_value()) {
    out.uint_field(",\"dbwarden.login_uid\":", *p.login_uid);
    if (!p.login_user.empty()) {
      out.string_field(",\"dbwarden.login_user\":", p.login_user);
    }
  }
  if (!p.systemd_unit.empty()) {
    out.string_field(",\"dbwarden.client.systemd_unit\":", p.systemd_unit);
  }
  if (!p.container_id.empty()) out.string_field(",\"container.id\":", p.container_id);
}

void ConnectionFields::fill(Slot& slot, const ConnectionInfo& c) {
  slot.source = c;
  slot.filled = true;
  std::string& text = slot.text;
  text.clear();
  size_t head_end = 0, tail_end = 0;
  {
    RecordBuffer out(text);
    out.uint_field(",\"connection_id\":", c.connection_id);
    out.string_field(",\"db.system.name\":", c.db_system);
    out.string_field(",\"db.namespace\":", c.database);
    out.string_field(",\"db.user\":", c.user);
    head_end = out.size();
    if (c.unix_socket) {
      out.raw(",\"network.transport\":\"unix\"");
    } else {
      out.raw(",\"network.transport\":\"tcp\"");
      out.string_field(",\"client.address\":", c.client_address);
      out.uint_field(",\"client.port\":", c.client_port);
    }
    out.uint_field(",\"server.port\":", c.server_port);
    out.uint_field(",\"process.pid\":", c.server_pid);
    if (!c.application_name.empty()) {
      out.string_field(",\"db.client.application_name\":", c.application_name);
    }
    tail_end = out.size();
    append_peer_fields(c.peer, out);
  }
  const std::string_view all(text);
  slot.fragments.head = all.substr(0, head_end);
  slot.fragments.tail = all.substr(head_end, tail_end - head_end);
  slot.fragments.peer = all.substr(tail_end);
}

// db.operation.name .. dbwarden.fingerprint: what the SQL analyser said,
// the same for every statement of one fingerprint (a workload has few).
// Formatted once per distinct analysis, copied as one run: a memo of 64
// slots per thread, by the fingerprint's first bytes, that serves only a
// statement equal to its copy in all five fields (a collision or a changed
// analysis formats anew).
class AnalysisFields {
 public:
  std::string_view of(const Statement& st) {
    Slot& slot = slots_[slot_of(st.fingerprint)];
    if (!slot.filled || !same(slot, st)) fill(slot, st);
    return slot.text;
  }

 private:
  static constexpr size_t kSlots = 64;  // a power of two

  struct Slot {
    bool filled = false;
    std::string operation, summary, fingerprint;
    std::vector<std::string> collections;
    std::string text;
  };

  static size_t slot_of(const std::string& fingerprint) {
    uint64_t w = 0;
    std::memcpy(&w, fingerprint.data(), std::min<size_t>(fingerprint.size(), sizeof(w)));
    return static_cast<size_t>((w * 0x9e3779b97f4a7c15ULL) >> 58) & (kSlots - 1);
  }
  static bool same(const Slot& a, const Statement& b) {
    return a.fingerprint == b.fingerprint && a.operation == b.operation && a.summary == b.summary &&
           a.collections == b.collections;
  }
  static void fill(Slot& slot, const Statement& st) {
    slot.filled = true;
    slot.operation = st.operation;
    slot.summary = st.summary;
    slot.fingerprint = st.fingerprint;
    slot.collections = st.collections;
    slot.text.clear();
    RecordBuffer out(slot.text);
    out.string_field(",\"db.operation.name\":", st.operation);
    if (!st.summary.empty()) out.string_field(",\"db.query.summary\":", st.summary);
    if (!st.collections.empty()) {
      out.string_field(",\"db.collection.name\":", st.collections.front());
      out.raw(",\"dbwarden.collections\":[");
      for (size_t i = 0; i < st.collections.size(); ++i) {
        if (i > 0) out.raw(",");
        out.json_string(st.collections[i]);
      }
      out.raw("]");
    }
    if (!st.fingerprint.empty()) {
      out.string_field(",\"dbwarden.fingerprint\":", st.fingerprint);
    }
  }

  std::unique_ptr<Slot[]> slots_ = std::make_unique<Slot[]>(kSlots);
};

// db.query.parameter.N (OpenTelemetry: the key is the parameter's index).
void append_parameters(const std::vector<std::optional<std::string>>& parameters,
                       RecordBuffer& out) {
  for (size_t i = 0; i < parameters.size(); ++i) {
    out.raw(",\"db.query.parameter.");
    out.uint(i);
    out.raw("\":");
    if (parameters[i].has_value()) {
      out.json_string(*parameters[i]);
    } else {
      out.raw("null");
    }
  }
}

}  // namespace

void format_record(const Statement& st, int64_t realtime_offset_ns, std::string& text) {
  static const ConnectionInfo kNoConnection;
  thread_local ConnectionFields connection_fields;
  thread_local AnalysisFields analysis_fields;
  const ConnectionInfo& c = st.connection != nullptr ? *st.connection : kNoConnection;
  const ConnectionFields::Fragments& f = connection_fields.of(c);
  RecordBuffer out(text);

  out.raw("{\"time\":\"");
  out.time(static_cast<int64_t>(st.start_ns) + realtime_offset_ns);
  out.raw("\"");
  out.uint_field(",\"duration_us\":",
                 st.end_ns > st.start_ns ? (st.end_ns - st.start_ns) / 1000 : 0);
  out.raw(f.head);
  out.string_field(",\"db.query.text\":", st.text);
  out.raw(analysis_fields.of(st));
  if (st.status_code.empty()) {
    // No response was seen (the connection ended or bytes were lost first):
    // the outcome is unknown, which is not a SQLSTATE, not even an empty one.
    out.raw(",\"db.response.status_code\":null");
  } else {
    out.string_field(",\"db.response.status_code\":", st.status_code);
    // OpenTelemetry: error.type on every failed operation, matching the
    // status code (a SQLSTATE or a MySQL error number).
    if (st.status_code != "00000") out.string_field(",\"error.type\":", st.status_code);
  }
  if (!st.sqlstate.empty()) out.string_field(",\"dbwarden.sqlstate\":", st.sqlstate);
  if (st.returned_rows.has_value()) {
    out.uint_field(",\"db.response.returned_rows\":", *st.returned_rows);
  }
  if (!st.statement_name.empty()) {
    out.string_field(",\"db.statement.name\":", st.statement_name);
  }
  append_parameters(st.parameters, out);
  out.raw(f.tail);
  if (!st.error_message.empty()) {
    out.string_field(",\"error.message\":", st.error_message);
  }
  out.raw(f.peer);
  if (st.text_truncated) out.raw(",\"dbwarden.query_truncated\":true");
  if (st.capture_gap) out.raw(",\"dbwarden.capture_gap\":true");
  if (st.statement_unresolved) out.raw(",\"dbwarden.statement_unresolved\":true");
  if (st.unbounded_write) out.raw(",\"dbwarden.unbounded_write\":true");
  if (st.redacted) out.raw(",\"dbwarden.redacted\":true");
  if (!st.policy_action.empty()) {
    // An empty rule is a decision too: no rule matched, the default (allow) applied.
    out.string_field(",\"dbwarden.policy.rule\":", st.policy_rule);
    out.string_field(",\"dbwarden.policy.action\":", st.policy_action);
  }
  if (st.masked_values != 0) {
    out.uint_field(",\"dbwarden.masked_columns\":", st.masked_columns);
    out.uint_field(",\"dbwarden.masked_values\":", st.masked_values);
  }
  out.raw("}\n");
}

}  // namespace dbwarden::audit
