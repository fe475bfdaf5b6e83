// SPDX-License-Identifier: Apache-2.0
#include "shipping/connection.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dbwarden::shipping {
namespace {

using Clock = std::chrono::steady_clock;

bool split_address(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return true;
}

std::string ssl_error_text() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

}  // namespace

Connection::~Connection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

bool Connection::wait(short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    return true;  // ready, or an error the next call reports
  }
}

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& address,
                                                     const TlsClientOptions& tls,
                                                     std::chrono::milliseconds timeout) {
  std::string host, port;
  if (!split_address(address, &host, &port)) {
    return Status::Error("syslog: address '" + address + "' is not HOST:PORT");
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) {
    return Status::Error("syslog: cannot resolve " + address + ": " + gai_strerror(gai));
  }
  std::unique_ptr<Connection> c(new Connection());
  const auto deadline = Clock::now() + timeout;
  std::string last = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    c->fd_ = fd;
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS && c->wait(POLLOUT, deadline)) {
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err != 0 ? err : ETIMEDOUT;
    } else if (rc != 0 && errno == EINPROGRESS) {
      errno = ETIMEDOUT;
    }
    if (rc == 0) break;
    last = std::strerror(errno);
    ::close(fd);
    c->fd_ = -1;
  }
  ::freeaddrinfo(res);
  if (c->fd_ < 0) return Status::Error("syslog: cannot connect to " + address + ": " + last);
  const int one = 1;
  ::setsockopt(c->fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(c->fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  if (!tls.enabled) return c;

  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (c->ctx_ == nullptr) return Status::Error("syslog: " + ssl_error_text());
  SSL_CTX_set_min_proto_version(c->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
  const int loaded = tls.ca_file.empty()
                         ? SSL_CTX_set_default_verify_paths(c->ctx_)
                         : SSL_CTX_load_verify_locations(c->ctx_, tls.ca_file.c_str(), nullptr);
  if (loaded != 1) {
    return Status::Error("syslog: cannot load CA file '" + tls.ca_file + "': " + ssl_error_text());
  }
  c->ssl_ = SSL_new(c->ctx_);
  if (c->ssl_ == nullptr) return Status::Error("syslog: " + ssl_error_text());
  SSL_set_mode(c->ssl_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
  const std::string name = tls.server_name.empty() ? host : tls.server_name;
  SSL_set_tlsext_host_name(c->ssl_, name.c_str());
  SSL_set_hostflags(c->ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(c->ssl_, name.c_str()) != 1) {
    return Status::Error("syslog: bad TLS server name '" + name + "'");
  }
  SSL_set_fd(c->ssl_, c->fd_);
  for (;;) {
    const int r = SSL_connect(c->ssl_);
    if (r == 1) break;
    const int e = SSL_get_error(c->ssl_, r);
    if (e == SSL_ERROR_WANT_READ && c->wait(POLLIN, deadline)) continue;
    if (e == SSL_ERROR_WANT_WRITE && c->wait(POLLOUT, deadline)) continue;
    std::string why = ssl_error_text();
    const long verify = SSL_get_verify_result(c->ssl_);
    if (verify != X509_V_OK) why = X509_verify_cert_error_string(verify);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) why = "handshake timed out";
    return Status::Error("syslog: TLS handshake with " + address + " failed: " + why);
  }
  return c;
}

Result<size_t> Connection::write_some(std::string_view data, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (ssl_ != nullptr) {
      const int r =
          SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1u << 30)));
      if (r > 0) return static_cast<size_t>(r);
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        if (wait(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline)) continue;
        return size_t{0};
      }
      closed_ = true;
      return Status::Error("syslog: TLS write failed: " + ssl_error_text());
    }
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) return static_cast<size_t>(n);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait(POLLOUT, deadline)) continue;
      return size_t{0};
    }
    closed_ = true;
    return Status::Error(std::string("syslog: write failed: ") + std::strerror(errno));
  }
}

bool Connection::peer_closed() {
  if (closed_) return true;
  pollfd p{fd_, static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
    closed_ = true;
    return true;
  }
  char buf[4096];
  for (;;) {
    ssize_t n;
    if (ssl_ != nullptr) {
      n = SSL_read(ssl_, buf, sizeof(buf));
      if (n <= 0) {
        const int e = SSL_get_error(ssl_, static_cast<int>(n));
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return false;
        closed_ = true;  // close_notify, or an error
        return true;
      }
    } else {
      n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0) {
        closed_ = true;
        return true;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
        closed_ = true;
        return true;
      }
    }
  }
}

int Connection::unacked_bytes() const {
  int n = 0;
  if (::ioctl(fd_, SIOCOUTQ, &n) != 0) return -1;
  return n;
}

}  // namespace dbwarden::shipping
