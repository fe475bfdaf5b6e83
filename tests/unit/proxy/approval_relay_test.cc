// SPDX-License-Identifier: Apache-2.0
//
// The relays' approval path with the real judge and the real broker: a held message sends
// nothing until approved; denied or expired it is answered like a blocked one, naming the
// request; later messages wait behind it; a JIT grant lets it through; a closed connection
// withdraws; without a broker it is blocked (fail closed).
#include <unistd.h>

#include <catch2/catch.hpp>

#include "../mysql/my_wire.h"
#include "../pgsql/pg_wire.h"
#include "approvals/broker.h"
#include "proxy/explain_worker.h"
#include "proxy/mysql_relay.h"
#include "proxy/pg_relay.h"
#include "relay_fixture.h"

using dbwarden::approvals::Approver;
using dbwarden::approvals::Broker;
using dbwarden::approvals::State;
using dbwarden::proxy::ByteBuffer;
using dbwarden::proxy::RelayLimits;
using proxytest::Append;
using proxytest::Output;
using proxytest::Span;

namespace {

constexpr std::string_view kPolicy = R"(
approver_groups: {dba: [alice, bob]}
rules:
  - name: no-drop
    match: {operation: [DROP TABLE]}
    action: block
  - name: hold-deletes
    match: {operation: DELETE}
    action: require_approval
    approvers: [dba]
    timeout: 1m
)";

// Held SELECTs of a masked table; an on_derived: block rule over another.
constexpr std::string_view kMaskPolicy = R"(
approver_groups: {dba: [alice, bob]}
rules:
  - name: hold-people
    match: {collections: [people, cards]}
    action: require_approval
    approvers: [dba]
  - name: ssn
    action: mask
    columns: ["*.people.ssn"]
    style: full
  - name: cards
    action: mask
    columns: ["*.cards.*"]
    on_derived: block
)";

constexpr uint64_t kSecond = 1'000'000'000ull;

// The approval records, as the agent's trail gets them.
struct Events final : dbwarden::approvals::EventSink {
  void on_approval_event(const dbwarden::approvals::Event& e) override { got.push_back(e); }
  std::vector<dbwarden::approvals::Event> got;
};

Approver alice() {
  Approver a;
  a.name = "alice";
  a.uid = 2000;
  a.channel = "cli";
  return a;
}

template <class Relay, class Limits, class Counters>
struct Fixture {
  explicit Fixture(bool with_broker = true, std::string_view yaml = kPolicy)
      : judged(yaml), relay(info, judged.judge, records, Limits{}, RelayLimits{}, counters) {
    info.client_address = "10.0.0.7";
    if (with_broker) relay.set_approvals(&broker);
  }
  std::string client(std::string_view bytes) {
    Append(in, bytes);
    relay.on_client(in, out, now += kSecond);
    return out.take_server();
  }
  std::string server(std::string_view bytes) {
    relay.on_server(Span(bytes), out, now += kSecond);
    relay.on_client(in, out, now);
    return out.take_client();
  }
  // The proxy's loop after the broker's wake-up: the relay acts, then reads on.
  std::string decided() {
    relay.on_approval_decided(out, now += kSecond);
    relay.on_client(in, out, now);
    return out.take_server();
  }
  uint64_t pending_id() {
    auto l = broker.list();
    REQUIRE(l.size() == 1);
    return l[0].id;
  }

  dbwarden::ConnectionInfo info;
  Counters counters;
  dbw_test::RecordingSink sink;
  dbwarden::proxy::DecisionWriter records{sink};
  proxytest::Judged judged;
  Events events;
  Broker broker{&events};
  Relay relay;
  ByteBuffer in;
  Output out;
  uint64_t now = 0;
};

using PgFixture =
    Fixture<dbwarden::proxy::PgRelay, dbwarden::pgsql::Limits, dbwarden::pgsql::Counters>;
using MyFixture =
    Fixture<dbwarden::proxy::MysqlRelay, dbwarden::mysql::Limits, dbwarden::mysql::Counters>;

void pg_login(PgFixture& f) {
  REQUIRE(f.client(pgtest::Startup("app", "shop")) == pgtest::Startup("app", "shop"));
  REQUIRE(f.server(pgtest::Handshake()) == pgtest::Handshake());
}

void my_login(MyFixture& f) {
  constexpr uint32_t caps = mytest::kBaseCaps | mytest::kDeprecateEof;
  f.server(mytest::Greeting());
  REQUIRE(f.client(mytest::HandshakeResponse(caps, "app", "shop", "12345678901234567890")) ==
          mytest::HandshakeResponse(caps, "app", "shop", "12345678901234567890"));
  REQUIRE(f.server(mytest::Ok(2)) == mytest::Ok(2));
}

}  // namespace

TEST_CASE("approvals, pg: held until approved, then sent, and later messages wait behind it",
          "[proxy][approvals]") {
  using namespace pgtest;
  PgFixture f;
  pg_login(f);
  const std::string del = Query("DELETE FROM t WHERE id = 1");
  CHECK(f.client(del + Query("SELECT 2")).empty());
  CHECK(f.out.take_client().empty());  // the client waits
  CHECK(f.relay.awaiting_approval());
  CHECK_FALSE(f.relay.wants_client_bytes());
  const uint64_t id = f.pending_id();
  CHECK(f.broker.show(id)->spec.text == "DELETE FROM t WHERE id = 1");
  CHECK(f.broker.show(id)->spec.rule == "hold-deletes");
  CHECK(f.broker.show(id)->spec.approvers == std::vector<std::string>{"alice", "bob"});
  CHECK(f.broker.show(id)->spec.who.client_address == "10.0.0.7");
  CHECK(f.decided().empty());  // still pending: nothing moves
  REQUIRE(f.broker.approve(id, alice(), "ok", 0, f.now).ok());
  CHECK(f.decided() == del + Query("SELECT 2"));  // and the message that waited behind it
  CHECK_FALSE(f.relay.awaiting_approval());
  f.server(Complete("DELETE 1") + Ready());
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].text == "DELETE FROM t WHERE id = 1");
  CHECK(f.sink.got[0].policy_rule == "hold-deletes");
  CHECK(f.sink.got[0].policy_action == "approved:" + std::to_string(id));
  CHECK_FALSE(f.broker.state(id, nullptr).has_value());  // forgotten once acted on
}

