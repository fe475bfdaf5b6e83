// SPDX-License-Identifier: Apache-2.0
#include "shipping/syslog_shipper.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "shipping_test_util.h"

using dbwarden::ConnectionInfo;
using dbwarden::shipping::SyslogOptions;
using dbwarden::shipping::SyslogShipper;
using namespace dbw_shipping_test;
using namespace std::chrono_literals;

namespace {

SyslogOptions fast_options(const std::string& address) {
  SyslogOptions o;
  o.address = address;
  o.hostname = "testhost";
  o.backoff_min = 10ms;
  o.backoff_max = 100ms;
  o.confirm_delay = 50ms;
  o.connect_timeout = 500ms;
  return o;
}

std::unique_ptr<SyslogShipper> start(const SyslogOptions& o) {
  auto s = SyslogShipper::Start(o, 0);
  INFO((s.ok() ? "" : s.status().message()));
  REQUIRE(s.ok());
  return std::move(s.value());
}

std::vector<uint64_t> seqs(const Collector& c) {
  std::vector<uint64_t> out;
  for (const std::string& m : c.messages()) out.push_back(seq_of(m));
  return out;
}

// A port nothing listens on: bind one, note it, close it.
uint16_t closed_port() {
  Collector c;
  const uint16_t p = c.port();
  c.stop();
  return p;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

size_t spool_files(const std::string& dir) {
  size_t n = 0;
  if (!std::filesystem::exists(dir)) return 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    n += e.path().extension() == ".log";
  }
  return n;
}

}  // namespace

TEST_CASE("syslog shipper: delivers every record once, in order, as RFC 5424",
          "[shipping][syslog]") {
  Collector collector;
  auto shipper = start(fast_options(collector.address()));
  ConnectionInfo c;
  c.db_system = "postgresql";
  for (uint64_t i = 0; i < 2000; ++i) shipper->on_statement(numbered(&c, i));
  REQUIRE(shipper->flush(10s).ok());
  const auto got = seqs(collector);
  CHECK(got.size() == 2000);
  CHECK(check_in_order(got, 2000) == 0);
  const std::string m = collector.messages().front();
  CHECK(m.rfind("<110>1 1970-01-01T00:00:01.000000Z testhost dbwarden ", 0) == 0);
  CHECK(m.find(" audit - {\"time\":\"1970-01-01T00:00:01.000000000Z\"") != std::string::npos);
  const auto s = shipper->stats();
  CHECK(s.accepted == 2000);
  CHECK(s.sent == 2000);
  CHECK(s.dropped == 0);
  CHECK(s.resent == 0);
  CHECK(s.queue_records == 0);
  CHECK(s.queue_bytes == 0);
  CHECK(s.lag_ms == 0);
  CHECK(s.connected);
  CHECK(collector.connections() == 1);
}

TEST_CASE("syslog shipper: collector closes mid-stream and comes back on the same port",
          "[shipping][syslog]") {
  TempDir tmp;
  auto collector = std::make_unique<Collector>();
  const uint16_t port = collector->port();
  SyslogOptions o = fast_options(collector->address());
  o.spool_dir = tmp.path + "/spool";
  auto shipper = start(o);
  ConnectionInfo c;
  constexpr uint64_t kN = 3000;
  for (uint64_t i = 0; i < kN; ++i) {
    shipper->on_statement(numbered(&c, i));
    if (i % 50 == 0) std::this_thread::sleep_for(1ms);
    if (i == 1000) collector->stop();  // unread bytes and all: the shipper sees a reset
    if (i == 2000) collector->start(port);
  }
  REQUIRE(shipper->flush(20s).ok());
  const auto got = seqs(*collector);
  const uint64_t repeats = check_in_order(got, kN);
  const auto s = shipper->stats();
  INFO("repeats " << repeats << " resent " << s.resent << " spooled " << s.spooled);
  CHECK(repeats <= s.resent);
  CHECK(s.accepted == kN);
  CHECK(s.sent == kN);
  CHECK(s.dropped == 0);
  CHECK(s.reconnects >= 1);
  CHECK(s.send_errors >= 1);
  CHECK(s.spool_records == 0);
  CHECK(spool_files(o.spool_dir) == 0);
}

TEST_CASE("syslog shipper: collector down from the start: spool, lag, then delivery",
          "[shipping][syslog]") {
  TempDir tmp;
  const uint16_t port = closed_port();
  SyslogOptions o = fast_options("127.0.0.1:" + std::to_string(port));
  o.spool_dir = tmp.path + "/spool";
  auto shipper = start(o);
  ConnectionInfo c;
  for (uint64_t i = 0; i < 500; ++i) shipper->on_statement(numbered(&c, i));
  REQUIRE(eventually([&] { return shipper->stats().spool_records == 500; }));
  std::this_thread::sleep_for(50ms);
  auto s = shipper->stats();
  CHECK(s.spooled == 500);
  CHECK(s.queue_records == 0);
  CHECK(s.spool_bytes > 500 * 100);
  CHECK(s.lag_ms >= 50);
  CHECK(s.connect_errors >= 1);
  CHECK_FALSE(s.connected);
  auto not_yet = shipper->flush(20ms);
  REQUIRE_FALSE(not_yet.ok());
  CHECK(not_yet.message().find("500 records not yet delivered") != std::string::npos);
  Collector collector(port);
  REQUIRE(shipper->flush(10s).ok());
  const auto got = seqs(collector);
  CHECK(check_in_order(got, 500) == 0);
  s = shipper->stats();
  CHECK(s.sent == 500);
  CHECK(s.spool_bytes == 0);
  CHECK(s.lag_ms == 0);
  CHECK(spool_files(o.spool_dir) == 0);
}

