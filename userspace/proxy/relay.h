// SPDX-License-Identifier: Apache-2.0
//
// One protocol's logic for one proxied connection (pg_relay.h, mysql_relay.h): which client
// bytes go to the server, which are answered by the proxy itself, and the audit records.
// The connection (connection.h) owns the sockets and buffers and calls these.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "proxy/byte_buffer.h"
#include "proxy/explain_estimate.h"

namespace dbwarden::proxy {

class RelayOutput {
 public:
  virtual ~RelayOutput() = default;
  virtual void to_server(std::span<const uint8_t> bytes) = 0;
  virtual void to_client(std::span<const uint8_t> bytes) = 0;
  // The pieces in order, as to_client of each would (the proxy hands them to one sendmsg:
  // a relay passes the stretches of a read it did not change from where they lie, without
  // copying them together first).
  virtual void to_client_gather(std::span<const std::span<const uint8_t>> pieces) {
    for (const auto& p : pieces) to_client(p);
  }
  // End the connection once what is queued for the client has been written.
  virtual void close_after_flush() = 0;
  // TLS toward the client (tls.h): whether the proxy can take it on now (a certificate is
  // configured and the client is not on TLS already), and the switch, after the protocol's
  // plaintext "yes" has been given to to_client(): every later byte either way is TLS.
  virtual bool client_tls_available() const { return false; }
  virtual void start_client_tls() {}
  // A PostgreSQL CancelRequest arrived on this connection with `key` (pid and secret, as
  // BackendKeyData gave them): a held statement of the connection it names is withdrawn.
  virtual void cancel_request(std::span<const uint8_t> /*key*/) {}
  // A MySQL `KILL [QUERY|CONNECTION] thread_id` sent on this connection, which the server
  // (listening on `server_port`) answered with OK: it allowed it. A statement of that
  // thread's connection held for approval is withdrawn. `by_thread`: this connection's own.
  virtual void kill_request(uint16_t /*server_port*/, uint32_t /*thread_id*/, bool /*connection*/,
                            uint32_t /*by_thread*/) {}
};

class Relay {
 public:
  virtual ~Relay() = default;
  // Takes what it can from `in` (client bytes not yet passed on). Stops when a message is
  // incomplete or while it holds one (a block waiting for the server to go idle).
  virtual void on_client(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) = 0;
  // Server bytes, in order; the relay passes them on to the client.
  virtual void on_server(std::span<const uint8_t> bytes, RelayOutput& out, uint64_t now_ns) = 0;
  // The server could not be reached: tell the client, in its protocol, and close.
  virtual void on_upstream_failed(std::string_view why, ByteBuffer& in, RelayOutput& out,
                                  uint64_t now_ns) = 0;
  // The connection ends: statements in flight get their records (outcome unknown).
  virtual void on_close(uint64_t now_ns) = 0;
  // The server closed its side (a MySQL KILL CONNECTION of this session's thread, a
  // terminated backend, a restart): a held statement's request is withdrawn, saying so.
  virtual void on_upstream_closed() {}
  // Whether more client bytes are useful now (false while holding a message).
  virtual bool wants_client_bytes() const = 0;
  // Bytes the relay sent the server of its own (the MySQL relay's catalog lookups), beside
  // the client's.
  virtual uint64_t own_server_bytes() const { return 0; }
  // A message waits for the approvals broker (approvals/broker.h); the connection still
  // reads the client, so that a client that goes away withdraws its request.
  virtual bool awaiting_approval() const { return false; }
  // The agent's role answered the EXPLAIN with `ticket` (explain_worker.h): if this relay
  // asked it, its request goes to the broker with the estimate. True if it did.
  virtual bool on_role_explained(uint64_t /*ticket*/, const BlastEstimate& /*e*/,
                                 RelayOutput& /*out*/, uint64_t /*now_ns*/) {
    return false;
  }
  // The broker decided something: if it was this relay's request, act on it.
  virtual void on_approval_decided(RelayOutput& /*out*/, uint64_t /*now_ns*/) {}
  // A client's cancel with `key` (RelayOutput::cancel_request): if it names this
  // connection and a message waits for approval, its request is withdrawn (the broker then
  // wakes the proxy, and on_approval_decided answers the client). True if it did.
  virtual bool cancel_approval(std::span<const uint8_t> /*key*/) { return false; }
  // A MySQL KILL the server allowed (RelayOutput::kill_request): if it names this
  // connection's server thread and a message waits for approval, its request is withdrawn,
  // and with `connection` the connection ends once the client has its error. True if it did.
  virtual bool kill_approval(uint16_t /*server_port*/, uint32_t /*thread_id*/, bool /*connection*/,
                             uint32_t /*by_thread*/) {
    return false;
  }
};

}  // namespace dbwarden::proxy
