// SPDX-License-Identifier: Apache-2.0
// The decoder on synthetic streams built with the encoder in my_wire.h.
#include <catch2/catch.hpp>

#include "my_wire.h"

using namespace mytest;

namespace {
constexpr auto kC = Direction::kClient;
constexpr auto kS = Direction::kServer;
constexpr const char* kToken = "TOKEN-0123456789abcd";  // 20 bytes of "auth response"

std::vector<Chunk> Login(uint32_t caps) {
  return {{kS, Greeting(), 1},
          {kC, HandshakeResponse(caps, "alice", "shop", kToken), 2},
          {kS, Ok(2), 3}};
}
std::vector<Chunk> With(std::vector<Chunk> head, const std::vector<Chunk>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}
std::string Exec(uint32_t id, const std::string& params) {
  return Command(0x17, U32(id) + '\0' + U32(1) + params);
}
}  // namespace

TEST_CASE("mysql session: handshake and one query, EOF on and off", "[mysql]") {
  for (bool deprecate : {false, true}) {
    INFO(deprecate);
    Run run;
    const uint32_t caps = kBaseCaps | (deprecate ? kDeprecateEof : 0);
    Feed(run, With(Login(caps), {{kC, Query("SELECT c FROM t"), 10},
                                 {kS, ResultSet(1, {"a", "b", "c"}, !deprecate), 20}}));
    CHECK(run.info.user == "alice");
    CHECK(run.info.database == "shop");
    REQUIRE(run.sink.got.size() == 1);
    const Statement& s = run.sink.got[0];
    CHECK(s.text == "SELECT c FROM t");
    CHECK(s.returned_rows == 3);
    CHECK(s.command_tag == "RESULTSET");
    CHECK(s.status_code == "00000");
    CHECK(s.start_ns == 10);
    CHECK(s.end_ns == 20);
    CHECK(s.request_bytes == Query("SELECT c FROM t").size());
    CHECK(s.response_bytes == ResultSet(1, {"a", "b", "c"}, !deprecate).size());
    CHECK(DescribeStatement(s).find(kToken) == std::string::npos);
  }
}

TEST_CASE("mysql session: multi-statement, multi-result, error stops the rest", "[mysql]") {
  Run run;
  Feed(run, With(Login(kBaseCaps),
                 {{kC, Query("INSERT INTO t VALUES (1); SELECT 'a;b' ; SELECT x; SELECT 2"), 10},
                  {kS, Ok(1, 1, 2 | 8), 20},
                  {kS, ResultSet(2, {"a;b"}, true, 2 | 8), 30},
                  {kS, Err(6, 1054, "42S22", "Unknown column 'x'"), 40}}));
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].text == "INSERT INTO t VALUES (1)");
  CHECK(run.sink.got[0].returned_rows == 1);
  CHECK(run.sink.got[1].text == "SELECT 'a;b'");
  CHECK(run.sink.got[1].start_ns == 20);
  CHECK(run.sink.got[1].end_ns == 30);
  CHECK(run.sink.got[2].text == "SELECT x");
  CHECK(run.sink.got[2].status_code == "1054");
  CHECK(run.sink.got[2].sqlstate == "42S22");
  CHECK(run.sink.got[2].command_tag == "ERR 1054");
  CHECK(run.sink.got[2].error_message == "Unknown column 'x'");
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("mysql session: CALL collects its result sets, compound text merged", "[mysql]") {
  Run run;
  Feed(run, With(Login(kBaseCaps),
                 {{kC, Query("CALL p(); SELECT 1"), 10},
                  {kS, ResultSet(1, {"x", "y"}, true, 2 | 8), 20},
                  {kS, ResultSet(6, {"z"}, true, 2 | 8), 30},
                  {kS, Ok(10, 0, 2 | 8), 40},
                  {kS, ResultSet(11, {"1"}, true), 50},
                  {kC, Query("CREATE PROCEDURE q() BEGIN SELECT 1; SELECT 2; END"), 60},
                  {kS, Ok(1), 70}}));
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].text == "CALL p()");
  CHECK(run.sink.got[0].returned_rows == 3);
  CHECK(run.sink.got[0].end_ns == 40);
  CHECK(run.sink.got[1].text == "SELECT 1");
  CHECK(run.sink.got[2].text == "CREATE PROCEDURE q() BEGIN SELECT 1; SELECT 2; END");
  CHECK(run.sink.got[2].status_code == "00000");
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("mysql session: without CLIENT_MULTI_STATEMENTS the text is one statement", "[mysql]") {
  Run run;
  Feed(run, With(Login(kBaseCaps & ~0x00010000u),
                 {{kC, Query("SELECT 1; SELECT 2"), 10},
                  {kS, Err(1, 1064, "42000", "syntax"), 20},
                  {kC, Command(0x1b, U16(0)), 30},  // COM_SET_OPTION multi-statements on
                  {kS, Eof(1), 40},
                  {kC, Query("SELECT 1; SELECT 2"), 50},
                  {kS, ResultSet(1, {"1"}, true, 2 | 8) + ResultSet(5, {"2"}, true), 60}}));
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].text == "SELECT 1; SELECT 2");
  CHECK(run.sink.got[0].status_code == "1064");
  CHECK(run.sink.got[0].sqlstate == "42000");
  CHECK(run.sink.got[1].text == "SELECT 1");
  CHECK(run.sink.got[2].text == "SELECT 2");
}