TEST_CASE(
    "approvals, pg: denied or expired, the client gets an error naming the request, "
    "and the session goes on",
    "[proxy][approvals]") {
  using namespace pgtest;
  PgFixture f;
  pg_login(f);
  CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  const uint64_t id = f.pending_id();
  REQUIRE(f.broker.deny(id, alice(), "not now", f.now).ok());
  CHECK(f.decided().empty());  // never sent
  const std::string told = f.out.take_client();
  CHECK(told.find("C42501") != std::string::npos);
  CHECK(told.find("Mdbwarden: approval request " + std::to_string(id) + " denied: not now") !=
        std::string::npos);
  CHECK(told.substr(told.size() - 6) == Ready('I'));
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].status_code == "42501");
  CHECK(f.sink.got[0].policy_action == "denied:" + std::to_string(id));
  // The session goes on; the next one times out.
  CHECK(f.client(Query("SELECT 1")) == Query("SELECT 1"));
  f.server(Complete("SELECT 1") + Ready());
  CHECK(f.client(Query("DELETE FROM t WHERE id = 2")).empty());
  const uint64_t id2 = f.pending_id();
  f.broker.expire(f.now + 120 * kSecond);
  f.decided();
  CHECK(f.out.take_client().find("approval request " + std::to_string(id2) + " expired") !=
        std::string::npos);
  CHECK(f.sink.got.back().policy_action == "expired:" + std::to_string(id2));
}

TEST_CASE("approvals, pg: a held Parse, a JIT grant, and a block beats an approval",
          "[proxy][approvals]") {
  using namespace pgtest;
  PgFixture f;
  pg_login(f);
  // Extended protocol: the Parse is held, the rest of the group waits behind it.
  const std::string parse = Parse("", "DELETE FROM t WHERE id = $1");
  const std::string rest = Bind("", "", "1") + Execute("") + Sync();
  CHECK(f.client(parse + rest).empty());
  const uint64_t id = f.pending_id();
  REQUIRE(f.broker.approve(id, alice(), "", 60 * kSecond, f.now).ok());
  CHECK(f.decided() == parse + rest);
  f.server(ParseComplete() + BindComplete() + Complete("DELETE 1") + Ready());
  // Granted: the same fingerprint from the same identity passes at once.
  CHECK(f.client(Query("DELETE FROM t WHERE id = 9")) == Query("DELETE FROM t WHERE id = 9"));
  CHECK(f.broker.list().empty());
  f.server(Complete("DELETE 1") + Ready());
  CHECK(f.sink.got.back().policy_action == "granted");
  // A plain block in the same message wins: no request at all.
  CHECK(f.client(Query("DELETE FROM t WHERE id = 3; DROP TABLE t")).empty());
  CHECK(f.broker.list().empty());
  CHECK(f.out.take_client().find("C42501") != std::string::npos);
}

TEST_CASE("approvals, pg: a closed connection withdraws, and no broker blocks",
          "[proxy][approvals]") {
  using namespace pgtest;
  {
    PgFixture f;
    pg_login(f);
    CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
    const uint64_t id = f.pending_id();
    f.relay.on_close(f.now);
    CHECK_FALSE(f.broker.state(id, nullptr).has_value());
    CHECK(f.broker.pending() == 0);
  }
  PgFixture f(/*with_broker=*/false);
  pg_login(f);
  CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  const std::string told = f.out.take_client();
  CHECK(told.find("approvals are not enabled") != std::string::npos);
  CHECK(f.sink.got.back().policy_action == "require_approval");
}

TEST_CASE("approvals, mysql: held, approved and sent, denied answered with an ERR, withdrawn",
          "[proxy][approvals]") {
  using namespace mytest;
  MyFixture f;
  my_login(f);
  CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  const uint64_t id = f.pending_id();
  REQUIRE(f.broker.approve(id, alice(), "", 0, f.now).ok());
  CHECK(f.decided() == Query("DELETE FROM t WHERE id = 1"));
  f.server(Ok(1, 1));
  CHECK(f.sink.got.back().policy_action == "approved:" + std::to_string(id));

  CHECK(f.client(Query("DELETE FROM t WHERE id = 2")).empty());
  const uint64_t id2 = f.pending_id();
  REQUIRE(f.broker.deny(id2, alice(), "no", f.now).ok());
  CHECK(f.decided().empty());
  CHECK(f.out.take_client() ==
        Err(1, 1142, "42000", "dbwarden: approval request " + std::to_string(id2) + " denied: no"));
  CHECK(f.sink.got.back().policy_action == "denied:" + std::to_string(id2));
  CHECK(f.client(Query("SELECT 1")) == Query("SELECT 1"));
  f.server(ResultSet(1, {"1"}, false));
  // A client that goes away withdraws its request.
  CHECK(f.client(Query("DELETE FROM t WHERE id = 3")).empty());
  const uint64_t id3 = f.pending_id();
  f.relay.on_close(f.now);
  CHECK_FALSE(f.broker.state(id3, nullptr).has_value());
  CHECK(f.broker.pending() == 0);
}

TEST_CASE("approvals, pg: an approved statement's results are masked as an unheld one's",
          "[proxy][approvals][masking]") {
  using namespace pgtest;
  PgFixture f(/*with_broker=*/true, kMaskPolicy);
  pg_login(f);
  // A statement before it is answered while it waits: that answer's ReadyForQuery must not
  // leave the released statement unarmed.
  const std::string held = Query("SELECT ssn FROM people");
  CHECK(f.client(Query("SELECT name FROM towns") + held) == Query("SELECT name FROM towns"));
  const uint64_t id = f.pending_id();
  CHECK(f.server(RowDesc() + DataRow("1") + Complete("SELECT 1") + Ready()) ==
        RowDesc() + DataRow("1") + Complete("SELECT 1") + Ready());
  REQUIRE(f.broker.approve(id, alice(), "", 0, f.now).ok());
  CHECK(f.decided() == held);
  const std::string told =
      f.server(RowDesc() + DataRow("123456789") + Complete("SELECT 1") + Ready());
  CHECK(told.find("123456789") == std::string::npos);
  CHECK(told == RowDesc() + DataRow("0") + Complete("SELECT 1") + Ready());
  REQUIRE(f.sink.got.size() == 2);
  CHECK(f.sink.got[1].policy_action == "approved:" + std::to_string(id));
  CHECK(f.sink.got[1].masked_values == 1);
  // Its outcome is an approval record too.
  REQUIRE_FALSE(f.events.got.empty());
  const auto& e = f.events.got.back();
  CHECK(e.kind == "executed");
  CHECK(e.id == id);
  CHECK(e.rule == "hold-people");
  CHECK(e.rows == 1);
  CHECK(e.status_code == "00000");
  REQUIRE(e.request != nullptr);
  CHECK(e.request->who.db_user == "app");

  // Under a JIT grant, too; and each statement it lets through is recorded as its use.
  CHECK(f.client(held).empty());
  const uint64_t id2 = f.pending_id();
  REQUIRE(f.broker.approve(id2, alice(), "", 60 * kSecond, f.now).ok());
  CHECK(f.decided() == held);
  f.server(RowDesc() + DataRow("5") + Complete("SELECT 1") + Ready());
  CHECK(f.client(held) == held);
  CHECK(f.server(RowDesc() + DataRow("987654321") + Complete("SELECT 1") + Ready()) ==
        RowDesc() + DataRow("0") + Complete("SELECT 1") + Ready());
  CHECK(f.sink.got.back().policy_action == "granted");
  CHECK(f.events.got.back().kind == "grant_used");
  CHECK(f.events.got.back().id == id2);
  CHECK(f.events.got.back().rows == 1);
}

