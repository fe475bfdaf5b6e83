// SPDX-License-Identifier: Apache-2.0
//
// The MySQL relay: greeting rewrite, judged commands, the proxy's ERR answers and the
// records, with the real policy judge. Wire helpers: tests/unit/mysql/my_wire.h.
#include "proxy/mysql_relay.h"

#include <catch2/catch.hpp>

#include "../mysql/my_wire.h"
#include "protocol/mysql/messages.h"
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

struct MyFixture {
  MyFixture() : relay(info, judged.judge, records, Limits{}, RelayLimits{}, counters) {}

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
  void login() {
    server(Greeting());
    REQUIRE(client(HandshakeResponse(kClientCaps, "app", "shop", "12345678901234567890")) ==
            HandshakeResponse(kClientCaps, "app", "shop", "12345678901234567890"));
    REQUIRE(server(Ok(2)) == Ok(2));
  }

  dbwarden::ConnectionInfo info;
  Counters counters;
  Recorder sink;
  dbwarden::proxy::DecisionWriter records{sink};  // the decision written into the record
  proxytest::Judged judged;
  MysqlRelay relay;
  ByteBuffer in;
  Output out;
  uint64_t now = 0;
};

uint32_t GreetingCaps(const std::string& packet) {
  dbwarden::mysql::Greeting g;
  REQUIRE(dbwarden::mysql::ParseGreeting(Span(packet).subspan(4), &g));
  return static_cast<uint32_t>(g.capabilities);
}

}  // namespace

TEST_CASE("mysql relay: the greeting reaches the client without TLS and compression",
          "[proxy][mysql]") {
  MyFixture f;
  const std::string greeting = Greeting(kBaseCaps | kDeprecateEof | 0x800 | 0x20);
  // Cut anywhere: the greeting is rewritten once it is whole.
  CHECK(f.server(greeting.substr(0, 10)).empty());
  const std::string got = f.server(greeting.substr(10));
  REQUIRE(got.size() == greeting.size());
  CHECK((GreetingCaps(got) & 0x800) == 0);
  CHECK((GreetingCaps(got) & 0x20) == 0);
  CHECK(GreetingCaps(got) == (GreetingCaps(greeting) & ~0x820u));
}

TEST_CASE("mysql relay: a client that asks for TLS anyway is refused", "[proxy][mysql]") {
  MyFixture f;
  f.server(Greeting());
  CHECK(f.client(SslRequest(kClientCaps)).empty());
  CHECK(f.out.closed);
  CHECK(f.out.take_client().find("TLS") != std::string::npos);
}

TEST_CASE("mysql relay: with a certificate the proxy offers TLS and the login is shifted "
          "by the SSL request the server never sees",
          "[proxy][mysql]") {
  MyFixture f;
  f.out.tls_available = true;
  // Offered whatever the server says (here: no CLIENT_SSL of its own).
  const std::string got = f.server(Greeting(kBaseCaps | kDeprecateEof));
  CHECK((GreetingCaps(got) & 0x800) != 0);
  CHECK(f.client(SslRequest(kClientCaps)).empty());
  CHECK(f.out.tls_started);
  // The HandshakeResponse (sequence id 2 after the SSL request) reaches the server as its
  // first answer, id 1, without CLIENT_SSL.
  std::string response = HandshakeResponse(kClientCaps | 0x800, "app", "shop", "x");
  response[3] = 2;
  CHECK(f.client(response) == HandshakeResponse(kClientCaps, "app", "shop", "x"));
  // An auth switch (server id 2, client 3), the client's answer (3, server 2), the OK.
  const std::string auth_switch = Packet(2, "þ" + CStr("mysql_native_password") + "abc");
  std::string for_client = auth_switch;
  for_client[3] = 3;
  // Cut inside the header: the id is still shifted.
  CHECK(f.server(auth_switch.substr(0, 2)) + f.server(auth_switch.substr(2)) == for_client);
  CHECK(f.client(Packet(4, "token")) == Packet(3, "token"));
  CHECK(f.server(Ok(4)) == Ok(5));
  // Command phase: ids start at 0 on both sides, nothing is shifted.
  CHECK(f.client(Query("SELECT 1")) == Query("SELECT 1"));
  CHECK(f.server(ResultSet(1, {"1"}, false)) == ResultSet(1, {"1"}, false));
  CHECK(f.client(Query("DROP TABLE t")).empty());
  CHECK(f.out.take_client() == Err(1, 1142, "42501", "dropping tables is not allowed here"));
  REQUIRE(f.sink.got.size() == 2);
  CHECK(f.sink.got[0].text == "SELECT 1");
  CHECK(f.sink.got[1].policy_action == "block");
  CHECK(f.info.user == "app");
}

