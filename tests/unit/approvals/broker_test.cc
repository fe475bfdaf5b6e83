// SPDX-License-Identifier: Apache-2.0
//
// The approvals broker's rules, whatever the channel: quorum of distinct approvers, no
// self-approval, only the rule's groups, timeout, JIT grants, withdrawal, and an event
// for every step.
#include "approvals/broker.h"

#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace {

using dbwarden::approvals::Approver;
using dbwarden::approvals::Broker;
using dbwarden::approvals::Event;
using dbwarden::approvals::EventSink;
using dbwarden::approvals::RequestSpec;
using dbwarden::approvals::State;

constexpr uint64_t kSecond = 1'000'000'000ull;

struct Events : EventSink {
  void on_approval_event(const Event& e) override {
    kinds.push_back(e.kind + (e.by.empty() ? "" : ":" + e.by));
    reasons.push_back(e.reason);
    channels.push_back(e.channel);
  }
  std::vector<std::string> kinds, reasons, channels;
};

RequestSpec spec(uint32_t approvals = 1) {
  RequestSpec s;
  s.rule = "big-deletes";
  s.text = "DELETE FROM accounts WHERE id = ?";
  s.operation = "DELETE";
  s.fingerprint = 0xabc;
  s.identity = "app@shop uid=1000 login_uid=1001";
  s.approvers = {"alice", "bob", "carol"};
  s.approvals = approvals;
  s.timeout_ns = 60 * kSecond;
  s.who.db_user = "app";
  s.who.uid = 1000;
  s.who.login_uid = 1001;
  return s;
}

Approver person(const std::string& name, int64_t uid) {
  Approver a;
  a.name = name;
  a.uid = uid;
  a.login_uid = uid;
  a.channel = "cli";
  return a;
}

bool woken(const Broker& b) {
  pollfd p{b.wake_fd(), POLLIN, 0};
  if (poll(&p, 1, 0) != 1) return false;
  uint64_t n = 0;
  return read(b.wake_fd(), &n, sizeof n) == sizeof n && n > 0;
}

}  // namespace

TEST_CASE("broker: one approval releases, and the proxy is woken", "[approvals]") {
  Events ev;
  Broker b(&ev);
  auto id = b.submit(spec(), 0);
  REQUIRE(id.ok());
  CHECK(b.pending() == 1);
  CHECK(b.list().size() == 1);
  CHECK_FALSE(woken(b));
  auto r = b.approve(id.value(), person("alice", 2000), "looks fine", 0, kSecond);
  REQUIRE(r.ok());
  CHECK(r.value() == State::kApproved);
  CHECK(woken(b));
  std::string reason;
  CHECK(b.state(id.value(), &reason) == State::kApproved);
  CHECK(reason == "looks fine");
  CHECK(b.list().empty());
  b.forget(id.value());
  CHECK_FALSE(b.state(id.value(), nullptr).has_value());
  CHECK(ev.kinds == std::vector<std::string>{"requested", "approved:alice"});
  CHECK(ev.channels[1] == "cli");
  // Deciding again: refused.
  CHECK_FALSE(b.approve(id.value(), person("bob", 2001), "", 0, kSecond).ok());
}

TEST_CASE("broker: a quorum needs distinct approvers", "[approvals]") {
  Events ev;
  Broker b(&ev);
  const uint64_t id = b.submit(spec(2), 0).value();
  CHECK(b.approve(id, person("alice", 2000), "", 0, 1).value() == State::kPending);
  auto again = b.approve(id, person("alice", 2000), "", 0, 2);
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().message() ==
        "you already approved request 1; it needs 2 distinct approvers");
  CHECK(b.state(id, nullptr) == State::kPending);
  CHECK_FALSE(woken(b));
  CHECK(b.approve(id, person("bob", 2001), "", 0, 3).value() == State::kApproved);
  CHECK(b.show(id)->approved_by == std::vector<std::string>{"alice", "bob"});
  CHECK(ev.kinds == std::vector<std::string>{"requested", "approved:alice", "approved:bob"});
}