TEST_CASE("approvals, pg: a held statement its mask plan refuses is blocked without a request",
          "[proxy][approvals][masking]") {
  using namespace pgtest;
  PgFixture f(/*with_broker=*/true, kMaskPolicy);
  pg_login(f);
  CHECK(f.client(Query("SELECT number FROM cards")).empty());
  CHECK(f.broker.list().empty());
  const std::string told = f.out.take_client();
  CHECK(told.find("C42501") != std::string::npos);
  CHECK(told.find("approval request") == std::string::npos);
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].policy_rule == "cards");
  CHECK(f.sink.got[0].policy_action == "block");
}

TEST_CASE("approvals, mysql: prepared once, each execute is held, a JIT grant covers executes",
          "[proxy][approvals]") {
  using namespace mytest;
  MyFixture f;
  my_login(f);
  const std::string prepare = Command(0x16, "DELETE FROM t WHERE id = ?");
  CHECK(f.client(prepare) == prepare);  // preparing runs nothing
  CHECK(f.broker.list().empty());
  f.server(PrepareOk(1, 7, 0, 1, false));
  const std::string execute = Command(0x17, U32(7) + '\0' + U32(1) + '\0' + '\1' + U16(3) + U32(1));
  CHECK(f.client(execute).empty());
  const uint64_t id = f.pending_id();
  REQUIRE(f.broker.approve(id, alice(), "", 10 * kSecond, f.now).ok());
  CHECK(f.decided() == execute);
  f.server(Ok(1, 1));
  CHECK(f.sink.got.back().policy_action == "approved:" + std::to_string(id));
  CHECK(f.events.got.back().kind == "executed");
  CHECK(f.events.got.back().rows == 1);
  // Within the grant's window the next execute goes at once.
  CHECK(f.client(execute) == execute);
  f.server(Ok(1, 1));
  CHECK(f.sink.got.back().policy_action == "granted");
  CHECK(f.events.got.back().kind == "grant_used");
  // Once it lapsed, the next execute is held again.
  f.now += 20 * kSecond;
  CHECK(f.client(execute).empty());
  const uint64_t id2 = f.pending_id();
  CHECK(id2 != id);
  REQUIRE(f.broker.deny(id2, alice(), "no", f.now).ok());
  CHECK(f.decided().empty());
  CHECK(f.out.take_client() ==
        Err(1, 1142, "42000", "dbwarden: approval request " + std::to_string(id2) + " denied: no"));
}

TEST_CASE("approvals, pg: a named prepared statement is asked for at each Bind",
          "[proxy][approvals]") {
  using namespace pgtest;
  PgFixture f;
  pg_login(f);
  // First use: the Parse is held with its group; approved, the group's Bind goes with it.
  const std::string parse = Parse("del", "DELETE FROM t WHERE id = $1");
  const std::string run = Bind("", "del", "1") + Execute("") + Sync();
  CHECK(f.client(parse + run).empty());
  const uint64_t id = f.pending_id();
  REQUIRE(f.broker.approve(id, alice(), "", 0, f.now).ok());
  CHECK(f.decided() == parse + run);
  CHECK(f.broker.list().empty());
  f.server(ParseComplete() + BindComplete() + Complete("DELETE 1") + Ready());
  CHECK(f.sink.got.back().policy_action == "approved:" + std::to_string(id));
  // A later execution of the same prepared statement is held again, by itself.
  CHECK(f.client(run).empty());
  const uint64_t id2 = f.pending_id();
  CHECK(id2 != id);
  REQUIRE(f.broker.deny(id2, alice(), "not again", f.now).ok());
  CHECK(f.decided().empty());  // never sent, and the session goes on
  const std::string told = f.out.take_client();
  CHECK(told.find("approval request " + std::to_string(id2) + " denied: not again") !=
        std::string::npos);
  CHECK(told.substr(told.size() - 6) == Ready('I'));
  CHECK_FALSE(f.out.closed);
  // Granted, later executions go at once until the window ends.
  CHECK(f.client(run).empty());
  const uint64_t id3 = f.pending_id();
  REQUIRE(f.broker.approve(id3, alice(), "", 30 * kSecond, f.now).ok());
  CHECK(f.decided() == run);
  f.server(BindComplete() + Complete("DELETE 1") + Ready());
  CHECK(f.client(run) == run);
  f.server(BindComplete() + Complete("DELETE 1") + Ready());
  CHECK(f.sink.got.back().policy_action == "granted");
  f.now += 60 * kSecond;
  CHECK(f.client(run).empty());
  CHECK(f.broker.list().size() == 1);
}

TEST_CASE("approvals, pg: the client's CancelRequest withdraws its held statement",
          "[proxy][approvals]") {
  using namespace pgtest;
  PgFixture f;
  pg_login(f);  // BackendKeyData: pid 42, key 7
  CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  const uint64_t id = f.pending_id();
  CHECK_FALSE(f.relay.cancel_approval(Span(I32(42) + I32(8))));  // another connection's key
  CHECK(f.broker.pending() == 1);
  CHECK(f.relay.cancel_approval(Span(I32(42) + I32(7))));
  CHECK(f.broker.pending() == 0);
  CHECK(f.decided().empty());  // never sent
  const std::string told = f.out.take_client();
  CHECK(told.find("C57014") != std::string::npos);
  CHECK(told.find("approval request " + std::to_string(id) +
                  " withdrawn: canceled by the client") != std::string::npos);
  CHECK(told.substr(told.size() - 6) == Ready('I'));
  CHECK(f.sink.got.back().policy_action == "withdrawn:" + std::to_string(id));
  CHECK(f.events.got.back().kind == "withdrawn");
  // The session goes on.
  CHECK(f.client(Query("SELECT 1")) == Query("SELECT 1"));

  // The cancel itself arrives on a connection of its own: the relay hands its key to the
  // proxy (which asks every held connection) and passes it on to the server as before.
  PgFixture g;
  CHECK(g.client(CancelRequest()) == CancelRequest());
  CHECK(g.out.cancel_key == I32(1234) + I32(0x5ec7e7));
}

