// SPDX-License-Identifier: Apache-2.0
//
// Masking in the MySQL relay with the real judge and a policy's mask rules: the catalog
// lookup on the client's session (never seen by the client or the records), masked text
// and binary results, pipelined commands held until the masked answer ends, refusals
// decided by the text, the records' masked counts. Wire helpers: tests/unit/mysql/my_wire.h.
#include <catch2/catch.hpp>

#include "../mysql/my_wire.h"
#include "approvals/broker.h"
#include "proxy/mysql_relay.h"
#include "relay_fixture.h"

using namespace mytest;
using dbwarden::proxy::ByteBuffer;
using dbwarden::proxy::MysqlRelay;
using dbwarden::proxy::RelayLimits;
using proxytest::Append;
using proxytest::Output;
using proxytest::Span;

namespace {

constexpr uint32_t kClientCaps = kBaseCaps | kDeprecateEof;

constexpr std::string_view kMaskPolicy = R"(
rules:
  - name: no-drop
    match: {operation: DROP}
    action: block
  - name: pii
    action: mask
    columns: [shop.customers.ssn]
    style: full
    on_derived: mask
    predicates: block
)";

struct MaskFixture {
  explicit MaskFixture(std::string_view yaml = kMaskPolicy)
      : judged(yaml), relay(info, judged.judge, records, Limits{}, RelayLimits{}, counters) {
    server(Greeting());
    client(HandshakeResponse(kClientCaps, "app", "shop", "x"));
    server(Ok(2));
  }
  std::string client(std::string_view bytes) {
    Append(in, bytes);
    relay.on_client(in, out, ++now);
    return out.take_server();
  }
  std::string server(std::string_view bytes) {
    relay.on_server(Span(bytes), out, ++now);
    relay.on_client(in, out, ++now);
    return out.take_client();
  }
  // The proxy's own lookup: the packet it sent, and the server's answer listing `tables`
  // of schema shop ("name" or "name=VIEW:definition").
  static Bytes LookupAnswer(const std::vector<std::pair<std::string, std::string>>& tables) {
    Bytes a = Packet(1, Lenenc(4));
    uint8_t seq = 2;
    for (const char* c : {"TABLE_SCHEMA", "TABLE_NAME", "TABLE_TYPE", "VIEW_DEFINITION"}) {
      a += ColumnDefOf(seq++, "information_schema", "TABLES", c);
    }
    for (const auto& [name, definition] : tables) {
      const bool view = !definition.empty();
      a += TextRow(seq++, {std::string("shop"), name, std::string(view ? "VIEW" : "BASE TABLE"),
                           view ? std::optional<std::string>(definition) : std::nullopt});
    }
    return a + Ok(seq, 0, 2, '\xfe');
  }

  dbwarden::ConnectionInfo info;
  Counters counters;
  Recorder sink;
  dbwarden::proxy::DecisionWriter records{sink};
  proxytest::Judged judged;
  MysqlRelay relay;
  ByteBuffer in;
  Output out;
  uint64_t now = 0;
};

Bytes CustomersResult(uint8_t seq, const std::string& ssn, const std::string& name) {
  return Packet(seq, Lenenc(2)) + ColumnDefOf(uint8_t(seq + 1), "shop", "customers", "ssn") +
         ColumnDefOf(uint8_t(seq + 2), "shop", "customers", "name") +
         TextRow(uint8_t(seq + 3), {ssn, name}) + Ok(uint8_t(seq + 4), 0, 2, '\xfe');
}

}  // namespace