TEST_CASE("mysql relay: allowed queries pass, blocked ones get the rule's ERR and the "
          "session goes on",
          "[proxy][mysql]") {
  MyFixture f;
  f.login();
  CHECK(f.client(Query("SELECT 1")) == Query("SELECT 1"));
  CHECK(f.server(ResultSet(1, {"1"}, false)) == ResultSet(1, {"1"}, false));
  CHECK(f.client(Query("DROP TABLE t")).empty());
  CHECK(f.out.take_client() == Err(1, 1142, "42501", "dropping tables is not allowed here"));
  CHECK(f.client(Query("INSERT INTO t VALUES (1)")) == Query("INSERT INTO t VALUES (1)"));
  f.server(Ok(1, 1));
  REQUIRE(f.sink.got.size() == 3);
  CHECK(f.sink.got[0].policy_action == "allow");
  CHECK(f.sink.got[1].text == "DROP TABLE t");
  CHECK(f.sink.got[1].status_code == "1142");  // MySQL: the error number (OpenTelemetry)
  CHECK(f.sink.got[1].sqlstate == "42501");
  CHECK(f.sink.got[1].policy_rule == "no-drop");
  CHECK(f.sink.got[1].policy_action == "block");
  CHECK(f.sink.got[2].policy_action == "log");
}

TEST_CASE("mysql relay: a blocked prepare never reaches the server", "[proxy][mysql]") {
  MyFixture f;
  f.login();
  CHECK(f.client(Command(0x16, "DELETE FROM t")).empty());
  const std::string told = f.out.take_client();
  CHECK(told.substr(4, 1) == "\xff");
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].policy_rule == "unbounded-delete");
}

TEST_CASE("mysql relay: a multi-statement query with one blocked statement is blocked whole",
          "[proxy][mysql]") {
  MyFixture f;
  f.login();
  CHECK(f.client(Query("SELECT 1; DROP TABLE t")).empty());
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].text == "DROP TABLE t");
  CHECK(f.sink.got[0].policy_action == "block");
}

TEST_CASE("mysql relay: packets that are not commands stream through (LOCAL INFILE data)",
          "[proxy][mysql]") {
  MyFixture f;
  f.login();
  CHECK(f.client(Query("LOAD DATA LOCAL INFILE 'x' INTO TABLE t")) ==
        Query("LOAD DATA LOCAL INFILE 'x' INTO TABLE t"));
  f.server(Packet(1, "\xfbx"));
  // File content: sequence 2 on, whatever it looks like (here: a DROP "command" byte).
  const std::string content = Packet(2, "\x03" "DROP TABLE t") + Packet(3, "");
  CHECK(f.client(content) == content);
}

TEST_CASE("mysql relay: a prepared statement is judged again at execute after a policy reload",
          "[proxy][mysql]") {
  MyFixture f;
  f.login();
  const std::string prepare = Command(0x16, "DELETE FROM t WHERE id = ?");
  CHECK(f.client(prepare) == prepare);
  f.server(PrepareOk(1, 7, 0, 1, false));
  // COM_STMT_EXECUTE: id 7, flags 0, iteration count 1, null bitmap, new-params flag, types.
  const std::string execute =
      Command(0x17, U32(7) + '\0' + U32(1) + '\0' + '\1' + U16(3) + U32(1));
  CHECK(f.client(execute) == execute);
  f.server(Ok(1, 1));
  f.judged.source.set(proxytest::LoadPolicy(
      "rules:\n  - {name: no-delete, match: {operation: DELETE}, action: block}\n"));
  CHECK(f.client(execute).empty());
  CHECK(f.out.take_client().substr(4, 1) == "\xff");
  REQUIRE(f.sink.got.size() == 2);
  CHECK(f.sink.got[1].policy_rule == "no-delete");
}

TEST_CASE("mysql relay: after COM_STATISTICS (the CLI's `status`) a blocked query is answered",
          "[proxy][mysql]") {
  MyFixture f;
  f.login();
  CHECK(f.client(Command(0x09, "")) == Command(0x09, ""));
  const Bytes stats = Packet(1, "Uptime: 1  Threads: 1  Questions: 13  Slow queries: 0");
  CHECK(f.server(stats) == stats);
  CHECK(f.client(Query("DROP TABLE t")).empty());
  CHECK(f.out.take_client() == Err(1, 1142, "42501", "dropping tables is not allowed here"));
}