namespace {

// PostgreSQL's answer to the blast radius's EXPLAIN (pg_explain.h): set_config's group with
// the plan, then the Closes' group.
std::string PgExplainAnswer(uint32_t rows) {
  using namespace pgtest;
  const std::string plan =
      R"json([{"Plan": {"Node Type": "ModifyTable", "Operation": "Delete", "Plan Rows": 0, )json"
      R"json("Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", )json"
      R"json("Plan Rows": )json" +
      std::to_string(rows) + R"json(, "Filter": "(id < 9)"}]}}])json";
  return ParseComplete() + BindComplete() + DataRow("2000") + Complete("SELECT 1") +
         ParseComplete() + BindComplete() + DataRow(plan) + Complete("EXPLAIN") + Ready() +
         CloseComplete() + CloseComplete() + Ready();
}

}  // namespace

TEST_CASE("approvals, pg: the blast radius, EXPLAINed on the client's idle session first",
          "[proxy][approvals][blast]") {
  using namespace pgtest;
  PgFixture f;
  f.relay.set_blast_radius(true);
  pg_login(f);
  const std::string del = Query("DELETE FROM t WHERE id < 9");
  const std::string sent = f.client(del + Query("SELECT 2"));
  // The EXPLAIN in the extended protocol (one statement per Parse), with its time limit,
  // and nothing of the client's.
  REQUIRE_FALSE(sent.empty());
  CHECK(sent[0] == 'P');
  CHECK(sent.find("set_config('statement_timeout', '2000', true)") != std::string::npos);
  CHECK(sent.find(CStr("EXPLAIN (FORMAT JSON) DELETE FROM t WHERE id < 9")) != std::string::npos);
  CHECK(sent.find("ANALYZE") == std::string::npos);
  CHECK(sent.find(del) == std::string::npos);
  CHECK(f.broker.list().empty());  // asked once the estimate is in
  CHECK(f.relay.awaiting_approval());
  CHECK_FALSE(f.relay.wants_client_bytes());
  // Its answer reaches neither the client nor the records; a ParameterStatus in it does.
  CHECK(f.server(ParamStatus("TimeZone", "UTC") + PgExplainAnswer(8)) ==
        ParamStatus("TimeZone", "UTC"));
  CHECK(f.sink.got.empty());
  const uint64_t id = f.pending_id();
  CHECK(f.broker.show(id)->spec.blast_rows == 8);
  CHECK(f.broker.show(id)->spec.blast_via == "explain on the client's session");
  CHECK(f.broker.show(id)->spec.blast_unavailable.empty());
  CHECK(f.relay.own_server_bytes() == sent.size());
  REQUIRE(f.broker.approve(id, alice(), "ok", 0, f.now).ok());
  CHECK(f.decided() == del + Query("SELECT 2"));
  f.server(Complete("DELETE 8") + Ready() + RowDesc() + DataRow("2") + Complete("SELECT 1") +
           Ready());
  REQUIRE(f.sink.got.size() == 2);  // the client's two statements, no EXPLAIN
  CHECK(f.sink.got[0].text == "DELETE FROM t WHERE id < 9");
  CHECK(f.sink.got[0].policy_action == "approved:" + std::to_string(id));

  // EXPLAIN refused: the request goes out with the server's reason.
  CHECK_FALSE(f.client(Query("DELETE FROM nope")).empty());
  f.server(ParseComplete() + BindComplete() + DataRow("2000") + Complete("SELECT 1") +
           Error("42P01", "relation \"nope\" does not exist") + Ready() + CloseComplete() +
           CloseComplete() + Ready());
  const uint64_t id2 = f.pending_id();
  CHECK(f.broker.show(id2)->spec.blast_unavailable ==
        "EXPLAIN failed: 42P01 relation \"nope\" does not exist");
  CHECK(f.broker.show(id2)->spec.blast_rows == -1);
  REQUIRE(f.broker.deny(id2, alice(), "no", f.now).ok());
  f.decided();
  CHECK(f.out.take_client().find("denied: no") != std::string::npos);

  // Inside a transaction: no EXPLAIN, the reason at once.
  CHECK(f.client(Query("BEGIN")) == Query("BEGIN"));
  f.server(Complete("BEGIN") + Ready('T'));
  CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  const uint64_t id3 = f.pending_id();
  CHECK(f.broker.show(id3)->spec.blast_unavailable ==
        "the session is inside a transaction, and the agent's role is not configured");
  // Not a data-changing statement: none at all.
  PgFixture g(true, kMaskPolicy);
  g.relay.set_blast_radius(true);
  pg_login(g);
  CHECK(g.client(Query("SELECT name FROM people")).empty());
  const auto view = g.broker.show(g.pending_id());
  REQUIRE(view);
  CHECK(view->spec.blast_rows == -1);
  CHECK(view->spec.blast_unavailable.empty());
}

TEST_CASE("approvals, pg: a held Parse is EXPLAINed with the values its Bind carries",
          "[proxy][approvals][blast]") {
  using namespace pgtest;
  PgFixture f;
  f.relay.set_blast_radius(true);
  pg_login(f);
  const std::string parse = ParseTyped("", "DELETE FROM t WHERE id < $1", {23});
  const std::string run = BindValues("", "", {{"9", 0}}) + Execute("") + Sync();
  const std::string sent = f.client(parse + run);
  // The EXPLAIN's Parse keeps the type, its Bind the client's format and value.
  CHECK(sent.find(CStr("EXPLAIN (FORMAT JSON) DELETE FROM t WHERE id < $1") + I16(1) + I32(23)) !=
        std::string::npos);
  CHECK(sent.find(CStr("dbwarden_blast") + I16(1) + I16(0) + I16(1) + I32(1) + "9" + I16(0)) !=
        std::string::npos);
  f.server(PgExplainAnswer(3));
  const uint64_t id = f.pending_id();
  CHECK(f.broker.show(id)->spec.blast_rows == 3);
  REQUIRE(f.broker.approve(id, alice(), "", 0, f.now).ok());
  CHECK(f.decided() == parse + run);
  // The Bind in a later read (a Describe before it): the Parse waits for it, no request yet.
  PgFixture g;
  g.relay.set_blast_radius(true);
  pg_login(g);
  CHECK(g.client(parse).empty());
  CHECK(g.broker.list().empty());
  CHECK(g.relay.wants_client_bytes());
  const std::string describe = Describe('S', "");
  CHECK(g.client(describe).empty());
  CHECK(g.broker.list().empty());
  const std::string bind = BindValues("", "", {{"9", 0}});
  CHECK(g.client(bind.substr(0, 7)).empty());  // half a Bind: still waiting
  CHECK(g.broker.list().empty());
  const std::string rest = bind.substr(7) + Execute("") + Sync();
  const std::string explained = g.client(rest);
  CHECK(explained.find(CStr("dbwarden_blast") + I16(1) + I16(0) + I16(1) + I32(1) + "9" + I16(0)) !=
        std::string::npos);
  g.server(PgExplainAnswer(3));
  const uint64_t gid = g.pending_id();
  CHECK(g.broker.show(gid)->spec.blast_rows == 3);
  REQUIRE(g.broker.approve(gid, alice(), "", 0, g.now).ok());
  CHECK(g.decided() == parse + describe + bind + Execute("") + Sync());
  g.server(ParseComplete() + Typed('t', I16(1) + I32(23)) + NoData() + BindComplete() +
           Complete("DELETE 3") + Ready());
  // No Bind of it before its Sync (a PQprepare): no guess.
  PgFixture h;
  h.relay.set_blast_radius(true);
  pg_login(h);
  CHECK(h.client(parse + Sync()).empty());
  CHECK(h.broker.show(h.pending_id())->spec.blast_unavailable ==
        "its parameter values did not come with it (no Bind of it before Sync or Flush)");
}

