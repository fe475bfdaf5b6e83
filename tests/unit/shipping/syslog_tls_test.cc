// SPDX-License-Identifier: Apache-2.0
//
// TLS transport against an in-test TLS server with a freshly made
// self-signed certificate: delivery when the CA file and name match, refusal
// (counted, nothing sent) when the name does not.
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shipping/syslog_shipper.h"
#include "shipping_test_util.h"

using dbwarden::ConnectionInfo;
using dbwarden::shipping::SyslogOptions;
using dbwarden::shipping::SyslogShipper;
using namespace dbw_shipping_test;
using namespace std::chrono_literals;

namespace {

// A self-signed certificate for `name`, written as PEM to cert_path/key_path.
void make_certificate(const std::string& name, const std::string& cert_path,
                      const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("prime256v1");
  REQUIRE(key != nullptr);
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  const std::string san = "DNS:" + name;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  REQUIRE(ext != nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, "CA:TRUE");
  X509_add_ext(cert, bc, -1);
  X509_EXTENSION_free(bc);
  REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
  FILE* f = std::fopen(cert_path.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_X509(f, cert);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(cert);
  EVP_PKEY_free(key);
}

// Accepts TLS connections one after another and collects octet-counted frames.
class TlsCollector {
 public:
  TlsCollector(const std::string& cert, const std::string& key) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    REQUIRE(SSL_CTX_use_certificate_file(ctx_, cert.c_str(), SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) == 1);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd_, 4) == 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TlsCollector() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_.size();
  }
  std::vector<std::string> messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{0, 50'000};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        std::string pending;
        char buf[8192];
        while (!stop_) {
          const int n = SSL_read(ssl, buf, sizeof(buf));
          if (n <= 0) {
            const int e = SSL_get_error(ssl, n);
            if (e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && errno == EAGAIN)) {
              ERR_clear_error();
              continue;
            }
            break;
          }
          pending.append(buf, static_cast<size_t>(n));
          for (;;) {
            const size_t sp = pending.find(' ');
            if (sp == std::string::npos) break;
            const size_t len = std::stoul(pending.substr(0, sp));
            if (pending.size() < sp + 1 + len) break;
            std::lock_guard<std::mutex> lock(mu_);
            messages_.push_back(pending.substr(sp + 1, len));
            pending.erase(0, sp + 1 + len);
          }
        }
      }
      SSL_free(ssl);
      ::close(c);
    }
  }

  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::string> messages_;
};

}  // namespace

TEST_CASE("syslog shipper over TLS: verified delivery, a wrong name is refused",
          "[shipping][syslog][tls]") {
  TempDir tmp;
  const std::string cert = tmp.path + "/cert.pem";
  const std::string key = tmp.path + "/key.pem";
  make_certificate("collector.test", cert, key);
  TlsCollector collector(cert, key);
  ConnectionInfo c;

  SyslogOptions o;
  o.address = collector.address();
  o.tls = true;
  o.ca_file = cert;
  o.server_name = "collector.test";
  o.backoff_min = 10ms;
  o.backoff_max = 50ms;
  o.confirm_delay = 50ms;
  {
    auto s = SyslogShipper::Start(o, 0);
    REQUIRE(s.ok());
    auto shipper = std::move(s.value());
    for (uint64_t i = 0; i < 500; ++i) shipper->on_statement(numbered(&c, i));
    REQUIRE(shipper->flush(10s).ok());
    std::vector<uint64_t> got;
    for (const std::string& m : collector.messages()) got.push_back(seq_of(m));
    CHECK(check_in_order(got, 500) == 0);
    CHECK(shipper->stats().sent == 500);
  }

  o.server_name = "other.test";
  auto s = SyslogShipper::Start(o, 0);
  REQUIRE(s.ok());
  auto shipper = std::move(s.value());
  shipper->on_statement(numbered(&c, 1000));
  auto r = shipper->flush(300ms);
  REQUIRE_FALSE(r.ok());
  INFO(r.message());
  CHECK(r.message().find("TLS handshake") != std::string::npos);
  CHECK(shipper->stats().connect_errors >= 1);
  CHECK(shipper->stats().sent == 0);
  CHECK(collector.count() == 500);
}
