// SPDX-License-Identifier: Apache-2.0
//
// One client connection to a syslog collector: TCP, optionally TLS (RFC 5425
// carries the same octet-counted frames inside TLS). Non-blocking socket with
// poll() timeouts, so a stuck collector costs the sender thread at most
// `timeout` per call. The caller must have SIGPIPE blocked on its thread
// (OpenSSL writes with write(2)).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dbwarden::shipping {

struct TlsClientOptions {
  bool enabled = false;
  std::string ca_file;      // empty: the system's default trust store
  std::string server_name;  // SNI and the name the certificate must carry; empty: the host
};

class Connection {
 public:
  // address is "HOST:PORT" or "[V6]:PORT". The error names the address.
  static Result<std::unique_ptr<Connection>> Open(const std::string& address,
                                                  const TlsClientOptions& tls,
                                                  std::chrono::milliseconds timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Writes what it can of `data` within `timeout`: the byte count (0 when the
  // collector's window stayed closed), or an error when the connection failed.
  // With TLS, a call after a partial write must pass the same remaining bytes.
  Result<size_t> write_some(std::string_view data, std::chrono::milliseconds timeout);
  // True once the peer has closed or reset the connection. Reads and discards
  // anything the collector sent (syslog over TCP has no replies).
  bool peer_closed();
  // Bytes handed to the kernel that the peer's TCP has not acknowledged yet
  // (SIOCOUTQ); -1 if unknown.
  int unacked_bytes() const;

 private:
  Connection() = default;
  bool wait(short events, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool closed_ = false;
};

}  // namespace dbwarden::shipping
