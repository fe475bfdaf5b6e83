// SPDX-License-Identifier: Apache-2.0
//
// Test helpers for the proxy's relays: the real judge (policy_judge.h) over a policy loaded
// from YAML text, and an output that keeps what the relay sent each way.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../support/recording_sink.h"
#include "policy/policy.h"
#include "proxy/byte_buffer.h"
#include "proxy/policy_judge.h"
#include "proxy/relay.h"

namespace proxytest {

struct Output : dbwarden::proxy::RelayOutput {
  std::string server, client;
  bool closed = false;
  void to_server(std::span<const uint8_t> b) override {
    server.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void to_client(std::span<const uint8_t> b) override {
    client.append(reinterpret_cast<const char*>(b.data()), b.size());
    ++client_writes;
  }
  // The pieces of one gather are one sendmsg on a real connection: one write.
  void to_client_gather(std::span<const std::span<const uint8_t>> pieces) override {
    for (const auto& p : pieces) client.append(reinterpret_cast<const char*>(p.data()), p.size());
    ++client_writes;
  }
  size_t client_writes = 0;  // calls (each is a send on a real connection)
  void close_after_flush() override { closed = true; }
  // TLS toward the client: available when the test says so, until it is started.
  bool tls_available = false, tls_started = false;
  bool client_tls_available() const override { return tls_available && !tls_started; }
  void start_client_tls() override { tls_started = client_tls_available(); }
  std::string cancel_key;  // the last CancelRequest's key
  void cancel_request(std::span<const uint8_t> key) override {
    cancel_key.assign(reinterpret_cast<const char*>(key.data()), key.size());
  }
  std::vector<std::string> kills;  // each kill_request: "PORT THREAD query|connection by ID"
  void kill_request(uint16_t port, uint32_t thread, bool connection, uint32_t by) override {
    kills.push_back(std::to_string(port) + " " + std::to_string(thread) +
                    (connection ? " connection" : " query") + " by " + std::to_string(by));
  }
  // Hands over (and forgets) what was sent so far.
  std::string take_server() { return std::exchange(server, {}); }
  std::string take_client() { return std::exchange(client, {}); }
};

inline std::shared_ptr<const dbwarden::policy::Policy> LoadPolicy(std::string_view yaml) {
  auto p = dbwarden::policy::Policy::load_string(yaml, "test.yaml");
  if (!p.ok()) throw std::runtime_error(p.status().message());
  return p.value();
}

// A policy with one blocking rule per listed operation, plus a log rule for INSERT.
inline constexpr std::string_view kGuardrails = R"(
rules:
  - name: no-drop
    match: {operation: [DROP TABLE, DROP]}
    action: block
    message: "dropping tables is not allowed here"
    sqlstate: "42501"
    mysql_errno: 1142
  - name: unbounded-delete
    match: {operation: DELETE, has_where: false}
    action: block
  - name: watch-inserts
    match: {operation: INSERT}
    action: log
)";

struct Judged {
  explicit Judged(std::string_view yaml = kGuardrails) : source(LoadPolicy(yaml)), judge(source) {}
  dbwarden::proxy::PolicySource source;
  dbwarden::proxy::PolicyJudge judge;
};

inline void Append(dbwarden::proxy::ByteBuffer& in, std::string_view bytes) {
  in.append(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}
inline std::span<const uint8_t> Span(std::string_view bytes) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
}

}  // namespace proxytest