TEST_CASE(
    "mysql relay masking: a lookup first, then the statement, its masked column is "
    "rewritten, the other passes, the record counts it",
    "[proxy][mysql][masking]") {
  MaskFixture f;
  const std::string sent = f.client(Query("SELECT ssn, name FROM customers"));
  REQUIRE(sent.find("information_schema.TABLES") != std::string::npos);
  CHECK(sent.find("SELECT ssn") == std::string::npos);  // held until the lookup is answered
  // The lookup's answer reaches neither the client nor the records; the statement goes.
  CHECK(f.server(MaskFixture::LookupAnswer({{"customers", ""}})).empty());
  CHECK(f.out.take_server() == Query("SELECT ssn, name FROM customers"));
  CHECK(f.server(CustomersResult(1, "123-45-6789", "Ann")) == CustomersResult(1, "****", "Ann"));
  // Known now: the next statement goes at once.
  CHECK(f.client(Query("SELECT ssn, name FROM customers")) ==
        Query("SELECT ssn, name FROM customers"));
  CHECK(f.server(CustomersResult(1, "987-65-4329", "Bob")) == CustomersResult(1, "****", "Bob"));
  REQUIRE(f.sink.got.size() == 2);
  for (const auto& s : f.sink.got) {
    CHECK(s.text == "SELECT ssn, name FROM customers");
    CHECK(s.masked_values == 1);
    CHECK(s.masked_columns == 1);
  }
}

TEST_CASE(
    "mysql relay masking: a view over the masked table is masked whole, without the "
    "catalog's answer every column of an unknown table fails closed",
    "[proxy][mysql][masking]") {
  MaskFixture f;
  f.client(Query("SELECT * FROM v"));
  f.server(MaskFixture::LookupAnswer(
      {{"customers", ""},
       {"v", "select `shop`.`customers`.`ssn` AS `s2` from `shop`.`customers`"}}));
  f.out.take_server();
  const Bytes view = Packet(1, Lenenc(1)) + ColumnDefOf(2, "shop", "v", "s2") +
                     TextRow(3, {std::string("123-45-6789")}) + Ok(4, 0, 2, '\xfe');
  CHECK(f.server(view).find("123-45-6789") == std::string::npos);

  MaskFixture g;
  g.client(Query("SELECT * FROM t2"));
  g.server(Err(1, 1142, "42000", "no access to information_schema"));
  g.out.take_server();
  const Bytes other = Packet(1, Lenenc(1)) + ColumnDefOf(2, "shop", "t2", "x") +
                      TextRow(3, {std::string("plain")}) + Ok(4, 0, 2, '\xfe');
  CHECK(g.server(other).find("plain") == std::string::npos);
}

TEST_CASE("mysql relay masking: a command pipelined behind a masked one waits for its answer",
          "[proxy][mysql][masking]") {
  MaskFixture f;
  f.client(Query("SELECT 1"));
  f.server(ResultSet(1, {"1"}, false));
  f.client(Query("SELECT ssn, name FROM customers"));
  f.server(MaskFixture::LookupAnswer({{"customers", ""}}));
  CHECK(f.out.take_server() == Query("SELECT ssn, name FROM customers"));
  // Pipelined: the next command is not sent before the masked answer has ended.
  CHECK(f.client(Query("SELECT 2")).empty());
  const Bytes answer = CustomersResult(1, "123-45-6789", "Ann");
  // Cut anywhere: the first part carries nothing of the value yet.
  CHECK(f.server(answer.substr(0, 40)).find("123") == std::string::npos);
  CHECK(f.out.take_server().empty());
  const std::string rest = f.server(answer.substr(40));
  CHECK(rest.find("123-45-6789") == std::string::npos);
  CHECK(f.out.take_server() == Query("SELECT 2"));
  CHECK(f.server(ResultSet(1, {"2"}, false)) == ResultSet(1, {"2"}, false));
}

TEST_CASE(
    "mysql relay masking: INTO OUTFILE and a masked column in WHERE are refused before "
    "the server, the session goes on",
    "[proxy][mysql][masking]") {
  MaskFixture f;
  for (const std::string_view sql : {"SELECT ssn FROM customers INTO OUTFILE '/tmp/x'",
                                     "SELECT name FROM customers WHERE ssn LIKE '1%'"}) {
    CAPTURE(sql);
    CHECK(f.client(Query(sql)).empty());
    const std::string err = f.out.take_client();
    CHECK(err.find("42000") != std::string::npos);
    CHECK(err[4] == '\xff');
  }
  CHECK(f.client(Query("SELECT 3")) == Query("SELECT 3"));
  REQUIRE(f.sink.got.size() == 2);
  CHECK(f.sink.got[0].policy_action == "block");
  CHECK(f.sink.got[0].policy_rule == "pii");
}