TEST_CASE("mysql session: prepared statements, parameters, unresolved execute", "[mysql]") {
  Run run;
  const std::string params = std::string(1, '\x02') + '\x01' + U16(8) + U16(253) + U16(3 | 0x8000) +
                             std::string("\x2a\0\0\0\0\0\0\0", 8) + U32(7);
  Feed(run, With(Login(kBaseCaps | kDeprecateEof),
                 {{kC, Command(0x16, "SELECT ? + ?, ?"), 10},
                  {kS, PrepareOk(1, 7, 1, 3, false), 20},
                  {kC, Exec(7, params), 30},
                  {kS, ResultSet(1, {"x"}, false), 40},
                  {kC, Exec(99, ""), 50},
                  {kS, Ok(1), 60},
                  {kC, Command(0x19, U32(7)), 70},  // COM_STMT_CLOSE: no answer
                  {kC, Exec(7, ""), 80},
                  {kS, Err(1, 1243, "HY000", "Unknown prepared statement handler"), 90}}));
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].text == "SELECT ? + ?, ?");
  CHECK(run.sink.got[0].statement_name == "7");
  CHECK_FALSE(run.sink.got[0].statement_unresolved);
  CHECK(run.sink.got[0].returned_rows == 1);
  CHECK(run.sink.got[0].start_ns == 30);
  CHECK(run.sink.got[1].text.empty());
  CHECK(run.sink.got[1].statement_name == "99");
  CHECK(run.sink.got[1].statement_unresolved);
  CHECK(run.sink.got[2].statement_name == "7");
  CHECK(run.sink.got[2].statement_unresolved);
  CHECK(run.sink.got[2].text.empty());
  CHECK(run.sink.got[2].command_tag == "ERR 1243");
  CHECK(run.counters.unresolved_statements == 2);
  // Parameter 1 is NULL (bitmap bit 1); the unsigned LONG is 7.
  CHECK(run.params == std::vector<std::string>{"7#0=42", "7#1=NULL", "7#2=7"});
  CHECK(run.sink.got[0].parameters ==
        std::vector<std::optional<std::string>>{"42", std::nullopt, "7"});
  CHECK(run.sink.got[1].parameters.empty());
}

