// SPDX-License-Identifier: Apache-2.0
//
// The PostgreSQL relay: what reaches the server, what the client is told, and the records,
// with the real policy judge. Wire helpers: tests/unit/pgsql/pg_wire.h.
#include "proxy/pg_relay.h"

#include <catch2/catch.hpp>

#include "../pgsql/pg_wire.h"
#include "relay_fixture.h"

using namespace pgtest;
using dbwarden::proxy::ByteBuffer;
using dbwarden::proxy::PgRelay;
using dbwarden::proxy::RelayLimits;
using proxytest::Append;
using proxytest::Output;
using proxytest::Span;

namespace {

struct PgFixture {
  explicit PgFixture(RelayLimits limits = {}, std::string_view yaml = proxytest::kGuardrails)
      : judged(yaml), relay(info, judged.judge, records, Limits{}, limits, counters) {}

  // The client sends `bytes`; returns what reached the server.
  std::string client(std::string_view bytes) {
    Append(in, bytes);
    relay.on_client(in, out, ++now);
    return out.take_server();
  }
  // The server answers `bytes`; returns what reached the client.
  std::string server(std::string_view bytes) {
    relay.on_server(Span(bytes), out, ++now);
    relay.on_client(in, out, ++now);  // as the connection does after every event
    return out.take_client();
  }
  void login() {
    REQUIRE(client(Startup("alice", "shop")) == Startup("alice", "shop"));
    REQUIRE(server(Handshake()) == Handshake());
  }

  dbwarden::ConnectionInfo info;
  Counters counters;
  Recorder sink;
  dbwarden::proxy::DecisionWriter records{sink};  // the decision written into the record
  proxytest::Judged judged;
  PgRelay relay;
  ByteBuffer in;
  Output out;
  uint64_t now = 0;
};

}  // namespace

TEST_CASE("pg relay: an allowed query passes unchanged and its record says allow",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  CHECK(f.client(Query("SELECT 1")) == Query("SELECT 1"));
  const std::string answer = RowDesc() + DataRow("1") + Complete("SELECT 1") + Ready();
  CHECK(f.server(answer) == answer);
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].text == "SELECT 1");
  CHECK(f.sink.got[0].status_code == "00000");
  CHECK(f.sink.got[0].policy_action == "allow");
  CHECK(f.sink.got[0].policy_rule.empty());
  CHECK(f.info.user == "alice");
}

TEST_CASE("pg relay: records name the backend from BackendKeyData (process.pid)",
          "[proxy][pgsql]") {
  // The proxy's upstream socket tells nothing of the backend that serves it: directly
  // observed records carried the backend's pid, steered ones 0 (transparency test).
  PgFixture f;
  f.login();  // Handshake(): BackendKeyData with pid 42
  CHECK(f.info.server_pid == 42);
  f.client(Query("SELECT 1"));
  f.server(RowDesc() + DataRow("1") + Complete("SELECT 1") + Ready());
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.info.server_pid == 42);
}

TEST_CASE("pg relay: a blocked query never reaches the server, the client gets the rule's "
          "error and the session goes on",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  CHECK(f.client(Query("DROP TABLE accounts")).empty());
  const std::string told = f.out.take_client();
  CHECK(told == Typed('E', "SERROR" + std::string(1, '\0') + "VERROR" + std::string(1, '\0') +
                               "C42501" + std::string(1, '\0') +
                               "Mdropping tables is not allowed here" + std::string(2, '\0')) +
                    Ready('I'));
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].text == "DROP TABLE accounts");
  CHECK(f.sink.got[0].status_code == "42501");
  CHECK(f.sink.got[0].error_message == "dropping tables is not allowed here");
  CHECK(f.sink.got[0].policy_rule == "no-drop");
  CHECK(f.sink.got[0].policy_action == "block");
  // The session goes on.
  CHECK(f.client(Query("SELECT 2")) == Query("SELECT 2"));
  CHECK(f.server(Complete("SELECT 1") + Ready()) == Complete("SELECT 1") + Ready());
  CHECK(f.sink.got.size() == 2);
}

