// SPDX-License-Identifier: Apache-2.0
//
// TLS toward clients, terminated in the proxy (issue 12, item 3). The certificate and key
// are loaded and checked once, at start (TlsContext::Load): a bad file is a startup error,
// never a failure of the first client. Each TLS client gets a TlsSession: OpenSSL on two
// memory BIOs, so the proxy's epoll loop keeps owning the socket, its reads, its bounded
// buffers and its backpressure. Ciphertext read from the socket goes in, plaintext comes out
// into the same buffer a plaintext client's bytes land in: the relay does not know the
// difference. The upstream leg stays plaintext (the server's unix socket or loopback).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "proxy/byte_buffer.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace dbwarden::proxy {

class TlsContext {
 public:
  // PEM certificate chain and private key; they must match. TLS 1.2 and later.
  static Result<std::shared_ptr<TlsContext>> Load(const std::string& cert_file,
                                                  const std::string& key_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
};

class TlsSession {
 public:
  enum class State : uint8_t { kOk, kClosed, kFailed };

  explicit TlsSession(std::shared_ptr<TlsContext> ctx);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext from the client. The handshake advances; decrypted bytes are appended to
  // `plain` (at most about as many as came in, so the caller's read size bounds them).
  // kClosed: the client sent close_notify; kFailed: see error().
  State on_ciphertext(std::span<const uint8_t> in, ByteBuffer& plain);
  // Plaintext for the client. Before the handshake is done it waits (bounded by what the
  // relay may say before a client has spoken: a refusal at most).
  void write(std::span<const uint8_t> plain);
  // Moves what is to be sent to the client (handshake, records, alerts) to `out`.
  void take_output(std::vector<uint8_t>& out);
  bool handshake_done() const { return done_; }
  const std::string& error() const { return error_; }

 private:
  State fail(const char* what);
  void encrypt(std::span<const uint8_t> plain);

  std::shared_ptr<TlsContext> ctx_;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext from the client (owned by ssl_)
  BIO* wbio_ = nullptr;  // ciphertext for the client (owned by ssl_)
  bool done_ = false;
  std::vector<uint8_t> pending_;  // plaintext written before the handshake finished
  std::string error_;
};

}  // namespace dbwarden::proxy