TEST_CASE(
    "mysql relay masking: binary rows of a prepared statement's execute, a cursor is "
    "refused",
    "[proxy][mysql][masking]") {
  MaskFixture f;
  const std::string sql = "SELECT id, ssn FROM customers";
  CHECK(f.client(Command(0x16, sql)) == Command(0x16, sql));  // a prepare's answer has no rows
  f.server(PrepareOk(1, 7, 2, 0, false));
  const std::string execute = Command(0x17, U32(7) + std::string(1, '\0') + U32(1));
  CHECK(f.client(execute).find("information_schema") != std::string::npos);
  f.server(MaskFixture::LookupAnswer({{"customers", ""}}));
  CHECK(f.out.take_server() == execute);
  const auto result = [](const std::string& ssn) {
    return Packet(1, Lenenc(2)) + ColumnDefOf(2, "shop", "customers", "id", 3, 1) +
           ColumnDefOf(3, "shop", "customers", "ssn") +
           Packet(4, std::string(2, '\0') + U32(42) + LenStr(ssn)) + Ok(5, 0, 2, '\xfe');
  };
  CHECK(f.server(result("123-45-6789")) == result("****"));
  // A cursor's rows would come by COM_STMT_FETCH: refused.
  const std::string cursor = Command(0x17, U32(7) + std::string(1, '\x01') + U32(1));
  CHECK(f.client(cursor).empty());
  CHECK(f.out.take_client()[4] == '\xff');
  CHECK(f.client(Query("SELECT 4")) == Query("SELECT 4"));
}

TEST_CASE(
    "mysql relay masking: an execute of a statement the proxy does not know is refused "
    "under mask rules",
    "[proxy][mysql][masking]") {
  MaskFixture f;
  const std::string execute = Command(0x17, U32(99) + std::string(1, '\0') + U32(1));
  CHECK(f.client(execute).empty());
  CHECK(f.out.take_client()[4] == '\xff');
  CHECK(f.client(Query("SELECT 5")) == Query("SELECT 5"));
}

TEST_CASE(
    "mysql relay masking: a statement held for approval, once approved, is looked up and "
    "masked as an unheld one",
    "[proxy][mysql][masking][approvals]") {
  MaskFixture f(R"(
approver_groups: {dba: [alice]}
rules:
  - name: hold-customers
    match: {collections: customers}
    action: require_approval
    approvers: [dba]
  - name: pii
    action: mask
    columns: [shop.customers.ssn]
    style: full
)");
  dbwarden::approvals::Broker broker(nullptr);
  f.relay.set_approvals(&broker);
  CHECK(f.client(Query("SELECT ssn, name FROM customers")).empty());  // held: nothing sent
  const auto pending = broker.list();
  REQUIRE(pending.size() == 1);
  dbwarden::approvals::Approver alice;
  alice.name = "alice";
  alice.uid = 2000;
  REQUIRE(broker.approve(pending[0].id, alice, "", 0, f.now).ok());
  f.relay.on_approval_decided(f.out, ++f.now);
  f.relay.on_client(f.in, f.out, f.now);
  // Released: the catalog lookup first, as for any masked statement, then the statement.
  CHECK(f.out.take_server().find("information_schema.TABLES") != std::string::npos);
  CHECK(f.server(MaskFixture::LookupAnswer({{"customers", ""}})).empty());
  CHECK(f.out.take_server() == Query("SELECT ssn, name FROM customers"));
  CHECK(f.server(CustomersResult(1, "123-45-6789", "Ann")) == CustomersResult(1, "****", "Ann"));
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].policy_action == "approved:" + std::to_string(pending[0].id));
  CHECK(f.sink.got[0].masked_values == 1);
}