TEST_CASE("broker: nobody decides their own request", "[approvals]") {
  Broker b(nullptr);
  const uint64_t id = b.submit(spec(), 0).value();
  // alice is an approver, but her uid is the requester's.
  auto same_uid = b.approve(id, person("alice", 1000), "", 0, 1);
  REQUIRE_FALSE(same_uid.ok());
  CHECK(same_uid.status().message() ==
        "request 1 was made by you (uid or login uid 1000): nobody decides their own request");
  // Behind sudo: the caller's login uid is the requester's login uid.
  Approver sudo = person("bob", 0);
  sudo.login_uid = 1001;
  CHECK_FALSE(b.approve(id, sudo, "", 0, 1).ok());
  CHECK_FALSE(b.deny(id, sudo, "no", 1).ok());
  CHECK(b.state(id, nullptr) == State::kPending);
}

TEST_CASE("broker: only the rule's approvers decide", "[approvals]") {
  Broker b(nullptr);
  const uint64_t id = b.submit(spec(), 0).value();
  auto outsider = b.approve(id, person("mallory", 3000), "", 0, 1);
  REQUIRE_FALSE(outsider.ok());
  CHECK(outsider.status().message() ==
        "user 'mallory' is not an approver of rule 'big-deletes' (not in its approver groups)");
  CHECK_FALSE(b.deny(id, person("mallory", 3000), "no", 1).ok());
  CHECK_FALSE(b.approve(id, person("", 3000), "", 0, 1).ok());  // an unmapped uid
  CHECK(b.state(id, nullptr) == State::kPending);
}

TEST_CASE("broker: deny needs a reason and decides at once", "[approvals]") {
  Events ev;
  Broker b(&ev);
  const uint64_t id = b.submit(spec(2), 0).value();
  CHECK_FALSE(b.deny(id, person("carol", 2002), "", 1).ok());
  CHECK(b.deny(id, person("carol", 2002), "not during business hours", 1).value() ==
        State::kDenied);
  std::string reason;
  CHECK(b.state(id, &reason) == State::kDenied);
  CHECK(reason == "not during business hours");
  CHECK(woken(b));
  CHECK(ev.kinds.back() == "denied:carol");
}

TEST_CASE("broker: a request expires at its timeout", "[approvals]") {
  Events ev;
  Broker b(&ev);
  const uint64_t id = b.submit(spec(), 10 * kSecond).value();
  CHECK(b.expire(20 * kSecond) == 70 * kSecond);  // the next deadline
  CHECK(b.state(id, nullptr) == State::kPending);
  CHECK(b.expire(70 * kSecond) == UINT64_MAX);
  std::string reason;
  CHECK(b.state(id, &reason) == State::kExpired);
  CHECK(reason == "no decision within the rule's timeout of 60s");
  CHECK(woken(b));
  CHECK_FALSE(b.approve(id, person("alice", 2000), "", 0, 71 * kSecond).ok());
  CHECK(ev.kinds == std::vector<std::string>{"requested", "expired"});
}

TEST_CASE("broker: a JIT grant covers its fingerprint and identity for its window", "[approvals]") {
  Broker b(nullptr);
  const RequestSpec s = spec();
  const uint64_t id = b.submit(s, 0).value();
  CHECK_FALSE(b.granted(s.fingerprint, s.identity, 1));
  REQUIRE(b.approve(id, person("alice", 2000), "migration", 2 * kSecond, kSecond).ok());
  CHECK(b.granted(s.fingerprint, s.identity, 2 * kSecond));
  CHECK_FALSE(b.granted(s.fingerprint + 1, s.identity, 2 * kSecond));      // another statement
  CHECK_FALSE(b.granted(s.fingerprint, "other@shop uid=7", 2 * kSecond));  // another identity
  CHECK_FALSE(b.granted(s.fingerprint, s.identity, 3 * kSecond));          // the window has ended
  // A plain approval grants nothing beyond its statement.
  const uint64_t id2 = b.submit(s, 4 * kSecond).value();
  REQUIRE(b.approve(id2, person("alice", 2000), "", 0, 5 * kSecond).ok());
  CHECK_FALSE(b.granted(s.fingerprint, s.identity, 5 * kSecond));
}

