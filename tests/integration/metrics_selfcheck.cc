// SPDX-License-Identifier: Apache-2.0
//
// Fills a metrics Exporter with every kind of sample the agent produces,
// including the awkward ones (label overflow, hostile label values, drops),
// and prints the text exposition, for metrics_promtool.sh to lint.
#include <iostream>
#include <string>

#include "metrics/exporter.h"

int main() {
  using dbwarden::ConnectionInfo;
  using dbwarden::Statement;
  auto started = dbwarden::metrics::Exporter::Start("", "0.1.0-selfcheck");
  if (!started.ok()) {
    std::cerr << started.status().message() << "\n";
    return 1;
  }
  auto& exporter = *started.value();

  ConnectionInfo pg;
  pg.db_system = "postgresql";
  pg.database = "shop";
  pg.user = "alice";
  ConnectionInfo hostile = pg;
  static constexpr char kHostileUser[] = "ev\"il\\\n\xff\xc0 \0user{le=\"1\"}";
  hostile.user = std::string(kHostileUser, sizeof(kHostileUser) - 1) + std::string(300, 'x');
  hostile.database = "";
  const char* const operations[] = {"SELECT", "INSERT", "UPDATE", "", "WITH"};
  const char* const codes[] = {"00000", "23505", "42P01"};
  uint64_t duration_ns = 10'000;
  for (int i = 0; i < 1200; ++i) {  // more label sets than the limit
    ConnectionInfo c = i % 7 == 0 ? hostile : pg;
    c.user += std::to_string(i % 400);
    Statement s;
    s.connection = &c;
    s.start_ns = 1'000'000;
    s.end_ns = s.start_ns + duration_ns;
    duration_ns = duration_ns * 3 % 30'000'000'000 + 1;
    s.operation = operations[i % 5];
    s.status_code = codes[i % 3];
    exporter.on_statement(s);
  }
  exporter.set_active_connections("postgresql", 12);
  dbwarden::metrics::CaptureCounters capture;
  capture.events = 1000;
  capture.bytes = 123456;
  capture.drops[0] = 3;
  capture.drops[1] = 2;
  capture.gaps = 1;
  capture.gap_bytes = 512;
  dbwarden::metrics::DecoderCounters decoder;
  decoder.messages = 4000;
  decoder.invalid_messages = 2;
  decoder.resyncs = 1;
  decoder.midstream_joins = 3;
  exporter.publish(capture, decoder);
  exporter.publish_audit(1200, 480000, 1, 0);
  exporter.set_audit_queue_bytes(4096);
  dbwarden::metrics::ShippingCounters ship;
  ship.sent = 1100;
  ship.dropped = 2;
  ship.reconnects = 1;
  ship.send_errors = 3;
  ship.queue_bytes = 512;
  ship.spool_bytes = 65536;
  ship.lag_seconds = 1.5;
  exporter.publish_shipping("syslog", ship);
  std::cout << exporter.serialize();
  return 0;
}