TEST_CASE("mysql session: LOCAL INFILE content is counted, never kept", "[mysql]") {
  Run run;
  Feed(run, With(Login(kBaseCaps), {{kC, Query("LOAD DATA LOCAL INFILE 'f' INTO TABLE t"), 10},
                                    {kS, Packet(1, "\xfbrows.csv"), 20},
                                    {kC, Packet(2, "top-secret-line\n") + Packet(3, ""), 30},
                                    {kS, Ok(4, 1), 40},
                                    {kC, Query("SELECT 1"), 50},
                                    {kS, ResultSet(1, {"1"}, true), 60}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].returned_rows == 1);
  CHECK(run.sink.got[0].end_ns == 40);
  CHECK(run.counters.local_infile_bytes == 16);
  CHECK(run.sink.got[1].text == "SELECT 1");
  for (const Statement& s : run.sink.got)
    CHECK(DescribeStatement(s).find("top-secret") == std::string::npos);
}

TEST_CASE("mysql session: cleartext auth switch and COM_CHANGE_USER never leak", "[mysql]") {
  Run run;
  Feed(run, {{kS, Greeting(), 1},
             {kC, HandshakeResponse(kBaseCaps, "alice", "shop", kToken), 2},
             {kS, Packet(2, "\xfe" + CStr("mysql_clear_password")), 3},
             {kC, Packet(3, CStr("Cleartext-PW-99")), 4},
             {kS, Ok(4), 5},
             {kC, Command(0x11, CStr("bob") + char(15) + "Cleartext-PW-99" + CStr("sales")), 6},
             {kS, Packet(1, "\xfe" + CStr("mysql_clear_password")), 7},
             {kC, Packet(2, CStr("Cleartext-PW-99")), 8},
             {kS, Ok(3), 9},
             {kC, Query("SELECT 1"), 10},
             {kS, ResultSet(1, {"1"}, true), 11}});
  CHECK(run.info.user == "bob");
  CHECK(run.info.database == "sales");
  REQUIRE(run.sink.got.size() == 1);
  CHECK(DescribeStatement(run.sink.got[0]).find("Cleartext") == std::string::npos);
  CHECK(run.counters.invalid_packets == 0);
}

TEST_CASE("mysql session: SSL request and compression stop decoding", "[mysql]") {
  {
    Run run;
    Feed(run, {{kS, Greeting(), 1},
               {kC, SslRequest(kBaseCaps), 2},
               {kC, "\x16\x03\x01garbage", 3},
               {kS, "\x16\x03\x03more", 4},
               {kC, Query("SELECT 1"), 5}});  // looks like a command: still never decoded
    CHECK(run.counters.encrypted_connections == 1);
    CHECK(run.sink.got.empty());
    CHECK(run.counters.invalid_packets == 0);
  }
  {
    Run run;
    Feed(run, With(Login(kBaseCaps | 0x20), {{kC, "\x0d\x00\x00\x00\x00\x00\x00x", 10}}));
    CHECK(run.counters.compressed_connections == 1);
    CHECK(run.sink.got.empty());
  }
}

TEST_CASE("mysql session: over captured TLS the plaintext handshake and commands decode",
          "[mysql]") {
  // What the agent sees with libssl probed: the SSL request in plaintext, then
  // (TLS handshake suppressed) the HandshakeResponse as sequence 2 and the
  // session's plaintext, as the server's SSL_read/SSL_write return it.
  std::string response = HandshakeResponse(kBaseCaps | 0x800, "tess", "vault", kToken);
  response[3] = 2;  // sequence 2 after the SSL request
  const std::vector<Chunk> chunks = {
      {kS, Greeting(), 1}, {kC, SslRequest(kBaseCaps), 2}, {kC, response, 3},
      {kS, Ok(3), 4},      {kC, Query("SELECT 1"), 5},     {kS, ResultSet(1, {"1"}, true), 6}};
  for (size_t piece : {size_t{0}, size_t{1}, size_t{2}, size_t{3}}) {
    INFO("piece " << piece);
    Run run;
    Feed(run, chunks, piece);
    CHECK(run.info.user == "tess");
    CHECK(run.info.database == "vault");
    CHECK(run.counters.encrypted_connections == 0);
    CHECK(run.counters.invalid_packets == 0);
    REQUIRE(run.sink.got.size() == 1);
    CHECK(run.sink.got[0].text == "SELECT 1");
    CHECK(run.sink.got[0].returned_rows == 1);
  }
}

TEST_CASE("mysql session: COM_INIT_DB, session-state schema, ping, quit", "[mysql]") {
  Run run;
  Feed(run, With(Login(kBaseCaps), {{kC, Command(0x0e, ""), 10},
                                    {kS, Ok(1), 11},
                                    {kC, Command(0x02, "we`ird"), 12},
                                    {kS, Ok(1), 13},
                                    {kC, Query("USE other"), 14},
                                    {kS, OkSchema(1, "other"), 15},
                                    {kC, Command(0x01, ""), 16}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "USE `we``ird`");
  CHECK(run.sink.got[0].command_tag == "COM_INIT_DB");
  CHECK(run.sink.got[1].text == "USE other");
  CHECK(run.info.database == "other");
}

TEST_CASE("mysql session: multi-packet query and truncation", "[mysql]") {
  Run run;
  run.limits.max_query_bytes = 100;
  const std::string big = "SELECT '" + std::string(0xffffff + 10, 'x') + "'";
  Feed(run, With(Login(kBaseCaps), {{kC, Query(big), 10}, {kS, ResultSet(3, {"x"}, true), 20}}));
  REQUIRE(run.sink.got.size() == 1);
  CHECK(run.sink.got[0].text == big.substr(0, 100));
  CHECK(run.sink.got[0].text_truncated);
  CHECK(run.counters.truncated_queries == 1);
  CHECK(run.sink.got[0].returned_rows == 1);
  CHECK(run.sink.got[0].request_bytes == big.size() + 1 + 8);
}

TEST_CASE("mysql session: gap inside a row is skipped exactly", "[mysql]") {
  Run run;
  const std::string rs = ResultSet(1, {"aaaa", std::string(1000, 'b'), "cc"}, true);
  const size_t row2 = rs.find(std::string(1000, 'b'));
  Feed(run, With(Login(kBaseCaps), {{kC, Query("SELECT c FROM t"), 10},
                                    {kS, rs.substr(0, row2 + 10), 20},
                                    {kS, "", 21, 500},
                                    {kS, rs.substr(row2 + 510), 22},
                                    {kC, Query("SELECT 2"), 30},
                                    {kS, ResultSet(1, {"2"}, true), 40}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].returned_rows == 3);
  CHECK(run.sink.got[0].capture_gap);
  CHECK(run.sink.got[0].status_code == "00000");
  CHECK_FALSE(run.sink.got[1].capture_gap);
  CHECK(run.counters.gaps == 1);
  CHECK(run.counters.resyncs == 0);
}

TEST_CASE("mysql session: gap over headers resyncs on the next command", "[mysql]") {
  Run run;
  const std::string rs = ResultSet(1, {"aaaa", "bbbb", "cccc"}, true);
  Feed(run, With(Login(kBaseCaps), {{kC, Query("SELECT c FROM t"), 10},
                                    {kS, rs.substr(0, 20), 20},
                                    {kS, "", 21, 40},
                                    {kS, rs.substr(60), 22},
                                    {kC, "", 25, 7},  // client bytes lost too
                                    {kC, "junk" + Query("SELECT 2"), 30},
                                    {kS, ResultSet(1, {"2"}, true), 40}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT c FROM t");
  CHECK(run.sink.got[0].capture_gap);
  CHECK(run.sink.got[0].status_code.empty());  // outcome unknown
  CHECK(run.sink.got[1].text == "SELECT 2");
  CHECK(run.sink.got[1].returned_rows == 1);
  CHECK(run.sink.got[1].status_code == "00000");
  CHECK(run.counters.resyncs >= 1);
}

TEST_CASE("mysql session: mid-stream join", "[mysql]") {
  Run run;
  Feed(run, {{kS, "tail of some old row bytes", 1},
             {kC, Query("SELECT 5"), 10},
             {kS, ResultSet(1, {"5"}, false), 20}});  // no EOF after columns: learned
  REQUIRE(run.sink.got.size() == 1);
  CHECK(run.sink.got[0].text == "SELECT 5");
  CHECK(run.sink.got[0].returned_rows == 1);
  CHECK(run.counters.midstream_joins == 1);
  CHECK(run.info.user.empty());
}

TEST_CASE("mysql session: hostile lengths and truncated fields never crash", "[mysql]") {
  Run run;
  std::vector<Chunk> chunks = Login(kBaseCaps);
  chunks.push_back({kC, Query("SELECT 1"), 10});
  chunks.push_back({kS, Packet(1, "\xfe\xff\xff\xff\xff\xff\xff\xff\xff"), 11});  // huge count
  chunks.push_back({kC, Command(0x17, "\x01"), 12});                              // cut execute
  chunks.push_back({kS, Packet(1, "\xff\x01"), 13});                              // cut ERR
  chunks.push_back({kC, Command(0x16, "SELECT ?"), 14});
  chunks.push_back({kS, Packet(1, std::string("\0\x01", 2)), 15});  // cut prepare OK
  chunks.push_back({kC, std::string("\xff\xff\xff\x00\x03", 5) + "SEL", 16});
  Feed(run, chunks);
  for (const Statement& s : run.sink.got) CHECK(s.connection == nullptr);
  CHECK(run.sink.got.size() >= 2);
}

TEST_CASE("mysql session: db.system.name from the greeting's server version", "[mysql]") {
  // OpenTelemetry: a MariaDB server is "mariadb", a MySQL server "mysql".
  const std::pair<const char*, const char*> cases[] = {
      {"5.5.5-10.11.6-MariaDB-0+deb12u1", "mariadb"},
      {"11.4.2-MariaDB-log", "mariadb"},
      {"8.0.36-0ubuntu0.22.04.1", "mysql"},
      {"8.4.0", "mysql"}};
  for (const auto& [version, system] : cases) {
    INFO(version);
    Run run;
    run.info.db_system = "mysql";  // what the observer starts with
    Feed(run, {{kS, Greeting(kBaseCaps | kDeprecateEof | 0x800 | 0x20, version), 1},
               {kC, HandshakeResponse(kBaseCaps, "alice", "shop", kToken), 2},
               {kS, Ok(2), 3},
               {kC, Query("SELECT * FROM nosuch"), 10},
               {kS, Err(1, 1146, "42S02", "Table 'shop.nosuch' doesn't exist"), 20}});
    CHECK(run.info.db_system == system);
    REQUIRE(run.sink.got.size() == 1);
    // db.response.status_code is the error number, the SQLSTATE kept aside.
    CHECK(run.sink.got[0].status_code == "1146");
    CHECK(run.sink.got[0].sqlstate == "42S02");
    CHECK(run.sink.got[0].error_message == "Table 'shop.nosuch' doesn't exist");
  }
}

TEST_CASE("mysql session: a connection joined mid-stream keeps the system it was given",
          "[mysql]") {
  Run run;
  run.info.db_system = "mariadb";  // the observer's guess from the server executable
  Feed(run, {{kC, Query("SELECT 1"), 10}, {kS, ResultSet(1, {"1"}, false), 20}});
  CHECK(run.info.db_system == "mariadb");
  REQUIRE(run.sink.got.size() == 1);
  CHECK(run.sink.got[0].status_code == "00000");
  CHECK(run.sink.got[0].sqlstate.empty());
}

TEST_CASE(
    "mysql session: a false command header at a mid-stream join does not swallow the "
    "connection",
    "[mysql]") {
  // Capture joined in the middle of a client packet whose bytes happen to read as a command
  // header: sequence 0, COM_QUERY, length 0x0f0000 (983 KB, a connection's worth of
  // statements). Before: the framer read on through that length, the server side waited for
  // a command that never came, and nothing of the connection was ever recorded. The server's
  // answer proves the guess wrong (it answers only whole commands): the next command counts.
  Run run;
  const std::string tail_of_packet = std::string("\x00\x00\x0f\x00\x03junk", 9);
  Feed(run, {{kC, tail_of_packet, 10},
             {kS, Ok(1), 11},  // the answer to the packet we joined inside
             {kC, Query("SELECT 7"), 20},
             {kS, ResultSet(1, {"7"}, false), 21},
             {kC, Query("SELECT 8"), 30},
             {kS, ResultSet(1, {"8"}, false), 31}});
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT 7");
  CHECK(run.sink.got[0].capture_gap);  // bytes were skipped just before it
  CHECK(run.sink.got[1].text == "SELECT 8");
  CHECK_FALSE(run.sink.got[1].capture_gap);
  CHECK(run.sink.got[1].returned_rows == 1);
  CHECK(run.info.user.empty());  // never seen: left empty, not guessed
}

TEST_CASE("mysql session: COM_STATISTICS's bare-string answer ends it, the next query decodes",
          "[mysql]") {
  // The mariadb CLI's `status` sends COM_STATISTICS; the answer is a string with no header
  // byte ("Uptime: ..."), which must not be read as a result set of 'U' columns.
  Run run;
  Feed(run, With(Login(kBaseCaps | kDeprecateEof),
                 {{kC, Command(0x09, ""), 10},
                  {kS, Packet(1, "Uptime: 1  Threads: 1  Questions: 13  Slow queries: 0"), 20},
                  {kC, Query("SELECT 1"), 30},
                  {kS, ResultSet(1, {"1"}, false), 40}}));
  REQUIRE(run.sink.got.size() == 1);
  CHECK(run.sink.got[0].text == "SELECT 1");
  CHECK(run.sink.got[0].returned_rows == 1);
  CHECK(run.sink.got[0].status_code == "00000");
  CHECK(run.counters.invalid_packets == 0);
}