TEST_CASE("approvals, pg: a client's cancel while its EXPLAIN runs withdraws the request",
          "[proxy][approvals][blast]") {
  using namespace pgtest;
  PgFixture f;
  f.relay.set_blast_radius(true);
  pg_login(f);
  CHECK_FALSE(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  CHECK(f.relay.cancel_approval(Span(I32(42) + I32(7))));
  f.server(PgExplainAnswer(1));
  CHECK(f.broker.pending() == 0);
  CHECK(f.decided().empty());
  CHECK(f.out.take_client().find("withdrawn: canceled by the client") != std::string::npos);
}

namespace {

// MySQL's plan of a DELETE of 40 x 20% = 8 rows.
constexpr std::string_view kMyPlan = R"({"query_block": {"select_id": 1, "table": {"delete": 1, )"
                                     R"("table_name": "t", "rows": 40, "filtered": 20}}})";

}  // namespace

TEST_CASE("approvals, mysql: the blast radius, EXPLAINed on the client's idle session first",
          "[proxy][approvals][blast]") {
  using namespace mytest;
  MyFixture f;
  f.relay.set_blast_radius(true);
  my_login(f);
  const std::string del = Query("DELETE FROM t WHERE id < 9");
  const std::string sent = f.client(del);
  // mytest's greeting names MariaDB: its time limit by SET STATEMENT.
  const std::string limit = "SET STATEMENT max_statement_time=2, lock_wait_timeout=2 FOR ";
  CHECK(sent == Query(limit + "EXPLAIN FORMAT=JSON DELETE FROM t WHERE id < 9"));
  CHECK(f.broker.list().empty());
  CHECK(f.server(ResultSet(1, {std::string(kMyPlan)}, false)).empty());
  CHECK(f.sink.got.empty());
  const uint64_t id = f.pending_id();
  CHECK(f.broker.show(id)->spec.blast_rows == 8);
  CHECK(f.broker.show(id)->spec.blast_via == "explain on the client's session");
  REQUIRE(f.broker.approve(id, alice(), "", 0, f.now).ok());
  CHECK(f.decided() == del);
  f.server(Ok(1, 8));
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].text == "DELETE FROM t WHERE id < 9");
  // Refused by the server: its reason.
  CHECK(f.client(Query("DELETE FROM nope")) ==
        Query(limit + "EXPLAIN FORMAT=JSON DELETE FROM nope"));
  CHECK(f.server(Err(1, 1146, "42S02", "Table 'shop.nope' doesn't exist")).empty());
  const uint64_t id2 = f.pending_id();
  CHECK(f.broker.show(id2)->spec.blast_unavailable ==
        "EXPLAIN failed: 42S02 Table 'shop.nope' doesn't exist");
  REQUIRE(f.broker.deny(id2, alice(), "no", f.now).ok());
  f.decided();
  f.out.take_client();
  // A ';' in the text: never sent (the EXPLAIN must be one statement).
  CHECK(f.client(Query("DELETE FROM t WHERE name = 'a;b'")).empty());
  const uint64_t id3 = f.pending_id();
  CHECK(f.broker.show(id3)->spec.blast_unavailable ==
        "the statement holds a ';', and the EXPLAIN must be one statement");
  REQUIRE(f.broker.deny(id3, alice(), "no", f.now).ok());
  f.decided();
  f.out.take_client();
  // Inside a transaction: the reason at once.
  CHECK(f.client(Query("BEGIN")) == Query("BEGIN"));
  f.server(Ok(1, 0, 3));  // SERVER_STATUS_IN_TRANS | AUTOCOMMIT
  CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  CHECK(f.broker.show(f.pending_id())->spec.blast_unavailable ==
        "the session is inside a transaction, and the agent's role is not configured");
}

namespace {

// The binary-protocol answer to the EXPLAIN's execute: one VAR_STRING column, one row.
std::string MyBinaryPlan(std::string_view plan) {
  using namespace mytest;
  return Packet(1, Lenenc(1)) + ColumnDefOf(2, "", "", "", 253) +
         Packet(3, std::string(2, '\0') + LenStr(plan)) + Ok(4, 0, 2, '\xfe');
}

}  // namespace

