// SPDX-License-Identifier: Apache-2.0
//
// Drives the real SyslogShipper for test_syslog_shipping.py:
//   shipping_harness ADDRESS SPOOL_DIR FIRST COUNT INTERVAL_US FLUSH_TIMEOUT_MS
// Ships statements FIRST..FIRST+COUNT-1 (query text "SELECT <seq>"), one every
// INTERVAL_US, then flushes and prints the shipper's stats as one JSON object
// on stdout. Exit 0 when the flush delivered everything, 1 otherwise.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "shipping/syslog_shipper.h"

namespace {

int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s ADDRESS SPOOL_DIR FIRST COUNT INTERVAL_US FLUSH_TIMEOUT_MS\n",
                 argv[0]);
    return 2;
  }
  dbwarden::shipping::SyslogOptions o;
  o.address = argv[1];
  o.spool_dir = argv[2];
  const uint64_t first = std::strtoull(argv[3], nullptr, 10);
  const uint64_t count = std::strtoull(argv[4], nullptr, 10);
  const auto interval = std::chrono::microseconds(std::strtoll(argv[5], nullptr, 10));
  const auto flush_timeout = std::chrono::milliseconds(std::strtoll(argv[6], nullptr, 10));
  const int64_t offset = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
  auto shipper = dbwarden::shipping::SyslogShipper::Start(o, offset);
  if (!shipper.ok()) {
    std::fprintf(stderr, "%s\n", shipper.status().message().c_str());
    return 1;
  }
  dbwarden::ConnectionInfo c;
  c.connection_id = 1;
  c.db_system = "postgresql";
  c.user = "harness";
  c.database = "shipdb";
  c.client_address = "127.0.0.1";
  c.client_port = 40000;
  c.server_port = 5432;
  for (uint64_t seq = first; seq < first + count; ++seq) {
    dbwarden::Statement s;
    s.connection = &c;
    s.start_ns = static_cast<uint64_t>(clock_ns(CLOCK_MONOTONIC));
    s.end_ns = s.start_ns + 1000;
    s.text = "SELECT " + std::to_string(seq);
    s.operation = "SELECT";
    s.command_tag = "SELECT 1";
    (*shipper)->on_statement(s);
    if (interval.count() > 0) std::this_thread::sleep_for(interval);
  }
  const dbwarden::Status flushed = (*shipper)->flush(flush_timeout);
  const auto st = (*shipper)->stats();
  std::printf(
      "{\"accepted\":%llu,\"sent\":%llu,\"resent\":%llu,\"spooled\":%llu,\"dropped\":%llu,"
      "\"reconnects\":%llu,\"connect_errors\":%llu,\"send_errors\":%llu,\"spool_errors\":%llu,"
      "\"queue_records\":%llu,\"spool_records\":%llu,\"flushed\":%s}\n",
      static_cast<unsigned long long>(st.accepted), static_cast<unsigned long long>(st.sent),
      static_cast<unsigned long long>(st.resent), static_cast<unsigned long long>(st.spooled),
      static_cast<unsigned long long>(st.dropped), static_cast<unsigned long long>(st.reconnects),
      static_cast<unsigned long long>(st.connect_errors),
      static_cast<unsigned long long>(st.send_errors),
      static_cast<unsigned long long>(st.spool_errors),
      static_cast<unsigned long long>(st.queue_records),
      static_cast<unsigned long long>(st.spool_records), flushed.ok() ? "true" : "false");
  if (!flushed.ok()) std::fprintf(stderr, "%s\n", flushed.message().c_str());
  return flushed.ok() ? 0 : 1;
}
