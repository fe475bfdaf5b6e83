// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "metrics/exporter.h"

namespace dbwarden::metrics {
namespace {

TEST_CASE("shipping destinations get totals as counters and levels as gauges",
          "[metrics][shipping]") {
  auto e = Exporter::Start("", "test");
  REQUIRE(e.ok());
  ShippingCounters c;
  c.sent = 10;
  c.dropped = 1;
  c.queue_bytes = 300;
  c.lag_seconds = 2.5;
  e.value()->publish_shipping("syslog", c);
  c.sent = 25;  // totals: the counter grows by the difference
  c.queue_bytes = 0;
  e.value()->publish_shipping("syslog", c);
  e.value()->set_audit_queue_bytes(77);
  const std::string text = e.value()->serialize();
  CHECK_THAT(text, Catch::Contains("dbwarden_shipping_sent_total{sink=\"syslog\"} 25"));
  CHECK_THAT(text, Catch::Contains("dbwarden_shipping_dropped_total{sink=\"syslog\"} 1"));
  CHECK_THAT(text, Catch::Contains("dbwarden_shipping_queue_bytes{sink=\"syslog\"} 0"));
  CHECK_THAT(text, Catch::Contains("dbwarden_shipping_lag_seconds{sink=\"syslog\"} 2.5"));
  CHECK_THAT(text, Catch::Contains("dbwarden_audit_queue_bytes 77"));
}

}  // namespace
}  // namespace dbwarden::metrics
