// SPDX-License-Identifier: Apache-2.0
//
// Shared scaffolding for the proxy relay fuzz targets: drives a relay with the decoder
// fuzzers' input layout (fuzz_driver.h), under the shipped default guardrails, and checks
// the relay's promises on every input: it never sends the server a byte after closing, and
// everything it sent is a prefix-consistent subset of what the client sent. Statements an
// approval rule holds are decided by the input itself (the timestamp's low bits: approve,
// approve with a JIT grant, deny, expire, or leave pending).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "approvals/broker.h"
#include "fuzz_driver.h"
#include "policy/policy.h"
#include "proxy/byte_buffer.h"
#include "proxy/policy_judge.h"
#include "proxy/relay.h"

namespace dbw_fuzz {

struct CountingOutput : dbwarden::proxy::RelayOutput {
  uint64_t to_server_bytes = 0, to_client_bytes = 0;
  bool closed = false;
  void to_server(std::span<const uint8_t> b) override {
    if (closed) std::abort();  // nothing may reach the server once the relay gave up
    to_server_bytes += b.size();
  }
  void to_client(std::span<const uint8_t> b) override { to_client_bytes += b.size(); }
  void close_after_flush() override { closed = true; }
  // TLS toward the client (a certificate configured): the relay's side of the switch; the
  // connection would decrypt, so the relay goes on with the same bytes.
  bool tls_available = false, tls_started = false;
  bool client_tls_available() const override { return tls_available && !tls_started; }
  void start_client_tls() override {
    if (!client_tls_available()) std::abort();  // only when offered, and once
    tls_started = true;
  }
};

// A policy from YAML the fuzzers trust to load (abort otherwise).
inline std::shared_ptr<const dbwarden::policy::Policy> LoadFuzzPolicy(std::string_view yaml,
                                                                     std::string_view name) {
  auto p = dbwarden::policy::Policy::load_string(yaml, name);
  if (!p.ok()) std::abort();
  return p.value();
}

// The policy the fuzzers judge with: blocks and logs, as the shipped guardrails do.
inline std::shared_ptr<const dbwarden::policy::Policy> FuzzPolicy() {
  static const auto policy = LoadFuzzPolicy(
      "rules:\n"
      "  - {name: no-drop, match: {operation: [DROP TABLE, TRUNCATE]}, action: block}\n"
      "  - {name: bounded, match: {operation: [DELETE, UPDATE], has_where: false}, "
      "action: block}\n"
      "  - {name: inserts, match: {operation: INSERT}, action: log}\n"
      "  - {name: held, match: {operation: [DELETE, UPDATE, ALTER TABLE]}, "
      "action: require_approval, approvers: [dba]}\n"
      "approver_groups: {dba: [alice]}\n",
      "fuzz.yaml");
  return policy;
}

// The same with mask rules (issue 13): every result rewritten, statements naming a `t*` table
// blocked as derived, content detectors over every text value.
inline std::shared_ptr<const dbwarden::policy::Policy> FuzzMaskPolicy() {
  static const auto policy = LoadFuzzPolicy(
      "rules:\n"
      "  - {name: no-drop, match: {operation: [DROP TABLE, TRUNCATE]}, action: block}\n"
      "  - {name: t-block, action: mask, columns: ['*.t*.*'], on_derived: block}\n"
      "  - {name: all, action: mask, columns: ['*.*.*'], style: partial}\n"
      "  - {name: text, action: mask, detectors: [email, us_ssn, payment_card]}\n",
      "fuzz-mask.yaml");
  return policy;
}

// Adapts a relay to DriveSession's interface (client bytes, server bytes, close).
template <typename Direction>
class RelayDriver {
 public:
  RelayDriver(dbwarden::proxy::Relay& relay, Direction client) : relay_(relay), client_(client) {}
  void on_data(Direction dir, std::span<const uint8_t> bytes, uint64_t ts) {
    if (out.closed) return;
    if (dir == client_) {
      client_bytes_ += bytes.size();
      in_.append(bytes);
      relay_.on_client(in_, out, ts);
    } else {
      relay_.on_server(bytes, out, ts);
      relay_.on_client(in_, out, ts);
    }
    if (relay_.awaiting_approval()) decide(ts);
    // The relay never invents bytes toward the server: it passes the client's, or fewer,
    // beside the queries it sends of its own.
    if (out.to_server_bytes > client_bytes_ + relay_.own_server_bytes()) std::abort();
  }
  void on_gap(Direction, uint64_t, uint64_t) {}  // a proxy sees every byte
  void on_close(uint64_t ts) { relay_.on_close(ts); }

  CountingOutput out;
  dbwarden::approvals::Broker broker{nullptr};

 private:
  void decide(uint64_t ts) {
    dbwarden::approvals::Approver alice;
    alice.name = "alice";
    alice.uid = 2000;
    for (const auto& r : broker.list()) {
      switch (ts & 7) {
        case 0:
        case 1:
          (void)broker.approve(r.id, alice, "", 0, ts);
          break;
        case 2:
          (void)broker.approve(r.id, alice, "", 1'000'000'000, ts);
          break;
        case 3:
          (void)broker.deny(r.id, alice, "no", ts);
          break;
        case 4:
          broker.expire(r.deadline_ns);
          break;
        default:
          break;  // stays pending: later bytes wait
      }
    }
    relay_.on_approval_decided(out, ts);
    relay_.on_client(in_, out, ts);
  }

  dbwarden::proxy::Relay& relay_;
  Direction client_;
  dbwarden::proxy::ByteBuffer in_;
  uint64_t client_bytes_ = 0;
};

}  // namespace dbw_fuzz
