// SPDX-License-Identifier: Apache-2.0
//
// The approval path's metrics (agent/approval_tally.h, metrics::Exporter::publish_approvals):
// a real broker's events become pending requests, decisions by outcome and the time each
// took, and the exporter shows them as gauges, counters and a histogram.
#include "agent/approval_tally.h"

#include <catch2/catch.hpp>
#include <string>

#include "approvals/broker.h"
#include "metrics/exporter.h"

namespace {

using dbwarden::agent::ApprovalTally;
using dbwarden::approvals::Approver;
using dbwarden::approvals::Broker;
using dbwarden::approvals::RequestSpec;
using dbwarden::metrics::ApprovalCounters;

constexpr uint64_t kSecond = 1'000'000'000ull;

RequestSpec spec(uint32_t approvals = 1) {
  RequestSpec s;
  s.rule = "big-deletes";
  s.text = "DELETE FROM accounts WHERE id = 1";
  s.operation = "DELETE";
  s.approvers = {"alice", "bob"};
  s.approvals = approvals;
  s.timeout_ns = 60 * kSecond;
  s.who.uid = 1000;
  return s;
}

Approver person(const std::string& name, int64_t uid) {
  Approver a;
  a.name = name;
  a.uid = uid;
  a.channel = "cli";
  return a;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("approval metrics: pending, decisions by outcome, time to decision",
          "[approvals][agent][metrics]") {
  uint64_t now = 100 * kSecond;
  ApprovalTally tally([&] { return now; });
  Broker broker(&tally);
  ApprovalCounters c;

  auto a = broker.submit(spec(2), now);  // needs two approvals
  now += 10 * kSecond;
  auto b = broker.submit(spec(), now);
  auto w = broker.submit(spec(), now);
  REQUIRE((a.ok() && b.ok() && w.ok()));
  now += 2 * kSecond;
  tally.snapshot(now, c);
  CHECK(c.requests == 3);
  CHECK(c.pending == 3);
  CHECK(c.oldest_pending_seconds == Approx(12.0));

  // One approval of two: still pending, no decision.
  REQUIRE(broker.approve(a.value(), person("alice", 2000), "", 0, now).ok());
  tally.snapshot(now, c);
  CHECK(c.pending == 3);
  CHECK(c.decisions[0] == 0);

  now += 3 * kSecond;  // a: 15 s, b: 5 s
  REQUIRE(broker.approve(a.value(), person("bob", 2001), "", 0, now).ok());
  REQUIRE(broker.deny(b.value(), person("bob", 2001), "no", now).ok());
  broker.withdraw(w.value(), now);
  auto e = broker.submit(spec(), now);
  REQUIRE(e.ok());
  now += 61 * kSecond;
  broker.expire(now);
  auto d = broker.submit(spec(), now);
  REQUIRE(d.ok());
  now += kSecond / 20;
  broker.deny_all("the agent stopped", now);

  tally.snapshot(now, c);
  CHECK(c.requests == 5);
  CHECK(c.pending == 0);
  CHECK(c.oldest_pending_seconds == 0);
  CHECK(c.decisions[0] == 1);  // approved
  CHECK(c.decisions[1] == 2);  // denied: by bob, and as the agent stopped
  CHECK(c.decisions[2] == 1);  // expired
  CHECK(c.decisions[3] == 1);  // withdrawn
  CHECK(c.decision_seconds[0] == Approx(15.0));
  CHECK(c.decision_seconds[1] == Approx(5.05));
  CHECK(c.decision_seconds[2] == Approx(61.0));
  // Buckets (bounds 0.1, 0.5, 1, 5, 15, 30, 60, 120 ...): le is inclusive.
  CHECK(c.decision_buckets[0][4] == 1);  // 15 s in le=15
  CHECK(c.decision_buckets[1][0] == 1);  // 0.05 s in le=0.1
  CHECK(c.decision_buckets[1][3] == 1);  // 5 s in le=5
  CHECK(c.decision_buckets[2][7] == 1);  // 61 s in le=120
  CHECK(c.decision_buckets[3][3] == 1);  // withdrawn after 5 s: le=5
}

TEST_CASE("approval metrics: the exporter shows them from the start and adds differences",
          "[approvals][agent][metrics]") {
  auto exporter = dbwarden::metrics::Exporter::Start("", "test");
  REQUIRE(exporter.ok());
  auto& m = *exporter.value();
  std::string text = m.serialize();
  // Present at zero before any enforcement (observe mode, dashboards).
  CHECK(has_line(text, "dbwarden_approvals_pending 0"));
  CHECK(has_line(text, "dbwarden_approvals_decisions_total{outcome=\"expired\"} 0"));
  CHECK(has_line(text, "dbwarden_approvals_decision_seconds_count{outcome=\"approved\"} 0"));
  CHECK(has_line(text, "dbwarden_approvals_webhook_failures_total 0"));
  CHECK(has_line(text, "dbwarden_approvals_webhook_notifications_total{outcome=\"dropped\"} 0"));

  uint64_t now = 0;
  ApprovalTally tally([&] { return now; });
  Broker broker(&tally);
  auto a = broker.submit(spec(), now);
  auto b = broker.submit(spec(), now);
  REQUIRE((a.ok() && b.ok()));
  now = 3 * kSecond;
  REQUIRE(broker.approve(a.value(), person("alice", 2000), "", 0, now).ok());
  ApprovalCounters c;
  tally.snapshot(now + kSecond, c);
  c.webhook_failures = 2;
  c.webhook_delivered = 2;
  c.webhook_queued = 1;
  m.publish_approvals(c);
  m.publish_approvals(c);  // the same totals again: nothing more
  text = m.serialize();
  CHECK(has_line(text, "dbwarden_approvals_pending 1"));
  CHECK(has_line(text, "dbwarden_approvals_oldest_pending_seconds 4"));
  CHECK(has_line(text, "dbwarden_approvals_requests_total 2"));
  CHECK(has_line(text, "dbwarden_approvals_decisions_total{outcome=\"approved\"} 1"));
  CHECK(has_line(text, "dbwarden_approvals_decision_seconds_count{outcome=\"approved\"} 1"));
  CHECK(has_line(text, "dbwarden_approvals_decision_seconds_sum{outcome=\"approved\"} 3"));
  CHECK(has_line(text,
                 "dbwarden_approvals_decision_seconds_bucket{outcome=\"approved\",le=\"1\"} 0"));
  CHECK(has_line(text,
                 "dbwarden_approvals_decision_seconds_bucket{outcome=\"approved\",le=\"5\"} 1"));
  CHECK(has_line(text, "dbwarden_approvals_webhook_failures_total 2"));
  CHECK(has_line(text, "dbwarden_approvals_webhook_notifications_total{outcome=\"delivered\"} 2"));
  CHECK(has_line(text, "dbwarden_approvals_webhook_queue 1"));

  REQUIRE(broker.deny(b.value(), person("alice", 2000), "no", now).ok());
  tally.snapshot(now, c);
  c.webhook_failures = 3;
  m.publish_approvals(c);
  text = m.serialize();
  CHECK(has_line(text, "dbwarden_approvals_pending 0"));
  CHECK(has_line(text, "dbwarden_approvals_decisions_total{outcome=\"denied\"} 1"));
  CHECK(has_line(text, "dbwarden_approvals_decision_seconds_count{outcome=\"approved\"} 1"));
  CHECK(has_line(text, "dbwarden_approvals_webhook_failures_total 3"));
}
