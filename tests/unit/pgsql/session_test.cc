// SPDX-License-Identifier: Apache-2.0
// The stitcher on synthetic streams built with the encoder in pg_wire.h.
#include <catch2/catch.hpp>

#include "pg_wire.h"

using namespace pgtest;
using namespace std::string_literals;

namespace {
constexpr auto kF = Direction::kFrontend;
constexpr auto kB = Direction::kBackend;

std::vector<Chunk> Login() {
  return {{kF, Startup("alice", "shop", "app1"), 1},
          {kB, AuthCleartext(), 2},
          {kF, Password("s3cret-Pa55"), 3},
          {kB, Handshake(), 4}};
}

std::vector<Chunk> With(std::vector<Chunk> head, const std::vector<Chunk>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}
}  // namespace

TEST_CASE("pgsql session: startup fills identity, simple query gives one record", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF, Query("SELECT 1"), 10},
                           {kB, RowDesc() + DataRow("1") + Complete("SELECT 1") + Ready(), 20}}));
  CHECK(run.info.user == "alice");
  CHECK(run.info.database == "shop");
  CHECK(run.info.application_name == "app1");
  CHECK(run.info.db_system == "postgresql");
  REQUIRE(run.sink.got.size() == 1);
  const Statement& s = run.sink.got[0];
  CHECK(s.text == "SELECT 1");
  CHECK(s.start_ns == 10);
  CHECK(s.end_ns == 20);
  CHECK(s.status_code == "00000");
  CHECK(s.command_tag == "SELECT 1");
  CHECK(s.returned_rows == 1);
  CHECK_FALSE(s.capture_gap);
  CHECK(s.request_bytes == Query("SELECT 1").size());
  CHECK(s.response_bytes == (RowDesc() + DataRow("1") + Complete("SELECT 1")).size());
  CHECK(run.counters.unmatched_responses == 0);
  CHECK(run.counters.midstream_joins == 0);
}

TEST_CASE("pgsql session: database defaults to the user", "[pgsql]") {
  Run run;
  Feed(run, {{kF, Startup("bob", ""), 1}, {kB, Handshake(), 2}});
  CHECK(run.info.user == "bob");
  CHECK(run.info.database == "bob");
}

TEST_CASE("pgsql session: multi-statement query, error stops the rest", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF,
                            Query("CREATE TABLE t(a int); INSERT INTO t VALUES (1); SELECT 1/0; "
                                  "SELECT 2"),
                            10},
                           {kB, Complete("CREATE TABLE"), 20},
                           {kB, Complete("INSERT 0 1"), 30},
                           {kB, Error("22012", "division by zero") + Ready(), 40}}));
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].text == "CREATE TABLE t(a int)");
  CHECK(run.sink.got[0].command_tag == "CREATE TABLE");
  CHECK_FALSE(run.sink.got[0].returned_rows.has_value());
  CHECK(run.sink.got[0].start_ns == 10);
  CHECK(run.sink.got[0].end_ns == 20);
  CHECK(run.sink.got[1].text == "INSERT INTO t VALUES (1)");
  CHECK(run.sink.got[1].returned_rows == 1);
  CHECK(run.sink.got[1].start_ns == 20);
  CHECK(run.sink.got[2].text == "SELECT 1/0");
  CHECK(run.sink.got[2].status_code == "22012");
  CHECK(run.sink.got[2].error_message == "division by zero");
  CHECK(run.sink.got[2].end_ns == 40);
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("pgsql session: empty query string gives no record", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF, Query("  -- nothing"), 10}, {kB, EmptyQuery() + Ready(), 20}}));
  CHECK(run.sink.got.empty());
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("pgsql session: fewer completions than pieces keeps all text", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF, Query("SELECT 1; SELECT 2; SELECT 3"), 10},
                           {kB, Complete("SELECT 1") + Complete("SELECT 1") + Ready(), 20}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT 1");
  CHECK(run.sink.got[1].text == "SELECT 2; SELECT 3");
  for (const Statement& s : run.sink.got) CHECK(s.status_code == "00000");
}

