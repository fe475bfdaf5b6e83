// SPDX-License-Identifier: Apache-2.0
#include "shipping/stdout_shipper.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "shipping_test_util.h"

using dbwarden::ConnectionInfo;
using dbwarden::shipping::StdoutOptions;
using dbwarden::shipping::StdoutShipper;
using namespace dbw_shipping_test;
using namespace std::chrono_literals;

namespace {

std::string drain(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

TEST_CASE("stdout shipper: one JSON line per record, in order", "[shipping][stdout]") {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  StdoutOptions o;
  o.fd = p[1];
  auto r = StdoutShipper::Start(o, 0);
  REQUIRE(r.ok());
  auto shipper = std::move(r.value());
  ConnectionInfo c;
  std::string got;
  for (uint64_t i = 0; i < 1000; ++i) {
    shipper->on_statement(numbered(&c, i));
    if (i % 100 == 0) got += drain(p[0]);
  }
  while (!shipper->flush(10ms).ok()) got += drain(p[0]);
  got += drain(p[0]);
  uint64_t seq = 0;
  size_t start = 0;
  for (size_t nl; (nl = got.find('\n', start)) != std::string::npos; start = nl + 1) {
    CHECK(seq_of(got.substr(start, nl - start)) == seq);
    ++seq;
  }
  CHECK(seq == 1000);
  CHECK(start == got.size());
  const auto s = shipper->stats();
  CHECK(s.written == 1000);
  CHECK(s.dropped == 0);
  shipper.reset();
  ::close(p[0]);
  ::close(p[1]);
}

TEST_CASE("stdout shipper: nobody reading: bounded, drops counted, shutdown bounded",
          "[shipping][stdout]") {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  StdoutOptions o;
  o.fd = p[1];
  o.max_buffered_bytes = 256 * 1024;  // more than the pipe holds
  o.shutdown_timeout = 200ms;
  auto r = StdoutShipper::Start(o, 0);
  REQUIRE(r.ok());
  auto shipper = std::move(r.value());
  ConnectionInfo c;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < 5000; ++i) shipper->on_statement(numbered(&c, i));
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);  // never waited on the pipe
  std::this_thread::sleep_for(300ms);
  auto s = shipper->stats();
  CHECK(s.dropped > 0);
  CHECK(s.buffered_bytes <= o.max_buffered_bytes);
  CHECK_FALSE(shipper->flush(50ms).ok());
  const auto t1 = std::chrono::steady_clock::now();
  shipper.reset();
  CHECK(std::chrono::steady_clock::now() - t1 < 2s);
  ::close(p[0]);
  ::close(p[1]);
}
