// SPDX-License-Identifier: Apache-2.0
//
// Helpers for the shipping tests: a temporary directory, numbered statements,
// and a small syslog collector on 127.0.0.1 (a thread reading octet-counted
// frames) that can be closed abruptly and started again on the same port.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../support/temp_dir.h"
#include "protocol/statement.h"

namespace dbw_shipping_test {

namespace fs = std::filesystem;

using dbw_test::TempDir;

// Statement `seq` carries its number in the query text "SELECT <seq>".
inline dbwarden::Statement numbered(const dbwarden::ConnectionInfo* c, uint64_t seq) {
  dbwarden::Statement s;
  s.connection = c;
  s.start_ns = 1'000'000'000ull + seq * 1000;
  s.end_ns = s.start_ns + 500;
  s.text = "SELECT " + std::to_string(seq);
  s.operation = "SELECT";
  return s;
}

// The seq of a syslog message body ("<PRI>1 ... - {json}").
inline uint64_t seq_of(const std::string& body) {
  const size_t brace = body.find('{');
  REQUIRE(brace != std::string::npos);
  const auto j = nlohmann::json::parse(body.substr(brace));
  const std::string text = j["db.query.text"].get<std::string>();
  return std::stoull(text.substr(7));
}

// Checks that `seqs` delivers 0..n-1 in order, where a reconnect may send a
// stretch again: every seq is either the next new one or a repeat. Returns
// the number of repeats.
inline uint64_t check_in_order(const std::vector<uint64_t>& seqs, uint64_t n) {
  uint64_t next = 0;
  uint64_t repeats = 0;
  for (uint64_t s : seqs) {
    if (s == next) {
      ++next;
    } else {
      INFO("seq " << s << " arrived while expecting " << next);
      REQUIRE(s < next);
      ++repeats;
    }
  }
  REQUIRE(next == n);
  return repeats;
}

class Collector {
 public:
  explicit Collector(uint16_t port = 0) { start(port); }
  ~Collector() { stop(); }

  // Listens on 127.0.0.1:port (0: any free port) and starts reading.
  void start(uint16_t port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(listen_fd_, 8) == 0);
    socklen_t len = sizeof(a);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    stop_ = false;
    thread_ = std::thread([this] { run(); });
  }

  // Closes the listener and every connection at once, unread bytes and all.
  void stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
    for (int fd : clients_) ::close(fd);
    clients_.clear();
    partial_.clear();
    ::close(listen_fd_);
    listen_fd_ = -1;
  }

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  size_t connections() const { return connections_.load(); }
  // Stops reading (but keeps connections open) to play a stuck collector.
  void pause(bool paused) { paused_ = paused; }

  bool wait_for(size_t count, std::chrono::milliseconds timeout) const {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (messages().size() >= count) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return messages().size() >= count;
  }

 private:
  void run() {
    while (!stop_) {
      std::vector<pollfd> p{{listen_fd_, POLLIN, 0}};
      if (!paused_) {
        for (int fd : clients_) p.push_back({fd, POLLIN, 0});
      }
      if (::poll(p.data(), p.size(), 10) <= 0) continue;
      if (p[0].revents & POLLIN) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          clients_.push_back(fd);
          partial_.emplace_back();
          ++connections_;
        }
      }
      for (size_t i = 1; i < p.size(); ++i) {
        if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        char buf[8192];
        const ssize_t n = ::recv(p[i].fd, buf, sizeof(buf), 0);
        if (n <= 0) continue;
        std::string& pending = partial_[i - 1];
        pending.append(buf, static_cast<size_t>(n));
        parse(pending);
      }
    }
  }

  // RFC 6587 octet counting: "LEN SP MSG".
  void parse(std::string& pending) {
    for (;;) {
      const size_t sp = pending.find(' ');
      if (sp == std::string::npos) return;
      const size_t len = std::stoul(pending.substr(0, sp));
      if (pending.size() < sp + 1 + len) return;
      std::lock_guard<std::mutex> lock(mu_);
      messages_.push_back(pending.substr(sp + 1, len));
      pending.erase(0, sp + 1 + len);
    }
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::atomic<size_t> connections_{0};
  std::thread thread_;
  std::vector<int> clients_;
  std::vector<std::string> partial_;
  mutable std::mutex mu_;
  std::vector<std::string> messages_;
};

}  // namespace dbw_shipping_test