TEST_CASE(
    "approvals, mysql: a held execute is EXPLAINed by a prepare of the proxy's own, "
    "with the client's parameters",
    "[proxy][approvals][blast]") {
  using namespace mytest;
  MyFixture f;
  f.relay.set_blast_radius(true);
  my_login(f);
  const std::string limit = "SET STATEMENT max_statement_time=2, lock_wait_timeout=2 FOR ";
  const std::string explain = limit + "EXPLAIN FORMAT=JSON DELETE FROM t WHERE id < ?";
  const std::string prepare = Command(0x16, "DELETE FROM t WHERE id < ?");
  CHECK(f.client(prepare) == prepare);
  f.server(PrepareOk(1, 7, 0, 1, false));
  // The first execute binds its types (LONGLONG, signed) and the value 9.
  const std::string value9 = U32(9) + U32(0);
  const std::string execute = Command(0x17, U32(7) + '\0' + U32(1) + '\0' + '\1' + U16(8) + value9);
  // The EXPLAIN is prepared with the statement's own marker: no value in its text.
  CHECK(f.client(execute) == Command(0x16, explain));
  CHECK(f.broker.list().empty());
  CHECK(f.relay.awaiting_approval());
  // Prepared (id 21): executed with the client's NULL bitmap, types and value, no cursor.
  CHECK(f.server(PrepareOk(1, 21, 1, 1, false)).empty());
  CHECK(f.out.take_server() ==
        Command(0x17, U32(21) + '\0' + U32(1) + '\0' + '\1' + U16(8) + value9));
  CHECK(f.broker.list().empty());
  // Its rows reach neither the client nor the records; its statement is closed at once.
  CHECK(f.server(MyBinaryPlan(kMyPlan)).empty());
  CHECK(f.out.take_server() == Command(0x19, U32(21)));
  CHECK(f.sink.got.empty());
  const uint64_t id = f.pending_id();
  CHECK(f.broker.show(id)->spec.blast_rows == 8);
  CHECK(f.broker.show(id)->spec.blast_via == "explain on the client's session");
  REQUIRE(f.broker.approve(id, alice(), "", 0, f.now).ok());
  CHECK(f.decided() == execute);
  f.server(Ok(1, 8));
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].policy_action == "approved:" + std::to_string(id));

  // A later execute leaves its types out (new-params-bound 0): those of the first are sent,
  // and the whole answer may come in pieces.
  const std::string value5 = U32(5) + U32(0);
  const std::string again = Command(0x17, U32(7) + '\0' + U32(1) + '\0' + '\0' + value5);
  CHECK(f.client(again) == Command(0x16, explain));
  const std::string prepared = PrepareOk(1, 22, 1, 1, false);
  CHECK(f.server(prepared.substr(0, 2)).empty());
  CHECK(f.out.take_server().empty());
  CHECK(f.server(prepared.substr(2, 11)).empty());
  CHECK(f.server(prepared.substr(13)).empty());
  CHECK(f.out.take_server() ==
        Command(0x17, U32(22) + '\0' + U32(1) + '\0' + '\1' + U16(8) + value5));
  // The execute refused: closed all the same, and the server's reason.
  CHECK(f.server(Err(1, 1146, "42S02", "Table 'shop.t' doesn't exist")).empty());
  CHECK(f.out.take_server() == Command(0x19, U32(22)));
  const uint64_t id2 = f.pending_id();
  CHECK(f.broker.show(id2)->spec.blast_unavailable ==
        "EXPLAIN failed: 42S02 Table 'shop.t' doesn't exist");
  REQUIRE(f.broker.deny(id2, alice(), "no", f.now).ok());
  CHECK(f.decided().empty());
  CHECK(f.out.take_client() ==
        Err(1, 1142, "42000", "dbwarden: approval request " + std::to_string(id2) + " denied: no"));

  // The prepare refused: nothing to close.
  CHECK(f.client(again) == Command(0x16, explain));
  CHECK(f.server(Err(1, 1295, "HY000",
                     "This command is not supported in the prepared "
                     "statement protocol yet"))
            .empty());
  CHECK(f.out.take_server().empty());
  const uint64_t id3 = f.pending_id();
  CHECK(f.broker.show(id3)->spec.blast_unavailable ==
        "EXPLAIN failed: HY000 This command is not supported in the prepared statement "
        "protocol yet");
  REQUIRE(f.broker.deny(id3, alice(), "no", f.now).ok());
  f.decided();
  f.out.take_client();

  // A parameter sent as long data lives in the client's statement only: no EXPLAIN.
  const std::string long_data = Command(0x18, U32(7) + U16(0) + "12");
  CHECK(f.client(long_data) == long_data);
  CHECK(f.client(again).empty());
  const uint64_t id4 = f.pending_id();
  CHECK(f.broker.show(id4)->spec.blast_unavailable ==
        "a parameter value was sent as long data (COM_STMT_SEND_LONG_DATA)");
  REQUIRE(f.broker.deny(id4, alice(), "no", f.now).ok());
  f.decided();
  f.out.take_client();

  // Types never seen (a first execute that leaves them out), and MariaDB's id -1: no guess.
  const std::string prepare8 = Command(0x16, "DELETE FROM t WHERE id > ?");
  CHECK(f.client(prepare8) == prepare8);
  f.server(PrepareOk(1, 8, 0, 1, false));
  CHECK(f.client(Command(0x17, U32(8) + '\0' + U32(1) + '\0' + '\0' + value5)).empty());
  const uint64_t id5 = f.pending_id();
  CHECK(f.broker.show(id5)->spec.blast_unavailable ==
        "its parameters' types were bound by an execute the proxy did not read");
  REQUIRE(f.broker.deny(id5, alice(), "no", f.now).ok());
  f.decided();
  f.out.take_client();
  CHECK(f.client(Command(0x17, U32(0xffffffffu) + '\0' + U32(1) + '\0' + '\1' + U16(8) + value5))
            .empty());
  CHECK(f.broker.show(f.pending_id())->spec.blast_unavailable ==
        "not estimated for a direct execute (statement id -1)");
}

TEST_CASE("approvals, mysql: a KILL the server allows withdraws the held statement of its thread",
          "[proxy][approvals]") {
  using namespace mytest;
  MyFixture held;
  my_login(held);  // the greeting's connection id: 42
  CHECK(held.client(Query("DELETE FROM t WHERE id = 1")).empty());
  const uint64_t id = held.pending_id();

  // The mariadb client's Ctrl-C: KILL QUERY on a connection of its own, sent on as it came.
  MyFixture killer;
  my_login(killer);
  CHECK(killer.client(Query("KILL QUERY 42")) == Query("KILL QUERY 42"));
  // The server refuses it (another user's thread, no privilege): nothing is withdrawn.
  const Bytes refused = Err(1, 1095, "HY000", "You are not owner of thread 42");
  CHECK(killer.server(refused) == refused);
  CHECK(killer.out.kills.empty());
  // Allowed, its OK in two pieces: acted on once the packet's first byte is in.
  CHECK(killer.client(Query("kill /* ctrl-c */ query 42;")) ==
        Query("kill /* ctrl-c */ query 42;"));
  const Bytes ok = Ok(1);
  CHECK(killer.server(ok.substr(0, 3)) == ok.substr(0, 3));
  CHECK(killer.out.kills.empty());
  CHECK(killer.server(ok.substr(3)) == ok.substr(3));
  REQUIRE(killer.out.kills.size() == 1);
  CHECK(killer.out.kills[0] == "0 42 query by 42");
  // Statements that name no thread are never watched.
  for (const char* other :
       {"KILL QUERY ID 42", "KILL USER app", "KILL 42; SELECT 1", "SELECT 'KILL QUERY 42'"}) {
    CHECK(killer.client(Query(other)) == Query(other));
    killer.server(Ok(1));
  }
  CHECK(killer.out.kills.size() == 1);

  // The proxy asks each held connection: only the one of that server's thread 42 acts.
  CHECK_FALSE(held.relay.kill_approval(0, 43, false, 7));
  CHECK_FALSE(held.relay.kill_approval(3307, 42, false, 7));
  CHECK(held.broker.pending() == 1);
  CHECK(held.relay.kill_approval(0, 42, false, 7));
  CHECK(held.broker.pending() == 0);
  CHECK(held.decided().empty());  // never sent
  CHECK(held.out.take_client() == Err(1, 1317, "70100",
                                      "dbwarden: approval request " + std::to_string(id) +
                                          " withdrawn: canceled by KILL QUERY from connection 7"));
  CHECK(held.events.got.back().kind == "withdrawn");
  CHECK(held.events.got.back().reason == "canceled by KILL QUERY from connection 7");
  CHECK(held.sink.got.back().policy_action == "withdrawn:" + std::to_string(id));
  CHECK_FALSE(held.out.closed);
  // The session goes on.
  CHECK(held.client(Query("SELECT 1")) == Query("SELECT 1"));
  held.server(ResultSet(1, {"1"}, false));

  // KILL CONNECTION: withdrawn too, answered ER_CONNECTION_KILLED, and the connection ends.
  CHECK(held.client(Query("DELETE FROM t WHERE id = 2")).empty());
  const uint64_t id2 = held.pending_id();
  CHECK(held.relay.kill_approval(0, 42, true, 7));
  CHECK(held.decided().empty());
  CHECK(held.out.take_client() ==
        Err(1, 1927, "70100",
            "dbwarden: approval request " + std::to_string(id2) +
                " withdrawn: canceled by KILL CONNECTION from connection 7"));
  CHECK(held.out.closed);
  // The server ends the session first (it closes a killed thread's socket before it answers
  // the KILL): withdrawn all the same, and said so.
  MyFixture gone;
  my_login(gone);
  CHECK(gone.client(Query("DELETE FROM t WHERE id = 3")).empty());
  const uint64_t id3 = gone.pending_id();
  gone.relay.on_upstream_closed();
  CHECK(gone.broker.pending() == 0);
  CHECK(gone.events.got.back().reason == "the server ended the connection");
  CHECK(gone.decided().empty());
  CHECK(gone.out.take_client() == Err(1, 1927, "70100",
                                      "dbwarden: approval request " + std::to_string(id3) +
                                          " withdrawn: the server ended the connection"));
  CHECK(gone.out.closed);
}