TEST_CASE("syslog shipper: without a spool the queue bound drops the newest, counted",
          "[shipping][syslog]") {
  const uint16_t port = closed_port();
  SyslogOptions o = fast_options("127.0.0.1:" + std::to_string(port));
  ConnectionInfo c;
  o.queue_max_bytes = 20 * 400;  // a record frame here is ~330 bytes
  auto shipper = start(o);
  for (uint64_t i = 0; i < 100; ++i) shipper->on_statement(numbered(&c, i));
  auto s = shipper->stats();
  CHECK(s.dropped > 0);
  CHECK(s.queue_bytes <= o.queue_max_bytes);
  CHECK(s.accepted == s.dropped + s.queue_records);
  const uint64_t kept = s.queue_records;
  Collector collector(port);
  REQUIRE(shipper->flush(10s).ok());
  CHECK(check_in_order(seqs(collector), kept) == 0);  // the oldest ones, gap-free
  CHECK(shipper->stats().sent == kept);
}

TEST_CASE("syslog shipper: a full spool refuses the newest records, counted",
          "[shipping][syslog]") {
  TempDir tmp;
  const uint16_t port = closed_port();
  SyslogOptions o = fast_options("127.0.0.1:" + std::to_string(port));
  o.spool_dir = tmp.path + "/spool";
  o.spool_max_bytes = 50 * 400;
  auto shipper = start(o);
  ConnectionInfo c;
  for (uint64_t i = 0; i < 200; ++i) shipper->on_statement(numbered(&c, i));
  REQUIRE(eventually([&] { return shipper->stats().queue_records == 0; }));
  auto s = shipper->stats();
  CHECK(s.spooled + s.dropped == 200);
  CHECK(s.dropped > 0);
  CHECK(s.spool_bytes <= o.spool_max_bytes);
  Collector collector(port);
  REQUIRE(shipper->flush(10s).ok());
  CHECK(check_in_order(seqs(collector), s.spooled) == 0);
}

TEST_CASE("syslog shipper: records left at shutdown are sent by the next run, in order",
          "[shipping][syslog]") {
  TempDir tmp;
  const uint16_t port = closed_port();
  SyslogOptions o = fast_options("127.0.0.1:" + std::to_string(port));
  o.spool_dir = tmp.path + "/spool";
  ConnectionInfo c;
  {
    auto shipper = start(o);
    for (uint64_t i = 0; i < 300; ++i) shipper->on_statement(numbered(&c, i));
    // Destroyed at once: whatever is still queued goes to the spool.
  }
  Collector collector(port);
  auto shipper = start(o);
  CHECK(shipper->stats().spool_records == 300);
  for (uint64_t i = 300; i < 400; ++i) shipper->on_statement(numbered(&c, i));
  REQUIRE(shipper->flush(10s).ok());
  CHECK(check_in_order(seqs(collector), 400) == 0);
}

TEST_CASE("syslog shipper: a collector that stops reading: bounded memory, nothing lost",
          "[shipping][syslog]") {
  TempDir tmp;
  Collector collector;
  SyslogOptions o = fast_options(collector.address());
  o.spool_dir = tmp.path + "/spool";
  o.queue_max_bytes = 1 << 20;
  o.in_flight_max_bytes = 64 * 1024;
  auto shipper = start(o);
  ConnectionInfo c;
  collector.pause(true);
  constexpr uint64_t kN = 20000;  // ~6.5 MB: more than the socket buffers hold
  for (uint64_t i = 0; i < kN; ++i) {
    shipper->on_statement(numbered(&c, i));
    CHECK(shipper->stats().queue_bytes <= o.queue_max_bytes);
    if (i % 20 == 0) std::this_thread::sleep_for(1ms);
  }
  const auto s = shipper->stats();
  INFO("spooled " << s.spooled << " dropped " << s.dropped << " sent " << s.sent);
  CHECK(s.spooled > 0);
  CHECK(s.dropped == 0);
  collector.pause(false);
  REQUIRE(shipper->flush(20s).ok());
  CHECK(check_in_order(seqs(collector), kN) == 0);
}

TEST_CASE("syslog shipper: bad options are errors", "[shipping][syslog]") {
  SyslogOptions o;
  CHECK_FALSE(SyslogShipper::Start(o, 0).ok());
  o.address = "127.0.0.1:1";
  o.facility = 24;
  CHECK_FALSE(SyslogShipper::Start(o, 0).ok());
  o.facility = 13;
  o.spool_dir = "/proc/version/spool";
  auto r = SyslogShipper::Start(o, 0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("/proc/version/spool") != std::string::npos);
}
