// SPDX-License-Identifier: Apache-2.0
//
// The pending requests' journal (approvals/journal.h): what a crashed agent held is found
// and denied at the next start, ids go on across restarts, a torn or foreign line is
// skipped, and the file stays bounded.
#include "approvals/journal.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using dbwarden::approvals::Broker;
using dbwarden::approvals::BrokerOptions;
using dbwarden::approvals::Event;
using dbwarden::approvals::EventSink;
using dbwarden::approvals::Journal;
using dbwarden::approvals::ParseJournal;
using dbwarden::approvals::RequestSpec;
using dbwarden::approvals::RequestView;
using dbwarden::approvals::State;

constexpr uint64_t kSecond = 1'000'000'000ull;

// Each event as it came; `request` points into the broker only during the call, so the
// requester's name is kept beside it.
struct Events : EventSink {
  void on_approval_event(const Event& e) override {
    events.push_back(e);
    events.back().request = nullptr;
    who.push_back(e.request != nullptr ? e.request->who.db_user : "");
  }
  std::vector<Event> events;
  std::vector<std::string> who;
};

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/dbw-journal-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    unlink((path + "/pending.journal").c_str());
    unlink((path + "/pending.journal.new").c_str());
    rmdir(path.c_str());
  }
  std::string file() const { return path + "/pending.journal"; }
  std::string path;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

RequestSpec spec(const std::string& user = "app") {
  RequestSpec s;
  s.rule = "big-deletes";
  s.text = "DELETE FROM accounts WHERE id = 42";
  s.operation = "DELETE";
  s.fingerprint = 0xabc;
  s.approvers = {"alice"};
  s.timeout_ns = 60 * kSecond;
  s.who.db_user = user;
  s.who.database = "shop";
  s.who.client_address = "127.0.0.1";
  s.who.client_port = 40000;
  s.who.pid = 4242;
  s.who.uid = 1000;
  s.who.login_uid = 1001;
  s.who.executable = "/usr/bin/psql";
  return s;
}

}  // namespace

TEST_CASE("journal: a crashed broker's pending requests are denied at the next start",
          "[approvals]") {
  TempDir dir;
  uint64_t held = 0, decided = 0;
  {
    std::vector<RequestView> left;
    auto j = Journal::Open(dir.file(), &left);
    REQUIRE(j.ok());
    CHECK(left.empty());
    Events ev;
    BrokerOptions o;
    o.journal = j.value().get();
    Broker b(&ev, o);
    held = b.submit(spec(), 0).value();
    decided = b.submit(spec("other"), 0).value();
    j.value()->flush();  // written: now approvers see them
    dbwarden::approvals::Approver alice;
    alice.name = "alice";
    alice.uid = 2000;
    REQUIRE(b.deny(decided, alice, "no", kSecond).ok());
    // No deny_all(): the process "dies" here with `held` pending.
  }
  // The statement text never reaches the journal (the trail's requested record has it).
  CHECK(slurp(dir.file()).find("accounts") == std::string::npos);
  std::vector<RequestView> left;
  auto j = Journal::Open(dir.file(), &left);
  REQUIRE(j.ok());
  REQUIRE(left.size() == 1);
  CHECK(left[0].id == held);
  CHECK(left[0].spec.rule == "big-deletes");
  CHECK(left[0].spec.operation == "DELETE");
  CHECK(left[0].spec.fingerprint == 0xabc);
  CHECK(left[0].spec.who.db_user == "app");
  CHECK(left[0].spec.who.client_port == 40000);
  CHECK(left[0].spec.who.login_uid == 1001);
  CHECK(left[0].spec.who.executable == "/usr/bin/psql");
  {
    Events ev;
    BrokerOptions o;
    o.journal = j.value().get();
    Broker b(&ev, o);
    b.recover(left, "agent_restart");
    REQUIRE(ev.events.size() == 1);
    CHECK(ev.events[0].kind == "denied");
    CHECK(ev.events[0].id == held);
    CHECK(ev.events[0].reason == "agent_restart");
    CHECK(ev.events[0].channel == "system");
    CHECK(ev.events[0].by == "dbwarden");
    CHECK(ev.events[0].state == State::kDenied);
    CHECK(ev.who[0] == "app");
    CHECK(b.pending() == 0);
    // Ids go on past the dead agent's: a trail never names two requests by one id.
    CHECK(b.submit(spec(), 0).value() == decided + 1);
  }  // the broker's end waits for the journal's answer to it
  // Recovered once: a third start finds only the new request.
  j.value().reset();
  std::vector<RequestView> again;
  auto j3 = Journal::Open(dir.file(), &again);
  REQUIRE(j3.ok());
  REQUIRE(again.size() == 1);
  CHECK(again[0].id == decided + 1);
  CHECK(j3.value()->next_id() == decided + 2);
}