namespace {

// The proxy's loop after the worker's wake-up: its answers, each to the relay that asked.
std::vector<dbwarden::proxy::ExplainAnswer> WorkerAnswers(dbwarden::proxy::ExplainWorker& w,
                                                          size_t want) {
  std::vector<dbwarden::proxy::ExplainAnswer> got;
  for (int i = 0; i < 500 && got.size() < want; ++i) {
    for (auto& a : w.take_answers()) got.push_back(std::move(a));
    if (got.size() < want) usleep(10'000);
  }
  return got;
}

}  // namespace

TEST_CASE("approvals, pg: inside a transaction the agent's role EXPLAINs instead",
          "[proxy][approvals][blast]") {
  using namespace pgtest;
  // A role, and no socket for the client's server: the worker answers why at once.
  dbwarden::proxy::ExplainWorkerOptions o;
  o.pg_role = "dbwarden_explain";
  auto worker = dbwarden::proxy::ExplainWorker::Start(o);
  REQUIRE(worker.ok());
  PgFixture f;
  f.info.server_port = 5999;
  f.relay.set_blast_radius(true);
  f.relay.set_explain_worker(worker.value().get());
  pg_login(f);
  CHECK(f.client(Query("BEGIN")) == Query("BEGIN"));
  f.server(Complete("BEGIN") + Ready('T'));
  // Nothing goes to the client's session, and the request waits for the role's answer.
  CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  CHECK(f.broker.list().empty());
  CHECK(f.relay.awaiting_approval());
  auto answers = WorkerAnswers(*worker.value(), 1);
  REQUIRE(answers.size() == 1);
  CHECK_FALSE(answers[0].estimate.ok);
  // An answer for another request changes nothing; its own sends the request.
  CHECK_FALSE(f.relay.on_role_explained(answers[0].ticket + 1, answers[0].estimate, f.out, f.now));
  CHECK(f.broker.list().empty());
  CHECK(f.relay.on_role_explained(answers[0].ticket, answers[0].estimate, f.out, f.now));
  const uint64_t id = f.pending_id();
  CHECK(f.broker.show(id)->spec.blast_unavailable ==
        "EXPLAIN through the agent's role failed: no unix socket known for the server on port "
        "5999");
  REQUIRE(f.broker.deny(id, alice(), "no", f.now).ok());
  f.decided();
  CHECK(f.out.take_client().find("denied: no") != std::string::npos);
  // An estimate, said to come from the role and to see committed data only.
  CHECK(f.client(Query("DELETE FROM t WHERE id = 2")).empty());
  answers = WorkerAnswers(*worker.value(), 1);
  REQUIRE(answers.size() == 1);
  dbwarden::proxy::BlastEstimate e;
  e.ok = true;
  e.rows = 12;
  CHECK(f.relay.on_role_explained(answers[0].ticket, e, f.out, f.now));
  const uint64_t id2 = f.pending_id();
  CHECK(f.broker.show(id2)->spec.blast_rows == 12);
  CHECK(f.broker.show(id2)->spec.blast_via ==
        "explain through the agent's role dbwarden_explain, which sees committed data only");
  CHECK(f.out.take_server().empty());
  for (const auto& r : f.sink.got) CHECK(r.text.find("EXPLAIN") == std::string::npos);
  CHECK(worker.value()->stats().answered == 2);
}

TEST_CASE("approvals, mysql: the agent's role not configured for MySQL: the reason says so",
          "[proxy][approvals][blast]") {
  using namespace mytest;
  dbwarden::proxy::ExplainWorkerOptions o;
  o.pg_role = "dbwarden_explain";  // PostgreSQL only
  auto worker = dbwarden::proxy::ExplainWorker::Start(o);
  REQUIRE(worker.ok());
  MyFixture f;
  f.relay.set_blast_radius(true);
  f.relay.set_explain_worker(worker.value().get());
  my_login(f);
  CHECK(f.client(Query("BEGIN")) == Query("BEGIN"));
  f.server(Ok(1, 0, 3));
  CHECK(f.client(Query("DELETE FROM t WHERE id = 1")).empty());
  CHECK(f.broker.show(f.pending_id())->spec.blast_unavailable ==
        "the session is inside a transaction, and the agent's role is not configured");
  CHECK(worker.value()->stats().submitted == 0);
}

TEST_CASE("approvals, mysql: an SQL EXECUTE is held as the DELETE it runs",
          "[proxy][approvals][sqlprepare]") {
  using namespace mytest;
  MyFixture f;
  my_login(f);
  f.relay.set_blast_radius(true);
  // Preparing runs nothing: it goes on, and the proxy remembers what `s` is.
  const std::string prep = Query("PREPARE s FROM 'DELETE FROM t WHERE id < 100'");
  CHECK(f.client(prep) == prep);
  f.server(Ok(1));
  CHECK(f.client(Query("EXECUTE s")).empty());
  const uint64_t id = f.pending_id();
  const auto shown = f.broker.show(id);
  REQUIRE(shown);
  const auto& spec = shown->spec;
  CHECK(spec.text == "EXECUTE s -- runs: DELETE FROM t WHERE id < 100");
  CHECK(spec.operation == "DELETE");
  CHECK(spec.tables == std::vector<std::string>{"t"});
  CHECK(spec.rule == "hold-deletes");
  CHECK(spec.blast_unavailable ==
        "the statement runs through an SQL prepared statement (EXECUTE): not estimated");
  REQUIRE(f.broker.approve(id, alice(), "", 0, f.now).ok());
  CHECK(f.decided() == Query("EXECUTE s"));
  f.server(Ok(1, 3));
  CHECK(f.sink.got.back().policy_action == "approved:" + std::to_string(id));
  // Denied: an ERR naming the request, and the session goes on.
  CHECK(f.client(Query("EXECUTE s")).empty());
  const uint64_t id2 = f.pending_id();
  REQUIRE(f.broker.deny(id2, alice(), "no", f.now).ok());
  CHECK(f.decided().empty());
  CHECK(f.out.take_client() ==
        Err(1, 1142, "42000", "dbwarden: approval request " + std::to_string(id2) + " denied: no"));
  CHECK(f.client(Query("SELECT 1")) == Query("SELECT 1"));
  f.server(ResultSet(1, {"1"}, false));
  // A block rule blocks the PREPARE itself; `s` stays the DELETE on the server.
  CHECK(f.client(Query("PREPARE s FROM 'DROP TABLE t'")).empty());
  CHECK(f.out.take_client() ==
        Err(1, 1142, "42000", "dbwarden: statement blocked by policy rule \"no-drop\""));
  CHECK(f.client(Query("EXECUTE s")).empty());
  CHECK(f.broker.pending() == 1);
}

TEST_CASE("approvals, pg: an SQL EXECUTE is held as the DELETE it runs",
          "[proxy][approvals][sqlprepare]") {
  using namespace pgtest;
  PgFixture f;
  pg_login(f);
  const std::string prep = Query("PREPARE del(int) AS DELETE FROM t WHERE id < $1");
  CHECK(f.client(prep) == prep);
  f.server(Complete("PREPARE") + Ready());
  CHECK(f.client(Query("EXECUTE del(100)")).empty());
  const uint64_t id = f.pending_id();
  CHECK(f.broker.show(id)->spec.text == "EXECUTE del(100) -- runs: DELETE FROM t WHERE id < $1");
  CHECK(f.broker.show(id)->spec.operation == "DELETE");
  REQUIRE(f.broker.approve(id, alice(), "ok", 0, f.now).ok());
  CHECK(f.decided() == Query("EXECUTE del(100)"));
  f.server(Complete("DELETE 3") + Ready());
  CHECK(f.sink.got.back().policy_action == "approved:" + std::to_string(id));
  // Deallocated through the proxy: an EXECUTE of it is not known (blocked: on_unparsed).
  CHECK(f.client(Query("DEALLOCATE del")) == Query("DEALLOCATE del"));
  f.server(Complete("DEALLOCATE") + Ready());
  CHECK(f.client(Query("EXECUTE del(1)")).empty());
  CHECK(f.broker.pending() == 0);
  CHECK(f.out.take_client().find("not known to the proxy") != std::string::npos);
}

TEST_CASE("approvals, pg: SQL and protocol prepared statements share their names",
          "[proxy][approvals][sqlprepare]") {
  using namespace pgtest;
  PgFixture f;
  pg_login(f);
  // A Bind of a statement an SQL PREPARE made is held as the DELETE it runs.
  const std::string prep = Query("PREPARE del AS DELETE FROM t WHERE id < 100");
  CHECK(f.client(prep) == prep);
  f.server(Complete("PREPARE") + Ready());
  const std::string run = Bind("", "del") + Execute("") + Sync();
  CHECK(f.client(run).empty());
  const uint64_t id = f.pending_id();
  CHECK(f.broker.show(id)->spec.operation == "DELETE");
  REQUIRE(f.broker.deny(id, alice(), "no", f.now).ok());
  CHECK(f.decided().empty());
  CHECK(f.out.take_client().find("approval request " + std::to_string(id) + " denied: no") !=
        std::string::npos);
  // An SQL EXECUTE of a statement a Parse made is judged as its text.
  const std::string parse = Parse("sel", "SELECT 1") + Sync();
  CHECK(f.client(parse) == parse);
  f.server(ParseComplete() + Ready());
  CHECK(f.client(Query("EXECUTE sel")) == Query("EXECUTE sel"));
  f.server(Complete("SELECT 1") + Ready());
  // ... under the rules in force at the EXECUTE.
  f.judged.source.set(proxytest::LoadPolicy(
      "rules: [{name: no-select, match: {operation: SELECT}, action: block}]\n"));
  CHECK(f.client(Query("EXECUTE sel")).empty());
  CHECK(f.sink.got.back().policy_rule == "no-select");
  CHECK(f.out.take_client().find("no-select") != std::string::npos);
}

TEST_CASE("approvals, mysql: a JIT grant of an EXECUTE covers the DELETE it runs, and back",
          "[proxy][approvals][sqlprepare]") {
  using namespace mytest;
  MyFixture f;
  my_login(f);
  const std::string prep = Query("PREPARE s FROM 'DELETE FROM t WHERE id < 100'");
  CHECK(f.client(prep) == prep);
  f.server(Ok(1));
  CHECK(f.client(Query("EXECUTE s")).empty());
  REQUIRE(f.broker.approve(f.pending_id(), alice(), "", 30 * kSecond, f.now).ok());
  CHECK(f.decided() == Query("EXECUTE s"));
  f.server(Ok(1, 3));
  // The same fingerprint sent as itself, and the EXECUTE again: both granted.
  CHECK(f.client(Query("DELETE FROM t WHERE id < 7")) == Query("DELETE FROM t WHERE id < 7"));
  f.server(Ok(1, 1));
  CHECK(f.sink.got.back().policy_action == "granted");
  CHECK(f.client(Query("EXECUTE s")) == Query("EXECUTE s"));
  f.server(Ok(1, 0));
  CHECK(f.sink.got.back().policy_action == "granted");
  // Another DELETE shape is not covered.
  CHECK(f.client(Query("DELETE FROM t WHERE name = 'x'")).empty());
  CHECK(f.broker.list().size() == 1);
}