TEST_CASE("pg relay: one blocked statement blocks the whole multi-statement query",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  CHECK(f.client(Query("INSERT INTO t VALUES (1); DELETE FROM t; SELECT 1")).empty());
  const std::string told = f.out.take_client();
  CHECK(told.find("C42501") != std::string::npos);
  CHECK(told.substr(told.size() - 6) == Ready('I'));
  // Recorded as the statement that blocked it; the others never ran.
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].text == "DELETE FROM t");
  CHECK(f.sink.got[0].status_code == "42501");
  CHECK(f.sink.got[0].policy_rule == "unbounded-delete");
  CHECK(f.sink.got[0].policy_action == "block");
}

TEST_CASE("pg relay: a log rule lets the statement through and names itself in the record",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  CHECK(f.client(Query("INSERT INTO t VALUES (1)")) == Query("INSERT INTO t VALUES (1)"));
  f.server(Complete("INSERT 0 1") + Ready());
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].policy_rule == "watch-inserts");
  CHECK(f.sink.got[0].policy_action == "log");
}

TEST_CASE("pg relay: a blocked query waits until the server has answered what came before",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  // Pipelined: the client sends both before any answer.
  CHECK(f.client(Query("SELECT 1") + Query("DROP TABLE t")) == Query("SELECT 1"));
  CHECK(f.out.take_client().empty());  // nothing of the block yet: the server owes SELECT 1
  const std::string first = Complete("SELECT 1") + Ready('T');
  const std::string got = f.server(first);
  CHECK(got.substr(0, first.size()) == first);
  // Then the block, with the server's transaction status.
  CHECK(got.find("C42501") == first.size() + 1 + 4 + 7 + 7);
  CHECK(got.substr(got.size() - 6) == Ready('T'));
}

TEST_CASE("pg relay: a blocked Parse drops its group up to Sync, which the proxy answers",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  const std::string group =
      Parse("s1", "DELETE FROM t") + Bind("", "s1") + Describe('P', "") + Execute("") + Sync();
  CHECK(f.client(group).empty());
  const std::string told = f.out.take_client();
  CHECK(told.find("C42501") != std::string::npos);
  CHECK(told.substr(told.size() - 6) == Ready('I'));
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].text == "DELETE FROM t");
  CHECK(f.sink.got[0].policy_rule == "unbounded-delete");
  // The next group goes through.
  const std::string next = Parse("", "SELECT 1") + Bind("", "") + Execute("") + Sync();
  CHECK(f.client(next) == next);
}

TEST_CASE("pg relay: a Parse blocked after other messages of its Sync group ends the "
          "connection, so the server rolls them back",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  const std::string first = Parse("", "INSERT INTO t VALUES (1)") + Bind("", "") + Execute("");
  CHECK(f.client(first) == first);
  CHECK(f.client(Parse("", "DROP TABLE t")).empty());
  CHECK(f.out.closed);
  CHECK(f.out.take_client().find("SFATAL") != std::string::npos);
}

TEST_CASE("pg relay: messages split at every byte are judged whole", "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  const std::string q = Query("DROP TABLE t");
  for (char c : q) CHECK(f.client(std::string(1, c)).empty());
  CHECK(f.out.take_client().find("C42501") != std::string::npos);
  const std::string ok = Query("SELECT 1");
  std::string passed;
  for (char c : ok) passed += f.client(std::string(1, c));
  CHECK(passed == ok);
}

TEST_CASE("pg relay: SSLRequest and GSSENCRequest are refused by the proxy", "[proxy][pgsql]") {
  PgFixture f;
  CHECK(f.client(SslRequest()).empty());
  CHECK(f.out.take_client() == "N");
  CHECK(f.client(GssEncRequest()).empty());
  CHECK(f.out.take_client() == "N");
  CHECK(f.client(Startup("bob", "db")) == Startup("bob", "db"));
}

