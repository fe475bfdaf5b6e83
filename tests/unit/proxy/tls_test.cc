// SPDX-License-Identifier: Apache-2.0
//
// The proxy's TLS toward clients (proxy/tls.h): certificate loading errors, and a real
// OpenSSL client talking to a TlsSession through memory, as the proxy's socket would carry.
#include "proxy/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "../support/self_signed.h"

using dbwarden::proxy::ByteBuffer;
using dbwarden::proxy::TlsContext;
using dbwarden::proxy::TlsSession;

namespace {

// A fresh key and a self-signed certificate for it, as PEM files in a temporary directory.
struct CertFiles {
  std::string dir, cert, key, other_key;
  CertFiles() {
    char tmpl[] = "/tmp/dbw-tls-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    cert = dir + "/c.pem";
    key = dir + "/k.pem";
    other_key = dir + "/o.pem";
    dbwarden::testing::SelfSigned id;
    EVP_PKEY* other = EVP_EC_gen("P-256");
    REQUIRE(other != nullptr);
    write(cert, [&](FILE* f) { return PEM_write_X509(f, id.cert); });
    write(key, [&](FILE* f) {
      return PEM_write_PrivateKey(f, id.key, nullptr, nullptr, 0, nullptr, nullptr);
    });
    write(other_key, [&](FILE* f) {
      return PEM_write_PrivateKey(f, other, nullptr, nullptr, 0, nullptr, nullptr);
    });
    EVP_PKEY_free(other);
  }
  ~CertFiles() { std::filesystem::remove_all(dir); }
  template <class F>
  static void write(const std::string& path, F f) {
    FILE* file = fopen(path.c_str(), "w");
    REQUIRE(file != nullptr);
    REQUIRE(f(file) == 1);
    fclose(file);
  }
};

// An OpenSSL client on memory BIOs: what it sends is handed to the server session by hand.
struct Client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  Client() {
    BIO_set_mem_eof_return(in, -1);
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
  }
  ~Client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  std::vector<uint8_t> take() {
    std::vector<uint8_t> v(BIO_ctrl_pending(out));
    if (!v.empty()) BIO_read(out, v.data(), static_cast<int>(v.size()));
    return v;
  }
  void give(const std::vector<uint8_t>& v) {
    if (!v.empty()) BIO_write(in, v.data(), static_cast<int>(v.size()));
  }
  std::string read_all() {
    std::string s;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
    return s;
  }
};

std::string Text(const ByteBuffer& b) {
  return {reinterpret_cast<const char*>(b.data().data()), b.size()};
}

// Runs the handshake to the end; the server's output for the client goes through `wire`.
void Handshake(Client& c, TlsSession& s, ByteBuffer& plain) {
  for (int round = 0; round < 10 && !(s.handshake_done() && SSL_is_init_finished(c.ssl)); ++round) {
    SSL_do_handshake(c.ssl);
    REQUIRE(s.on_ciphertext(c.take(), plain) == TlsSession::State::kOk);
    std::vector<uint8_t> wire;
    s.take_output(wire);
    c.give(wire);
  }
  REQUIRE(s.handshake_done());
  REQUIRE(SSL_is_init_finished(c.ssl));
}

}  // namespace

TEST_CASE("proxy tls: a certificate or key that does not load is a clear error", "[proxy]") {
  CertFiles files;
  auto missing = TlsContext::Load(files.dir + "/none.pem", files.key);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("cannot load the TLS certificate") != std::string::npos);
  auto swapped = TlsContext::Load(files.key, files.cert);
  REQUIRE_FALSE(swapped.ok());
  auto mismatch = TlsContext::Load(files.cert, files.other_key);
  REQUIRE_FALSE(mismatch.ok());
  CHECK(mismatch.status().message().find("does not match the certificate") != std::string::npos);
  CHECK(TlsContext::Load(files.cert, files.key).ok());
}

TEST_CASE("proxy tls: a client's bytes come out in plaintext and the replies go back in TLS",
          "[proxy]") {
  CertFiles files;
  auto ctx = TlsContext::Load(files.cert, files.key);
  REQUIRE(ctx.ok());
  TlsSession server(ctx.value());
  Client client;
  ByteBuffer plain;
  // Said before the handshake is done (an early refusal): sent once it is.
  const std::string early = "early";
  server.write({reinterpret_cast<const uint8_t*>(early.data()), early.size()});
  Handshake(client, server, plain);
  CHECK(plain.empty());

  const std::string big(200000, 'q');  // many TLS records, more than one read's worth
  REQUIRE(SSL_write(client.ssl, big.data(), static_cast<int>(big.size())) ==
          static_cast<int>(big.size()));
  REQUIRE(server.on_ciphertext(client.take(), plain) == TlsSession::State::kOk);
  CHECK(Text(plain) == big);

  const std::string reply = "reply";
  server.write({reinterpret_cast<const uint8_t*>(reply.data()), reply.size()});
  std::vector<uint8_t> wire;
  server.take_output(wire);
  client.give(wire);
  CHECK(client.read_all() == early + reply);

  // A record split at every byte still decrypts once whole.
  const std::string small = "split";
  SSL_write(client.ssl, small.data(), static_cast<int>(small.size()));
  const std::vector<uint8_t> record = client.take();
  ByteBuffer more;
  for (uint8_t byte : record) {
    REQUIRE(server.on_ciphertext({&byte, 1}, more) == TlsSession::State::kOk);
  }
  CHECK(Text(more) == small);

  SSL_shutdown(client.ssl);  // close_notify
  CHECK(server.on_ciphertext(client.take(), more) == TlsSession::State::kClosed);
}

TEST_CASE("proxy tls: bytes that are not TLS fail the session with a reason", "[proxy]") {
  CertFiles files;
  auto ctx = TlsContext::Load(files.cert, files.key);
  REQUIRE(ctx.ok());
  TlsSession server(ctx.value());
  ByteBuffer plain;
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK(server.on_ciphertext({reinterpret_cast<const uint8_t*>(junk.data()), junk.size()}, plain) ==
        TlsSession::State::kFailed);
  CHECK(server.error().find("TLS handshake") != std::string::npos);
  CHECK(plain.empty());
}
