// SPDX-License-Identifier: Apache-2.0
//
// The approvals socket's requests (agent/approvals_server.h) against a real broker, the
// socket itself with SO_PEERCRED, and the approval records (agent/approval_events.h).
#include "agent/approvals_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "agent/approval_events.h"
#include "agent/approval_history.h"
#include "agent/approval_refusals.h"
#include "approvals/broker.h"

using dbwarden::agent::ApprovalEvents;
using dbwarden::agent::ApproverOfPeer;
using dbwarden::agent::HandleApprovalsRequest;
using dbwarden::approvals::Approver;
using dbwarden::approvals::Broker;
using dbwarden::approvals::RequestSpec;

namespace {

RequestSpec spec() {
  RequestSpec s;
  s.rule = "big-deletes";
  s.text = "DELETE FROM t WHERE id = 1";
  s.operation = "DELETE";
  s.approvers = {"alice"};
  s.who.db_user = "app";
  s.who.database = "shop";
  s.who.uid = 1000;
  s.timeout_ns = 60'000'000'000ull;
  return s;
}

Approver alice() {
  Approver a;
  a.name = "alice";
  a.uid = 2000;
  a.channel = "cli";
  return a;
}

}  // namespace

TEST_CASE("approvals socket: list, show, approve, deny", "[approvals][agent]") {
  Broker b(nullptr);
  const uint64_t id = b.submit(spec(), 0).value();
  const std::string list = HandleApprovalsRequest(b, alice(), "list\t\t\t\n", 5'000'000'000ull);
  CHECK(list == "ok\n1\t5s\tbig-deletes\tapp@shop\t0/1\t-\tDELETE FROM t WHERE id = 1\n");
  const std::string show = HandleApprovalsRequest(b, alice(), "show\t1\t\t", 5'000'000'000ull);
  CHECK(show.rfind("ok\nrequest:    1\nstate:      pending\n", 0) == 0);
  CHECK(show.find("statement:  DELETE FROM t WHERE id = 1\n") != std::string::npos);
  CHECK(HandleApprovalsRequest(b, alice(), "show\tx", 0) == "error: give a request id\n");
  CHECK(HandleApprovalsRequest(b, alice(), "show\t9", 0) == "error: no request 9\n");
  CHECK(HandleApprovalsRequest(b, alice(), "launch\t1", 0) == "error: unknown request `launch`\n");
  Approver mallory = alice();
  mallory.name = "mallory";
  CHECK(HandleApprovalsRequest(b, mallory, "approve\t1\t\t", 0) ==
        "error: user 'mallory' is not an approver of rule 'big-deletes' (not in its approver "
        "groups)\n");
  CHECK(HandleApprovalsRequest(b, alice(), "approve\t1\t1800\tticket 9", 0) ==
        "ok\nrequest 1 approved (and granted for 1800s)\n");
  CHECK(b.show(id)->reason == "ticket 9");
  const uint64_t id2 = b.submit(spec(), 0).value();
  CHECK(HandleApprovalsRequest(b, alice(), "deny\t" + std::to_string(id2) + "\t\tno", 0) ==
        "ok\nrequest 2 denied\n");
}

TEST_CASE("approvals socket: the caller is who the kernel says", "[approvals][agent]") {
  int fds[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  auto who = ApproverOfPeer(fds[0]);
  close(fds[0]);
  close(fds[1]);
  REQUIRE(who.ok());
  CHECK(who.value().uid == static_cast<int64_t>(getuid()));
  CHECK_FALSE(who.value().name.empty());
  CHECK(who.value().channel == "cli");
}

TEST_CASE("approval records: one JSON object per step, chained as records", "[approvals][agent]") {
  const RequestSpec s = spec();
  dbwarden::approvals::Event e;
  e.kind = "approved";
  e.id = 7;
  e.rule = "big-deletes";
  e.by = "alice";
  e.reason = "ticket \"9\"";
  e.channel = "cli";
  e.grant_ns = 1800'000'000'000ull;
  e.request = &s;
  CHECK(ApprovalEvents::format(e, 0) ==
        "{\"time\":\"1970-01-01T00:00:00.000000000Z\",\"dbwarden.record_type\":\"approval\","
        "\"dbwarden.approval.event\":\"approved\",\"dbwarden.approval.request_id\":7,"
        "\"dbwarden.policy.rule\":\"big-deletes\",\"dbwarden.approval.by\":\"alice\","
        "\"dbwarden.approval.reason\":\"ticket \\\"9\\\"\",\"dbwarden.approval.channel\":\"cli\","
        "\"dbwarden.approval.grant_seconds\":1800,\"db.user\":\"app\",\"db.namespace\":\"shop\"}");
  e.kind = "requested";
  const std::string req = ApprovalEvents::format(e, 0);
  CHECK(req.find("\"db.query.text\":\"DELETE FROM t WHERE id = 1\"") != std::string::npos);
  CHECK(req.find("\"dbwarden.approval.needed\":1") != std::string::npos);
  ApprovalEvents queue(1);
  queue.on_approval_event(e);
  queue.on_approval_event(e);
  CHECK(queue.dropped() == 1);  // bounded, and counted
}

TEST_CASE(
    "approvals socket: show names the whole identity chain, the tables, why, and the "
    "history",
    "[approvals][agent]") {
  Broker b(nullptr);
  RequestSpec s = spec();
  s.fingerprint = 0x3f2a9c0d11e7b845;
  s.identity = "app@shop uid=1000";
  s.tables = {"t", "shop.u"};
  s.why = "MATCH: operation DELETE is DELETE";
  s.ran_before = 1;
  s.who.client_address = "127.0.0.1";
  s.who.client_port = 40000;
  s.who.pid = 4242;
  s.who.executable = "/usr/bin/psql";
  s.who.user_name = "carol";
  s.who.login_uid = 1001;
  s.who.login_user = "dave";
  s.who.unit = "deploy.service";
  const uint64_t id = b.submit(s, 0).value();
  // Approved once: the next request of the same shape and identity says so.
  REQUIRE(b.approve(id, alice(), "", 0, 0).ok());
  b.submit(s, 0);
  const std::string show = HandleApprovalsRequest(b, alice(), "show\t2\t\t", 0);
  CHECK(show.find("fingerprint: 3f2a9c0d11e7b845\n") != std::string::npos);
  CHECK(show.find("tables:     t, shop.u\n") != std::string::npos);
  CHECK(show.find("why:        MATCH: operation DELETE is DELETE\n") != std::string::npos);
  CHECK(show.find("who:        db user app, database shop, client 127.0.0.1 port 40000, "
                  "process 4242 /usr/bin/psql uid 1000 (carol) login uid 1001 (dave), "
                  "unit deploy.service\n") != std::string::npos);
  CHECK(show.find("history:    this identity ran this statement shape before; approved 1 "
                  "time before\n") != std::string::npos);
}

TEST_CASE("approval records: a released statement's outcome, and the reviewer's context",
          "[approvals][agent]") {
  RequestSpec s = spec();
  s.tables = {"t"};
  s.why = "MATCH: x";
  s.ran_before = 0;
  s.who.pid = 7;
  s.who.executable = "/usr/bin/psql";
  s.who.unit = "a.service";
  dbwarden::approvals::Event e;
  e.kind = "requested";
  e.id = 3;
  e.rule = "big-deletes";
  e.request = &s;
  const std::string req = ApprovalEvents::format(e, 0);
  CHECK(req.find(R"("dbwarden.collections":["t"])") != std::string::npos);
  CHECK(req.find(R"("dbwarden.approval.why":"MATCH: x")") != std::string::npos);
  CHECK(req.find(R"("dbwarden.approval.ran_before":false)") != std::string::npos);
  CHECK(req.find(R"("dbwarden.client.systemd_unit":"a.service")") != std::string::npos);
  e.kind = "executed";
  e.rows = 4;
  e.status_code = "00000";
  const std::string done = ApprovalEvents::format(e, 0);
  CHECK(done.find(R"("dbwarden.approval.event":"executed")") != std::string::npos);
  CHECK(done.find(R"("db.response.returned_rows":4)") != std::string::npos);
  CHECK(done.find(R"("db.response.status_code":"00000")") != std::string::npos);
  CHECK(done.find("db.query.text") == std::string::npos);  // the statement's record has it
}

TEST_CASE("approvals: the blast radius in show, list and the requested record",
          "[approvals][agent][blast]") {
  // A secret the content scrub must take out of a server's error text (content_scrub.h).
  struct Scrub final : dbwarden::approvals::EventSink {
    void on_approval_event(const dbwarden::approvals::Event& e) override {
      if (e.kind == "requested") records.push_back(ApprovalEvents::format(e, 0));
    }
    void scrub_text(std::string& text) const override {
      for (size_t at; (at = text.find("4111111111111111")) != std::string::npos;) {
        text.replace(at, 16, "****");
      }
    }
    std::vector<std::string> records;
  } events;
  Broker b(&events);
  RequestSpec s = spec();
  s.blast_rows = 1200;
  s.blast_via = "explain on the client's session";
  b.submit(s, 0);
  RequestSpec t = spec();
  t.blast_unavailable = "EXPLAIN failed: 22P02 invalid input syntax: \"4111111111111111\"";
  b.submit(t, 0);
  const std::string list = HandleApprovalsRequest(b, alice(), "list", 0);
  CHECK(list.find("\t0/1\t1200 rows\tDELETE") != std::string::npos);
  CHECK(list.find("\t0/1\tunknown\tDELETE") != std::string::npos);
  CHECK(HandleApprovalsRequest(b, alice(), "show\t1", 0)
            .find("blast radius: about 1200 rows (explain on the client's session)\n") !=
        std::string::npos);
  const std::string show2 = HandleApprovalsRequest(b, alice(), "show\t2", 0);
  CHECK(show2.find("blast radius: estimate unavailable: EXPLAIN failed: 22P02 invalid input "
                   "syntax: \"****\"\n") != std::string::npos);
  REQUIRE(events.records.size() == 2);
  CHECK(events.records[0].find(R"("dbwarden.approval.blast_radius.rows":1200,)"
                               R"("dbwarden.approval.blast_radius.via":"explain on the )"
                               R"(client's session")") != std::string::npos);
  CHECK(events.records[1].find("4111111111111111") == std::string::npos);
  CHECK(events.records[1].find(R"("dbwarden.approval.blast_radius.unavailable":"EXPLAIN failed)") !=
        std::string::npos);
  // Not a data-changing statement: no line at all.
  b.submit(spec(), 0);
  CHECK(HandleApprovalsRequest(b, alice(), "show\t3", 0).find("blast radius") == std::string::npos);
}

TEST_CASE("approvals socket: every refused decision is recorded and counted, as the API's are",
          "[approvals][agent]") {
  struct Refused : dbwarden::approvals::EventSink {
    void on_approval_event(const dbwarden::approvals::Event& e) override {
      if (e.kind == "refused") {
        lines.push_back(e.channel + "|" + e.by + "|" + std::to_string(e.id) + "|" + e.rule + "|" +
                        e.reason);
      }
    }
    std::vector<std::string> lines;
  } refused;
  dbwarden::agent::ApprovalHistory history(&refused);
  Broker b(&history);
  dbwarden::agent::ApprovalRefusals refusals(b, history, &history);
  const uint64_t id = b.submit(spec(), 0).value();
  Approver self = alice();
  self.uid = 1000;  // the requester's own uid
  CHECK(HandleApprovalsRequest(b, self, "approve\t" + std::to_string(id) + "\t\t", 1, &refusals)
            .find("nobody decides their own request") != std::string::npos);
  Approver mallory = alice();
  mallory.name = "mallory";
  mallory.uid = 3000;
  mallory.login_uid = 3001;
  CHECK(HandleApprovalsRequest(b, mallory, "deny\t" + std::to_string(id) + "\t\tno", 2, &refusals)
            .find("is not an approver") != std::string::npos);
  CHECK(HandleApprovalsRequest(b, alice(), "approve\t99\t\t", 3, &refusals) ==
        "error: no request 99\n");
  CHECK(HandleApprovalsRequest(b, alice(), "launch\t1", 4, &refusals) ==
        "error: unknown request `launch`\n");
  // Decided, acted on and forgotten by the proxy: the history still tells what it was.
  REQUIRE(HandleApprovalsRequest(b, alice(), "deny\t" + std::to_string(id) + "\t\tnot now", 5,
                                 &refusals)
              .rfind("ok\n", 0) == 0);
  b.forget(id);
  CHECK(
      HandleApprovalsRequest(b, alice(), "approve\t" + std::to_string(id) + "\t\t", 6, &refusals) ==
      "error: request " + std::to_string(id) + " is already denied\n");
  // Reading is no refusal.
  CHECK(HandleApprovalsRequest(b, alice(), "show\t98", 7, &refusals) == "error: no request 98\n");
  REQUIRE(refused.lines.size() == 5);
  CHECK(refused.lines[0] ==
        "cli|alice|1|big-deletes|approve 1 by uid 1000: request 1 was made "
        "by you (uid or login uid 1000): nobody decides their own request");
  CHECK(refused.lines[1].rfind("cli|mallory|1|big-deletes|deny 1 by uid 3000 (login uid 3001): "
                               "user 'mallory' is not an approver",
                               0) == 0);
  CHECK(refused.lines[2] == "cli|alice|99||approve 99 by uid 2000: no request 99");
  CHECK(refused.lines[3] == "cli|alice|0||launch by uid 2000: unknown request `launch`");
  CHECK(refused.lines[4] == "cli|alice|1||approve 1 by uid 2000: request 1 is already denied");
  dbwarden::metrics::ApprovalCounters c;
  refusals.snapshot(c);
  using dbwarden::agent::RefusalReason;
  auto count = [&](RefusalReason r) { return c.refused[0][static_cast<size_t>(r)]; };
  CHECK(count(RefusalReason::kOwnRequest) == 1);
  CHECK(count(RefusalReason::kNotApprover) == 1);
  CHECK(count(RefusalReason::kUnknownRequest) == 1);
  CHECK(count(RefusalReason::kBadRequest) == 1);
  CHECK(count(RefusalReason::kAlreadyDecided) == 1);
  CHECK(c.refused[1][static_cast<size_t>(RefusalReason::kOwnRequest)] == 0);  // not the API's
}

TEST_CASE("approvals socket: a stuck caller does not hold up the others", "[approvals][agent]") {
  char tmpl[] = "/tmp/dbw-approvals-sock-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string path = std::string(tmpl) + "/approvals.sock";
  Broker b(nullptr);
  REQUIRE(b.submit(spec(), 0).ok());
  auto server = dbwarden::agent::ApprovalsServer::Start(path, "", b);
  REQUIRE(server.ok());
  auto dial = [&] {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&un), sizeof un) == 0);
    return fd;
  };
  // Callers that connect and send nothing (each holds a worker for its 2 s)...
  std::vector<int> stuck;
  for (size_t i = 0; i + 1 < dbwarden::agent::kApprovalsWorkers; ++i) stuck.push_back(dial());
  // ... while another's request is answered.
  const int fd = dial();
  const std::string line = "list\t\t\t\n";
  REQUIRE(write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
  std::string reply;
  char buf[512];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) reply.append(buf, static_cast<size_t>(n));
  close(fd);
  CHECK(reply.rfind("ok\n1\t", 0) == 0);
  // The stuck callers were still waiting when it was answered (one worker at a time would
  // have answered and closed each of them first).
  for (int s : stuck) {
    pollfd p{s, POLLIN, 0};
    CHECK(poll(&p, 1, 0) == 0);
    close(s);
  }
  server.value().reset();
  rmdir(tmpl);
}