TEST_CASE("pg relay: with a certificate SSLRequest is answered 'S' and TLS starts",
          "[proxy][pgsql]") {
  PgFixture f;
  f.out.tls_available = true;
  CHECK(f.client(GssEncRequest()).empty());  // GSSAPI encryption: never terminated here
  CHECK(f.out.take_client() == "N");
  CHECK_FALSE(f.out.tls_started);
  CHECK(f.client(SslRequest()).empty());
  CHECK(f.out.take_client() == "S");
  CHECK(f.out.tls_started);
  // The connection decrypts: the relay goes on with the plaintext, as for any client.
  CHECK(f.client(SslRequest()).empty());  // a second one, inside TLS: refused
  CHECK(f.out.take_client() == "N");
  f.login();
  CHECK(f.client(Query("SELECT 1")) == Query("SELECT 1"));
  f.server(RowDesc() + DataRow("1") + Complete("SELECT 1") + Ready());
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].text == "SELECT 1");
  CHECK(f.info.user == "alice");
}

TEST_CASE("pg relay: bytes sent after SSLRequest before the answer close the connection",
          "[proxy][pgsql]") {
  PgFixture f;
  f.out.tls_available = true;
  // Plaintext sent unasked would otherwise be taken as having come over TLS.
  CHECK(f.client(SslRequest() + Startup("bob", "db")).empty());
  CHECK_FALSE(f.out.tls_started);
  CHECK(f.out.closed);
  CHECK(f.out.take_client().find("C08P01") != std::string::npos);
}

TEST_CASE("pg relay: a cancel request goes to the server unchanged", "[proxy][pgsql]") {
  PgFixture f;
  CHECK(f.client(CancelRequest()) == CancelRequest());
}

TEST_CASE("pg relay: COPY data and large binds stream through without being held",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  CHECK(f.client(Query("COPY t FROM STDIN")) == Query("COPY t FROM STDIN"));
  f.server(CopyInResponse());
  const std::string data = CopyData(std::string(100000, 'x'));
  // The header and then each piece pass as they arrive.
  CHECK(f.client(data.substr(0, 1000)) == data.substr(0, 1000));
  CHECK(f.client(data.substr(1000)) == data.substr(1000));
  CHECK(f.client(CopyDone()) == CopyDone());
}

TEST_CASE("pg relay: bytes that are not PostgreSQL close this connection with an error",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  CHECK(f.client("\x01\x02\x03\x04\x05\x06").empty());
  CHECK(f.out.closed);
  CHECK(f.out.take_client().find("C08P01") != std::string::npos);
}

TEST_CASE("pg relay: a query too large to judge whole falls under on_unparsed",
          "[proxy][pgsql]") {
  RelayLimits small;
  small.max_judged_bytes = 64;
  SECTION("on_unparsed: block (default) ends the connection") {
    PgFixture f(small);
    f.login();
    CHECK(f.client(Query("SELECT '" + std::string(200, 'a') + "'")).empty());
    CHECK(f.out.closed);
    CHECK(f.out.take_client().find("too large") != std::string::npos);
  }
  SECTION("on_unparsed: allow streams it through") {
    PgFixture f(small, "on_unparsed: allow\nrules: []\n");
    f.login();
    const std::string q = Query("SELECT '" + std::string(200, 'a') + "'");
    CHECK(f.client(q) == q);
  }
}

TEST_CASE("pg relay: a prepared statement is judged again at Bind after a policy reload",
          "[proxy][pgsql]") {
  PgFixture f;
  f.login();
  const std::string prepare = Parse("s1", "DELETE FROM t WHERE id = $1") + Sync();
  CHECK(f.client(prepare) == prepare);
  f.server(ParseComplete() + Ready());
  const std::string run = Bind("", "s1", "1") + Execute("") + Sync();
  CHECK(f.client(run) == run);
  f.server(BindComplete() + Complete("DELETE 1") + Ready());
  // The policy now forbids every DELETE: the statement prepared before is blocked at Bind.
  f.judged.source.set(proxytest::LoadPolicy(
      "rules:\n  - {name: no-delete, match: {operation: DELETE}, action: block}\n"));
  CHECK(f.client(run).empty());
  const std::string told = f.out.take_client();
  CHECK(told.find("C42501") != std::string::npos);
  CHECK(told.substr(told.size() - 6) == Ready('I'));
  REQUIRE(f.sink.got.size() == 2);
  CHECK(f.sink.got[1].policy_rule == "no-delete");
  CHECK(f.sink.got[1].policy_action == "block");
  // Unchanged policy: the next Bind is not judged again, and passes.
  f.judged.source.set(proxytest::LoadPolicy("rules: []\n"));
  CHECK(f.client(run) == run);
}
