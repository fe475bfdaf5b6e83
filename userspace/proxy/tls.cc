// SPDX-License-Identifier: Apache-2.0
#include "proxy/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

namespace dbwarden::proxy {

namespace {

// OpenSSL's queued errors as one line (and the queue emptied, so the next call starts clean).
std::string openssl_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? std::string("unknown error") : text;
}

// libpq 17 sends ALPN "postgresql" and accepts a server that selects it or none; a
// client that offers other protocols only is served without ALPN.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static constexpr unsigned char kPostgresql[] = "\x0apostgresql";
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kPostgresql, sizeof(kPostgresql) - 1, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::Load(const std::string& cert_file,
                                                     const std::string& key_file) {
  std::shared_ptr<TlsContext> c(new TlsContext());
  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(TLS_server_method());
  if (c->ctx_ == nullptr) return Status::Error("TLS: " + openssl_errors());
  SSL_CTX_set_min_proto_version(c->ctx_, TLS1_2_VERSION);
  // Renegotiation would let a client restart the handshake mid-stream; nothing needs it.
  SSL_CTX_set_options(c->ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_alpn_select_cb(c->ctx_, select_alpn, nullptr);
  if (SSL_CTX_use_certificate_chain_file(c->ctx_, cert_file.c_str()) != 1) {
    return Status::Error("cannot load the TLS certificate " + cert_file + ": " + openssl_errors());
  }
  if (SSL_CTX_use_PrivateKey_file(c->ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL checks the pair as it loads the key: the operator's mistake said plainly.
    const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    return Status::Error(
        (mismatch ? "the TLS key " + key_file + " does not match the certificate " + cert_file
                  : "cannot load the TLS key " + key_file) +
        ": " + openssl_errors());
  }
  if (SSL_CTX_check_private_key(c->ctx_) != 1) {
    return Status::Error("the TLS key " + key_file + " does not match the certificate " +
                         cert_file + ": " + openssl_errors());
  }
  return c;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsSession::TlsSession(std::shared_ptr<TlsContext> ctx) : ctx_(std::move(ctx)) {
  ssl_ = SSL_new(ctx_->get());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  // An empty input BIO means "wait for more", not end of stream.
  BIO_set_mem_eof_return(rbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

TlsSession::State TlsSession::fail(const char* what) {
  error_ = std::string(what) + ": " + openssl_errors();
  return State::kFailed;
}

TlsSession::State TlsSession::on_ciphertext(std::span<const uint8_t> in, ByteBuffer& plain) {
  if (!in.empty() && BIO_write(rbio_, in.data(), static_cast<int>(in.size())) <= 0) {
    return fail("TLS input");
  }
  if (!done_) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return State::kOk;
      return fail("TLS handshake");
    }
    done_ = true;
    if (!pending_.empty()) {
      encrypt(pending_);
      std::vector<uint8_t>().swap(pending_);
    }
  }
  uint8_t buf[16 * 1024];
  for (;;) {
    ERR_clear_error();
    const int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n > 0) {
      plain.append(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ) return State::kOk;
    if (e == SSL_ERROR_ZERO_RETURN) return State::kClosed;
    return fail("TLS read");
  }
}

void TlsSession::encrypt(std::span<const uint8_t> plain) {
  // Memory BIOs take everything: SSL_write writes it all once the handshake is done.
  while (!plain.empty()) {
    ERR_clear_error();
    const int n = SSL_write(ssl_, plain.data(), static_cast<int>(plain.size()));
    if (n <= 0) {
      error_ = "TLS write: " + openssl_errors();
      return;
    }
    plain = plain.subspan(static_cast<size_t>(n));
  }
}

void TlsSession::write(std::span<const uint8_t> plain) {
  if (!done_) {
    pending_.insert(pending_.end(), plain.begin(), plain.end());
    return;
  }
  encrypt(plain);
}

void TlsSession::take_output(std::vector<uint8_t>& out) {
  const size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0) return;
  const size_t at = out.size();
  out.resize(at + n);
  const int got = BIO_read(wbio_, out.data() + at, static_cast<int>(n));
  out.resize(at + static_cast<size_t>(got > 0 ? got : 0));
}

}  // namespace dbwarden::proxy
