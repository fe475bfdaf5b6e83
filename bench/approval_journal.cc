// SPDX-License-Identifier: Apache-2.0
//
// What the pending requests' journal (approvals/journal.h, issue 14 item 5) adds to the
// approval path: the real Broker, with the real Journal in DIR (fdatasync of each new request
// by the journal's writer thread before anyone sees it, and of each decision) and without
// one (the baseline), rounds alternating in one run. Each iteration submits a request (the
// proxy thread's step: with the journal it returns at once), waits until the request is
// visible (its `requested` event: the webhook, the inbox and the list see it then), and
// denies it (the approver's step), with `--pending` other requests left pending throughout,
// as in approval_latency.py. Prints the wall time of each step (an fsync is a wait, not
// CPU), p50 / p99 / max per setting, and the added milliseconds against the baseline of the
// same run.
//
// Usage: bench_approval_journal [--dir DIR] [--iterations N] [--rounds N] [--pending N]
#include <time.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "approvals/broker.h"
#include "approvals/journal.h"

namespace {

using dbwarden::approvals::Approver;
using dbwarden::approvals::Broker;
using dbwarden::approvals::BrokerOptions;
using dbwarden::approvals::Journal;
using dbwarden::approvals::RequestSpec;

double mono_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

RequestSpec spec() {
  RequestSpec s;
  s.rule = "bench-approve";
  s.text = "DELETE FROM bench_appr WHERE id = 1";
  s.operation = "DELETE";
  s.fingerprint = 0x1234;
  s.approvers = {"alice"};
  s.who.db_user = "postgres";
  s.who.database = "postgres";
  s.who.client_address = "127.0.0.1";
  s.who.client_port = 40000;
  s.who.pid = 4242;
  s.who.uid = 0;
  s.who.login_uid = 1000;
  s.who.executable = "/usr/bin/psql";
  return s;
}

struct Times {
  std::vector<double> submit, visible, decide;
};

// When each request became visible (its `requested` event, which the broker emits once the
// journal has it on disk).
struct Seen final : dbwarden::approvals::EventSink {
  void on_approval_event(const dbwarden::approvals::Event& e) override {
    if (e.kind != "requested") return;
    std::lock_guard<std::mutex> lock(mu);
    last = std::max(last, e.id);
    at_ms = mono_ms();
    cv.notify_all();
  }
  // The time request `id` became visible.
  double wait(uint64_t id) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return last >= id; });
    return at_ms;
  }
  std::mutex mu;
  std::condition_variable cv;
  uint64_t last = 0;
  double at_ms = 0;
};

void run(bool journaled, const std::string& dir, int iterations, int pending, Times& t) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::unique_ptr<Journal> journal;
  BrokerOptions o;
  if (journaled) {
    auto j = Journal::Open(dir + "/approvals-pending.journal", nullptr);
    if (!j.ok()) {
      std::fprintf(stderr, "%s\n", j.status().message().c_str());
      std::exit(2);
    }
    journal = std::move(j.value());
    o.journal = journal.get();
  }
  Seen seen;
  Broker b(&seen, o);
  uint64_t last = 0;
  for (int i = 0; i < pending; ++i) last = b.submit(spec(), 0).value();
  if (last != 0) seen.wait(last);
  Approver alice;
  alice.name = "alice";
  alice.uid = 2000;
  for (int i = 0; i < iterations; ++i) {
    const double t0 = mono_ms();
    auto id = b.submit(spec(), 0);
    const double t1 = mono_ms();
    if (!id.ok()) std::exit(3);
    const double t2 = seen.wait(id.value());
    const double t3 = mono_ms();
    if (!b.deny(id.value(), alice, "bench", 0).ok()) std::exit(3);
    const double t4 = mono_ms();
    b.forget(id.value());
    t.submit.push_back(t1 - t0);
    t.visible.push_back(std::max(t2, t1) - t0);
    t.decide.push_back(t4 - t3);
  }
}

double pct(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/var/tmp/dbw-bench-approval-journal";
  int iterations = 200, rounds = 3, pending = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    if (!std::strcmp(argv[i], "--iterations")) iterations = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--pending")) pending = std::atoi(argv[i + 1]);
  }
  Times base, journaled;
  for (int r = 0; r < rounds; ++r) {
    run(false, dir, iterations, pending, base);
    run(true, dir, iterations, pending, journaled);
  }
  std::filesystem::remove_all(dir);
  std::printf("%d rounds x %d requests, %d pending, journal in %s; ms (wall)\n", rounds, iterations,
              pending, dir.c_str());
  std::printf("%-10s %-8s %9s %9s %9s\n", "setting", "step", "p50", "p99", "max");
  for (const auto& [name, t] : {std::pair{"memory", &base}, std::pair{"journal", &journaled}}) {
    for (const auto& [step, v] :
         {std::pair{"submit", &t->submit}, std::pair{"visible", &t->visible},
          std::pair{"decide", &t->decide}}) {
      std::printf("%-10s %-8s %9.4f %9.4f %9.4f\n", name, step, pct(*v, 0.5), pct(*v, 0.99),
                  pct(*v, 1.0));
    }
  }
  // What the proxy thread waits for (submit), and what the request's way to its approvers
  // does (submit until visible, then the decision).
  std::printf("added by the journal to the proxy thread (submit): p50 %.3f ms, p99 %.3f ms\n",
              pct(journaled.submit, 0.5) - pct(base.submit, 0.5),
              pct(journaled.submit, 0.99) - pct(base.submit, 0.99));
  std::printf("added by the journal to the request (visible + decide): p50 %.3f ms, p99 %.3f ms\n",
              pct(journaled.visible, 0.5) + pct(journaled.decide, 0.5) - pct(base.visible, 0.5) -
                  pct(base.decide, 0.5),
              pct(journaled.visible, 0.99) + pct(journaled.decide, 0.99) - pct(base.visible, 0.99) -
                  pct(base.decide, 0.99));
  return 0;
}