TEST_CASE("broker: a client that goes away withdraws its request", "[approvals]") {
  Events ev;
  Broker b(&ev);
  const uint64_t id = b.submit(spec(), 0).value();
  b.withdraw(id, 1);
  CHECK_FALSE(b.state(id, nullptr).has_value());
  CHECK(b.pending() == 0);
  CHECK_FALSE(b.approve(id, person("alice", 2000), "", 0, 2).ok());
  CHECK(ev.kinds == std::vector<std::string>{"requested", "withdrawn"});
}

TEST_CASE("broker: pending requests are bounded and denied all at once at shutdown",
          "[approvals]") {
  Events ev;
  dbwarden::approvals::BrokerOptions o;
  o.max_pending = 2;
  Broker b(&ev, o);
  const uint64_t a = b.submit(spec(), 0).value();
  const uint64_t c = b.submit(spec(), 0).value();
  auto full = b.submit(spec(), 0);
  REQUIRE_FALSE(full.ok());
  CHECK(full.status().message() == "too many approval requests pending (2)");
  b.deny_all("the agent stopped", 1);
  std::string reason;
  CHECK(b.state(a, &reason) == State::kDenied);
  CHECK(reason == "the agent stopped");
  CHECK(b.state(c, nullptr) == State::kDenied);
  CHECK(ev.kinds.back() == "denied:dbwarden");
  CHECK(b.submit(spec(), 2).ok());  // decided ones do not count against the bound
}

TEST_CASE("broker: a grant names its request, and approvals of a shape are counted for reviewers",
          "[approvals]") {
  Events events;
  Broker b(&events);
  const RequestSpec s = spec();
  const uint64_t id = b.submit(s, 0).value();
  CHECK(b.show(id)->spec.approved_before == 0);
  REQUIRE(b.approve(id, person("alice", 2000), "", 10 * kSecond, kSecond).ok());
  CHECK(b.grant_of(s.fingerprint, s.identity, 2 * kSecond) == id);
  CHECK(b.grant_of(s.fingerprint, "other@shop uid=7", 2 * kSecond) == 0);
  CHECK(b.grant_of(s.fingerprint, s.identity, 20 * kSecond) == 0);
  // The next request of the same shape and identity says it was approved once before; one
  // from another identity does not.
  const uint64_t id2 = b.submit(s, 30 * kSecond).value();
  CHECK(b.show(id2)->spec.approved_before == 1);
  RequestSpec other = spec();
  other.identity = "other@shop uid=7";
  CHECK(b.show(b.submit(other, 30 * kSecond).value())->spec.approved_before == 0);
  // The proxy's own steps go to the same sink.
  Event e;
  e.kind = "executed";
  e.id = id;
  b.record(e);
  CHECK(events.kinds.back() == "executed");
}

TEST_CASE("broker: a new request's text goes through the sink's scrub first", "[approvals]") {
  struct Scrubbing : Events {
    void scrub_text(std::string& text) const override {
      const size_t at = text.find("4111111111111111");
      if (at != std::string::npos) text.replace(at, 16, "[masked:payment_card]");
    }
  } events;
  Broker b(&events);
  RequestSpec s = spec();
  s.text = "DELETE FROM cards WHERE number = '4111111111111111'";
  const uint64_t id = b.submit(s, 0).value();
  CHECK(b.show(id)->spec.text == "DELETE FROM cards WHERE number = '[masked:payment_card]'");
}

