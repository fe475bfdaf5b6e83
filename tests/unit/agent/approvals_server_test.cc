// SPDX-License-Identifier: Apache-2.0
//
// The approvals socket's requests (agent/approvals_server.h) against a real broker, the
// socket itself with SO_PEERCRED, and the approval records (agent/approval_events.h).
#include "agent/approvals_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "agent/approval_events.h"
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