TEST_CASE("pgsql session: more completions than pieces are unmatched", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF, Query("SELECT 1"), 10},
                           {kB, Complete("SELECT 1") + Complete("SELECT 4") + Ready(), 20}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT 1");
  CHECK(run.sink.got[1].text.empty());
  CHECK(run.sink.got[1].returned_rows == 4);
  CHECK(run.counters.unmatched_responses == 1);
}

TEST_CASE("pgsql session: long query text is cut and counted", "[pgsql]") {
  Run run;
  run.limits.max_query_bytes = 16;
  Feed(
      run,
      With(Login(),
           {{kF, Query("SELECT 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"), 10},
            {kF, Parse("", "SELECT 'bbbbbbbbbbbbbbbbbbbbbb'") + Bind("", "") + Execute("") + Sync(),
             30},
            {kB, Complete("SELECT 1") + Ready(), 20},
            {kB, ParseComplete() + BindComplete() + Complete("SELECT 1") + Ready(), 40}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT 'aaaaaaaa");
  CHECK(run.sink.got[0].text_truncated);
  CHECK(run.sink.got[1].text == "SELECT 'bbbbbbbb");
  CHECK(run.sink.got[1].text_truncated);
  CHECK(run.counters.truncated_queries == 2);
}

TEST_CASE("pgsql session: extended protocol, named and unnamed", "[pgsql]") {
  Run run;
  Feed(run,
       With(Login(),
            {{kF, Parse("s1", "SELECT * FROM t WHERE a = $1") + Sync(), 10},
             {kB, ParseComplete() + Ready(), 11},
             {kF, Bind("", "s1", "42") + Describe('P', "") + Execute("") + Sync(), 20},
             {kB, BindComplete() + RowDesc() + DataRow("42") + Complete("SELECT 1") + Ready(), 21},
             {kF, Parse("", "UPDATE t SET a = 1") + Bind("", "") + Execute("") + Sync(), 30},
             {kB, ParseComplete() + BindComplete() + Complete("UPDATE 3") + Ready(), 31}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT * FROM t WHERE a = $1");
  CHECK(run.sink.got[0].statement_name == "s1");
  CHECK(run.sink.got[0].returned_rows == 1);
  CHECK(run.sink.got[0].start_ns == 20);  // the Bind starts this statement's group
  CHECK(run.sink.got[0].end_ns == 21);
  CHECK(run.sink.got[1].text == "UPDATE t SET a = 1");
  CHECK(run.sink.got[1].statement_name.empty());
  CHECK(run.sink.got[1].returned_rows == 3);
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("pgsql session: pipelined executes complete in order", "[pgsql]") {
  Run run;
  Feed(run, With(Login(),
                 {{kF,
                   Parse("", "SELECT 1") + Bind("", "") + Execute("") + Parse("", "SELECT 2") +
                       Bind("", "") + Execute("") + Parse("", "SELECT 3") + Bind("", "") +
                       Execute("") + Sync(),
                   10},
                  {kB, ParseComplete() + BindComplete() + Complete("SELECT 1"), 20},
                  {kB, ParseComplete() + BindComplete() + Complete("SELECT 2"), 30},
                  {kB, ParseComplete() + BindComplete() + Complete("SELECT 3") + Ready(), 40}}));
  REQUIRE(run.sink.got.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(run.sink.got[i].text == "SELECT " + std::to_string(i + 1));
    CHECK(run.sink.got[i].end_ns == 20u + 10u * i);
    CHECK(run.sink.got[i].start_ns == 10);
  }
}

TEST_CASE("pgsql session: error in extended protocol skips to Sync", "[pgsql]") {
  Run run;
  Feed(run,
       With(Login(),
            {{kF,
              Parse("", "SELECT 1") + Bind("", "") + Execute("") + Parse("", "SELECT 1/0") +
                  Bind("", "") + Execute("") + Parse("", "SELECT 3") + Bind("", "") + Execute("") +
                  Sync() + Parse("", "SELECT 4") + Bind("", "") + Execute("") + Sync(),
              10},
             {kB,
              ParseComplete() + BindComplete() + Complete("SELECT 1") + ParseComplete() +
                  BindComplete() + Error("22012", "division by zero") + Ready('E'),
              20},
             {kB, ParseComplete() + BindComplete() + Complete("SELECT 1") + Ready(), 30}}));
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].text == "SELECT 1");
  CHECK(run.sink.got[1].text == "SELECT 1/0");
  CHECK(run.sink.got[1].status_code == "22012");
  CHECK(run.sink.got[2].text == "SELECT 4");  // "SELECT 3" never ran: no record
  CHECK(run.sink.got[2].status_code == "00000");
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("pgsql session: error on Parse is reported on its Execute or alone", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF, Parse("", "SELEC 1") + Bind("", "") + Execute("") + Sync(), 10},
                           {kB, Error("42601", "syntax error") + Ready(), 20},
                           {kF, Parse("q", "SELEC 2") + Sync(), 30},
                           {kB, Error("42601", "syntax error") + Ready(), 40}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELEC 1");
  CHECK(run.sink.got[0].status_code == "42601");
  CHECK(run.sink.got[1].text == "SELEC 2");
  CHECK(run.sink.got[1].statement_name == "q");
  CHECK(run.sink.got[1].status_code == "42601");
}

TEST_CASE("pgsql session: error arrives before the client's Sync", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF, Parse("", "SELECT 1/0") + Bind("", "") + Execute(""), 10},
                           {kB, ParseComplete() + Error("22012", "division by zero"), 20},
                           {kF, Parse("", "SELECT 5") + Bind("", "") + Execute("") + Sync(), 30},
                           {kB, Ready('E'), 40},
                           {kF, Query("SELECT 6"), 50},
                           {kB, Complete("SELECT 1") + Ready(), 60}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT 1/0");
  CHECK(run.sink.got[1].text == "SELECT 6");
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("pgsql session: unknown prepared statement, suspended portal, Close", "[pgsql]") {
  Run run;
  Feed(run,
       With(Login(),
            {{kF, Bind("", "before_capture") + Execute("", 2) + Execute("", 2) + Sync(), 10},
             {kB,
              BindComplete() + DataRow("a") + DataRow("b") + Suspended() + DataRow("c") +
                  Complete("SELECT 1") + Ready(),
              20},
             {kF, Parse("x", "SELECT 9") + Close('S', "x") + Bind("", "x") + Execute("") + Sync(),
              30},
             {kB, ParseComplete() + CloseComplete() + Error("26000", "no such statement") + Ready(),
              40}}));
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].text.empty());
  CHECK(run.sink.got[0].statement_name == "before_capture");
  CHECK(run.sink.got[0].returned_rows == 2);
  CHECK(run.sink.got[0].command_tag.empty());
  CHECK(run.sink.got[1].statement_name == "before_capture");
  CHECK(run.sink.got[1].returned_rows == 1);
  CHECK(run.sink.got[2].text.empty());  // closed before the Bind
  CHECK(run.sink.got[2].statement_name == "x");
  CHECK(run.sink.got[2].status_code == "26000");
}

TEST_CASE("pgsql session: DEALLOCATE forgets a named statement", "[pgsql]") {
  Run run;
  Feed(run, With(Login(),
                 {{kF, Parse("Foo", "SELECT 1") + Parse("bar", "SELECT 2") + Sync(), 10},
                  {kB, ParseComplete() + ParseComplete() + Ready(), 11},
                  {kF, Query("DEALLOCATE \"Foo\"; DEALLOCATE PREPARE BAR"), 20},
                  {kB, Complete("DEALLOCATE") + Complete("DEALLOCATE") + Ready(), 21},
                  {kF, Bind("", "Foo") + Execute("") + Bind("", "bar") + Execute("") + Sync(), 30},
                  {kB,
                   BindComplete() + Complete("SELECT 1") + BindComplete() + Complete("SELECT 1") +
                       Ready(),
                   31}}));
  REQUIRE(run.sink.got.size() == 4);
  CHECK(run.sink.got[2].statement_name == "Foo");
  CHECK(run.sink.got[2].text.empty());
  CHECK(run.sink.got[3].text.empty());
}

TEST_CASE("pgsql session: a password on the wire never reaches a record", "[pgsql]") {
  const std::string pw = "s3cret-Pa55";
  Run run;
  // Also: a client that retries auth, and a SASL exchange.
  Feed(run,
       With(Login(), {{kF, Query("SELECT 1"), 10},
                      {kB, Complete("SELECT 1") + Ready(), 20},
                      {kF, Typed('p', "SCRAM-SHA-256" + std::string(1, '\0') + I32(11) + pw), 30},
                      {kF, Password(pw), 40}}));
  REQUIRE(run.sink.got.size() == 1);
  for (const Statement& s : run.sink.got) {
    CHECK(DescribeStatement(s).find(pw) == std::string::npos);
  }
  CHECK(run.info.user.find(pw) == std::string::npos);
  CHECK(run.info.database.find(pw) == std::string::npos);
  CHECK(run.info.application_name.find(pw) == std::string::npos);
}

TEST_CASE("pgsql session: mid-stream join decodes typed messages", "[pgsql]") {
  Run run;
  Feed(run, {{kF, Query("SELECT 1"), 10}, {kB, Complete("SELECT 1") + Ready(), 20}});
  CHECK(run.counters.midstream_joins == 1);
  CHECK(run.counters.invalid_messages == 0);
  REQUIRE(run.sink.got.size() == 1);
  CHECK(run.sink.got[0].text == "SELECT 1");
  CHECK(run.info.user.empty());

  // Joined in the middle of a message on both sides: resync, then decode.
  Run mid;
  const std::string q = Query("SELECT 'abcdefgh'");
  const std::string r = DataRow("zzzz") + Complete("SELECT 1") + Ready();
  Feed(mid, {{kF, q.substr(7) + Query("SELECT 2"), 10},
             {kB, r.substr(3), 20},
             {kB, Complete("SELECT 1") + Ready(), 30}});
  CHECK(mid.counters.midstream_joins == 1);
  REQUIRE_FALSE(mid.sink.got.empty());
  CHECK(mid.sink.got.back().text == "SELECT 2");
}

TEST_CASE("pgsql session: SSL accepted means encrypted, no records", "[pgsql]") {
  Run run;
  Feed(run, {{kF, SslRequest(), 1},
             {kB, "S", 2},
             {kF, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 client hello Q"s, 3},
             {kB, "\x16\x03\x03\x00\x7a\x02 server hello"s, 4},
             {kF, Query("SELECT 1"), 5}});
  CHECK(run.counters.encrypted_connections == 1);
  CHECK(run.counters.invalid_messages == 0);
  CHECK(run.sink.got.empty());

  Run gss;
  Feed(gss, {{kF, GssEncRequest(), 1}, {kB, "G", 2}, {kF, "\x00\x00\x01\x00 token"s, 3}});
  CHECK(gss.counters.encrypted_connections == 1);
  CHECK(gss.sink.got.empty());
}

TEST_CASE("pgsql session: SSL refused, then a normal startup", "[pgsql]") {
  Run run;
  Feed(run, {{kF, SslRequest(), 1},
             {kB, "N", 2},
             {kF, Startup("carol", "db"), 3},
             {kB, Handshake(), 4},
             {kF, Query("SELECT 1"), 5},
             {kB, Complete("SELECT 1") + Ready(), 6}});
  CHECK(run.counters.encrypted_connections == 0);
  CHECK(run.info.user == "carol");
  REQUIRE(run.sink.got.size() == 1);
}

TEST_CASE("pgsql session: CancelRequest keeps nothing", "[pgsql]") {
  Run run;
  Feed(run, {{kF, CancelRequest(), 1}});
  CHECK(run.sink.got.empty());
  CHECK(run.counters.invalid_messages == 0);
  CHECK(run.counters.midstream_joins == 0);
}

TEST_CASE("pgsql session: gap inside a DataRow keeps framing", "[pgsql]") {
  Run run;
  const std::string row = DataRow(std::string(5000, 'r'));
  Feed(run, With(Login(), {{kF, Query("SELECT big FROM t"), 10},
                           {kB, RowDesc() + row.substr(0, 100), 20},
                           {kB, "", 21, 4000},
                           {kB, row.substr(4100) + Complete("SELECT 1") + Ready(), 30},
                           {kF, Query("SELECT 2"), 40},
                           {kB, Complete("SELECT 1") + Ready(), 50}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].capture_gap);
  CHECK(run.sink.got[0].command_tag == "SELECT 1");
  CHECK(run.sink.got[0].status_code == "00000");
  CHECK_FALSE(run.sink.got[1].capture_gap);
  CHECK(run.counters.gaps == 1);
  CHECK(run.counters.gap_bytes == 4000);
  CHECK(run.counters.resyncs == 0);
}

TEST_CASE("pgsql session: gap over a header resyncs without losing the connection", "[pgsql]") {
  Run run;
  const std::string resp = DataRow("1") + Complete("SELECT 1") + Ready();
  Feed(run, With(Login(), {{kF, Query("SELECT 1"), 10},
                           {kB, "", 20, resp.size() - 6},  // everything but ReadyForQuery
                           {kB, resp.substr(resp.size() - 6), 30},
                           {kF, Query("SELECT 2"), 40},
                           {kB, Complete("SELECT 1") + Ready(), 50}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT 1");
  CHECK(run.sink.got[0].capture_gap);
  CHECK(run.sink.got[0].status_code.empty());  // outcome unknown
  CHECK(run.sink.got[1].text == "SELECT 2");
  CHECK_FALSE(run.sink.got[1].capture_gap);
  CHECK(run.sink.got[1].status_code == "00000");
  CHECK(run.counters.resyncs == 1);
}

TEST_CASE("pgsql session: garbage and hostile lengths never crash or stall", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF, "Q" + I32(0xfffffff0u) + "junk", 10},
                           {kF, "X" + I32(2) + Query("SELECT 1"), 11},
                           {kB, "D" + I32(1) + "zz" + Complete("SELECT 1") + Ready(), 20}}));
  CHECK(run.counters.invalid_messages >= 2);
  REQUIRE(run.sink.got.size() == 1);
  CHECK(run.sink.got[0].text == "SELECT 1");
  CHECK(run.sink.got[0].capture_gap);  // framing was lost while it was in flight
}

TEST_CASE("pgsql session: pending statements come out on close", "[pgsql]") {
  Run run;
  Feed(run, With(Login(), {{kF, Query("SELECT pg_sleep(100); SELECT 2"), 10},
                           {kF, Parse("", "SELECT 3") + Bind("", "") + Execute("") + Sync(), 20}}));
  REQUIRE(run.sink.got.size() == 3);
  for (const Statement& s : run.sink.got) {
    CHECK(s.capture_gap);
    CHECK(s.status_code.empty());
    CHECK(s.end_ns == 21);
  }
  CHECK(run.sink.got[0].text == "SELECT pg_sleep(100)");
  CHECK(run.sink.got[2].text == "SELECT 3");
}

TEST_CASE("pgsql session: application_name follows ParameterStatus", "[pgsql]") {
  Run run;
  Feed(run,
       With(Login(), {{kF, Query("SET application_name = 'b'"), 10},
                      {kB, Complete("SET") + ParamStatus("application_name", "b") + Ready(), 20}}));
  CHECK(run.info.application_name == "b");
}

TEST_CASE("pgsql session: every field truncated, message by message", "[pgsql]") {
  // Each message is cut to every shorter body, re-framed with a correct length
  // so the framer accepts it; the session must cope with what is left.
  const std::vector<std::pair<Direction, std::string>> messages = {
      {kF, Parse("name", "SELECT $1") + std::string()},
      {kF, Bind("portal", "name", "value")},
      {kF, Execute("portal")},
      {kF, Close('S', "name")},
      {kF, Query("SELECT 1; SELECT 2")},
      {kB, Error("22012", "division by zero")},
      {kB, Complete("INSERT 0 12")},
      {kB, ParamStatus("application_name", "x")},
  };
  for (const auto& [dir, msg] : messages) {
    const std::string body = msg.substr(5);
    for (size_t cut = 0; cut <= body.size(); ++cut) {
      const std::string cut_msg = Typed(msg[0], body.substr(0, cut));
      Run run;
      std::vector<Chunk> chunks = Login();
      if (dir == kF) {
        chunks.push_back({kF, cut_msg + Sync(), 10});
        chunks.push_back({kB, Ready(), 20});
      } else {
        chunks.push_back({kF, Parse("", "SELECT 1") + Bind("", "") + Execute("") + Sync(), 10});
        chunks.push_back({kB, ParseComplete() + BindComplete() + cut_msg + Ready(), 20});
      }
      chunks.push_back({kF, Query("SELECT 99"), 30});
      chunks.push_back({kB, Complete("SELECT 1") + Ready(), 40});
      Feed(run, chunks);
      // Whatever the cut did (a body too short for its type is invalid and
      // resynced over), the connection keeps decoding.
      REQUIRE_FALSE(run.sink.got.empty());
      CHECK(run.sink.got.back().text == "SELECT 99");
    }
  }
}

TEST_CASE("pgsql session: a refused login is counted, by reason, and makes no record",
          "[pgsql]") {
  Run wrong_password;
  Feed(wrong_password, {{kF, Startup("alice", "shop"), 1},
                        {kB, AuthCleartext(), 2},
                        {kF, Password("not-it"), 3},
                        {kB, Error("28P01", "password authentication failed"), 4}});
  CHECK(wrong_password.sink.got.empty());
  CHECK(wrong_password.counters.login_failures_authentication == 1);
  CHECK(wrong_password.counters.login_failures_other == 0);

  Run no_database;
  Feed(no_database, {{kF, Startup("alice", "nowhere"), 1},
                     {kB, Error("3D000", "database \"nowhere\" does not exist"), 2}});
  CHECK(no_database.sink.got.empty());
  CHECK(no_database.counters.login_failures_authentication == 0);
  CHECK(no_database.counters.login_failures_other == 1);

  // Joined mid-stream: an error before any ReadyForQuery is not a login.
  Run midstream;
  Feed(midstream, {{kF, Query("SELECT 1/0"), 1}, {kB, Error("22012", "division by zero"), 2}});
  CHECK(midstream.counters.login_failures_authentication == 0);
  CHECK(midstream.counters.login_failures_other == 0);
}

TEST_CASE("pgsql session: a reused Query state carries nothing into the next Query", "[pgsql]") {
  // Each Query reuses the previous one's buffers (spare_query_): rows, errors,
  // flags and text of one record must not leak into the next.
  Run run;
  const std::string long_text = "SELECT '" + std::string(300, 'x') + "'";
  Feed(run, With(Login(), {{kF, Query(long_text + "; SELECT 1/0"), 10},
                           {kB, DataRow("x") + Complete("SELECT 1"), 20},
                           {kB, Error("22012", "division by zero") + Ready(), 30},
                           {kF, Query("BEGIN"), 40},
                           {kB, Complete("BEGIN") + Ready(), 50},
                           {kF, Query("SELECT 2;"), 60},
                           {kB, DataRow("2") + Complete("SELECT 1") + Ready(), 70}}));
  REQUIRE(run.sink.got.size() == 4);
  CHECK(run.sink.got[0].text == long_text);
  CHECK(run.sink.got[0].returned_rows == 1);
  CHECK(run.sink.got[1].status_code == "22012");
  const Statement& begin = run.sink.got[2];
  CHECK(begin.text == "BEGIN");
  CHECK(begin.start_ns == 40);
  CHECK(begin.end_ns == 50);
  CHECK(begin.status_code == "00000");
  CHECK(begin.error_message.empty());
  CHECK(begin.command_tag == "BEGIN");
  CHECK_FALSE(begin.returned_rows.has_value());
  CHECK_FALSE(begin.text_truncated);
  CHECK_FALSE(begin.capture_gap);
  CHECK(begin.request_bytes == Query("BEGIN").size());
  const Statement& two = run.sink.got[3];
  CHECK(two.text == "SELECT 2");
  CHECK(two.returned_rows == 1);
  CHECK(two.start_ns == 60);
  CHECK(run.counters.unmatched_responses == 0);
}