TEST_CASE("broker: a request is seen only once its journal has it, and its submit never waits",
          "[approvals]") {
  // A journal whose writes complete when the test says so (the real one's thread: journal.h).
  struct Slow : dbwarden::approvals::PendingJournal {
    void add(const dbwarden::approvals::RequestView& r, Done done) override {
      waiting.emplace_back(r.id, std::move(done));
    }
    void remove(uint64_t id) override { removed.push_back(id); }
    uint64_t next_id() const override { return 1; }
    void flush() override { write(dbwarden::Status::Ok()); }
    // The oldest add is on disk (or not).
    void write(const dbwarden::Status& s) {
      while (!waiting.empty()) {
        auto [id, done] = std::move(waiting.front());
        waiting.erase(waiting.begin());
        done(s);
      }
    }
    std::vector<std::pair<uint64_t, Done>> waiting;
    std::vector<uint64_t> removed;
  } slow;
  Events events;
  dbwarden::approvals::BrokerOptions o;
  o.journal = &slow;
  Broker b(&events, o);
  const Approver alice = person("alice", 2000);
  // Submitted: pending for the proxy, unseen by anyone else, nothing recorded yet.
  const uint64_t id = b.submit(spec(), 0).value();
  CHECK(b.state(id, nullptr) == State::kPending);
  CHECK(b.list().empty());
  CHECK_FALSE(b.show(id));
  dbwarden::approvals::Refusal why{};
  CHECK_FALSE(b.approve(id, alice, "", 0, 0, &why).ok());
  CHECK(why == dbwarden::approvals::Refusal::kUnknownRequest);
  CHECK_FALSE(b.deny(id, alice, "no", 0).ok());
  CHECK(b.expire(3600 * kSecond) == UINT64_MAX);  // its clock is not the proxy's to end yet
  CHECK(events.kinds.empty());
  CHECK(b.pending() == 1);
  // On disk: requested, seen, decided as any other.
  slow.write(dbwarden::Status::Ok());
  CHECK(events.kinds == std::vector<std::string>{"requested"});
  REQUIRE(b.list().size() == 1);
  REQUIRE(b.approve(id, alice, "", 0, 0).ok());
  CHECK(woken(b));
  b.forget(id);

  // Withdrawn while written: the proxy hears at once; the trail gets it after its request.
  events.kinds.clear();
  const uint64_t gone = b.submit(spec(), 0).value();
  b.withdraw(gone, 0, "the client went away");
  CHECK(woken(b));
  CHECK(b.state(gone, nullptr) == State::kWithdrawn);
  CHECK(events.kinds.empty());
  slow.write(dbwarden::Status::Ok());
  CHECK(events.kinds == std::vector<std::string>{"requested", "withdrawn"});
  CHECK(slow.removed.back() == gone);  // its "done" follows its add
  CHECK_FALSE(b.state(gone, nullptr));

  // The journal cannot take it: denied, recorded, the proxy woken; no request was made.
  events.kinds.clear();
  const uint64_t refused = b.submit(spec(), 0).value();
  slow.write(dbwarden::Status::Error("approvals journal: No space left on device"));
  std::string reason;
  CHECK(b.state(refused, &reason) == State::kDenied);
  CHECK(reason == "approvals journal: No space left on device");
  CHECK(events.kinds == std::vector<std::string>{"denied:dbwarden"});
  CHECK(events.channels.back() == "system");
  CHECK(woken(b));
  CHECK(slow.removed.back() != refused);
  b.forget(refused);

  // The agent stops while one is written: denied for the proxy now, recorded after it.
  events.kinds.clear();
  const uint64_t stopping = b.submit(spec(), 0).value();
  b.deny_all("the agent stopped", 0);
  CHECK(b.state(stopping, nullptr) == State::kDenied);
  CHECK(events.kinds.empty());
  // The broker's end waits for the journal's answers (flush), so none comes after it.
  const uint64_t last = b.submit(spec(), 0).value();
  CHECK(slow.waiting.size() == 2);
  slow.write(dbwarden::Status::Ok());
  CHECK(events.kinds == std::vector<std::string>{"requested", "denied:dbwarden", "requested"});
  CHECK(b.list().size() == 1);
  CHECK(b.list()[0].id == last);
}