TEST_CASE("journal: a clean stop leaves nothing to recover", "[approvals]") {
  TempDir dir;
  {
    auto j = Journal::Open(dir.file(), nullptr);
    REQUIRE(j.ok());
    Events ev;
    BrokerOptions o;
    o.journal = j.value().get();
    Broker b(&ev, o);
    for (int i = 0; i < 5; ++i) REQUIRE(b.submit(spec(), 0).ok());
    j.value()->flush();
    b.deny_all("the agent stopped", kSecond);
    CHECK(ev.events.back().channel == "system");
  }
  std::vector<RequestView> left;
  auto j = Journal::Open(dir.file(), &left);
  REQUIRE(j.ok());
  CHECK(left.empty());
  CHECK(j.value()->next_id() == 6);
}

TEST_CASE("journal: torn, foreign and unknown lines are skipped", "[approvals]") {
  const std::string add = dbwarden::approvals::JournalAddLine([] {
    RequestView r;
    r.id = 3;
    r.spec = spec();
    return r;
  }());
  auto c = ParseJournal("{\"op\":\"next\",\"id\":2}\n" + add +
                        "\nnot json\n{\"op\":\"add\"}\n{\"op\":\"drop\",\"id\":9}\n"
                        "{\"op\":\"add\",\"id\":0}\n{\"op\":\"done\",\"id\":3}\n" +
                        add + "\n{\"op\":\"add\",\"id\":12,\"rule\":\"torn");
  CHECK(c.pending.size() == 1);
  CHECK(c.pending.count(3) == 1);
  CHECK(c.bad_lines == 5);
  // The torn line's id does not count: nothing was done under it.
  CHECK(c.next_id == 10);
  // Wrong types in an entry leave its fields empty, never a throw.
  auto w =
      ParseJournal("{\"op\":\"add\",\"id\":4,\"rule\":7,\"who\":{\"uid\":\"x\",\"pid\":[]}}\n");
  REQUIRE(w.pending.count(4) == 1);
  CHECK(w.pending[4].spec.rule.empty());
  CHECK(w.pending[4].spec.who.uid == dbwarden::approvals::kUnknownId);
}

TEST_CASE("journal: long fields are cut, and the file is compacted as requests end",
          "[approvals]") {
  TempDir dir;
  auto j = Journal::Open(dir.file(), nullptr);
  REQUIRE(j.ok());
  Events ev;
  BrokerOptions o;
  o.journal = j.value().get();
  Broker b(&ev, o);
  RequestSpec big = spec(std::string(10000, 'u'));
  const uint64_t keep = b.submit(big, 0).value();
  for (int i = 0; i < 1000; ++i) b.withdraw(b.submit(spec(), 0).value(), 0);
  // Each withdrawn one's "done" is queued once its add is written (the first flush), and
  // written by the next.
  j.value()->flush();
  j.value()->flush();
  CHECK(j.value()->live() == 1);
  CHECK(b.list().size() == 1);
  // 1001 adds and 1000 dones were written; compaction keeps the file near its live size.
  const std::string text = slurp(dir.file());
  CHECK(text.size() < 64 * 1024);
  auto c = ParseJournal(text);
  REQUIRE(c.pending.size() == 1);
  CHECK(c.pending.begin()->first == keep);
  CHECK(c.pending.begin()->second.spec.who.db_user.size() == dbwarden::approvals::kMaxJournalField);
  CHECK(c.next_id == keep + 1001);
  struct stat st {};
  REQUIRE(stat(dir.file().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("journal: a request the journal cannot take is refused, not made", "[approvals]") {
  // The broker's side of the contract (a full disk is not made on demand here): a failed
  // add denies the request before anyone sees it.
  struct Full : dbwarden::approvals::PendingJournal {
    void add(const RequestView&, Done done) override {
      done(dbwarden::Status::Error("approvals journal: No space left on device"));
    }
    void remove(uint64_t) override { ++removed; }
    uint64_t next_id() const override { return 40; }
    void flush() override {}
    int removed = 0;
  } full;
  Events ev;
  BrokerOptions o;
  o.journal = &full;
  Broker b(&ev, o);
  auto id = b.submit(spec(), 0);
  REQUIRE(id.ok());
  CHECK(id.value() == 40);
  std::string reason;
  CHECK(b.state(id.value(), &reason) == State::kDenied);
  CHECK(reason == "approvals journal: No space left on device");
  REQUIRE(ev.events.size() == 1);
  CHECK(ev.events[0].kind == "denied");
  CHECK(ev.events[0].by == "dbwarden");
  CHECK(b.list().empty());
  CHECK(b.pending() == 0);
  CHECK(full.removed == 0);
}
