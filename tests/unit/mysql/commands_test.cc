// SPDX-License-Identifier: Apache-2.0
// Issue 4, item 1: the commands and answers each get a test of their own
// (prepared statement life cycle, parameters in the record, unresolved ids,
// binary result sets, CALL through COM_STMT_EXECUTE, schema changes, refused
// logins), on synthetic streams from my_wire.h, whole and cut at every byte.
#include <catch2/catch.hpp>

#include "../support/chunking_check.h"
#include "my_wire.h"

using namespace mytest;

namespace {
constexpr auto kC = Direction::kClient;
constexpr auto kS = Direction::kServer;
constexpr uint32_t kCaps = kBaseCaps | kDeprecateEof;

std::vector<Chunk> Login(uint32_t caps, uint64_t ts = 1) {
  return {{kS, Greeting(), ts},
          {kC, HandshakeResponse(caps, "alice", "shop", "TOKEN-0123456789abcd"), ts + 1},
          {kS, Ok(2), ts + 2}};
}
std::vector<Chunk> With(std::vector<Chunk> head, const std::vector<Chunk>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}
std::string Exec(uint32_t id, const std::string& params) {
  return Command(0x17, U32(id) + '\0' + U32(1) + params);
}
std::string U64(uint64_t v) { return U32(uint32_t(v)) + U32(uint32_t(v >> 32)); }

// A binary-protocol result set of one LONGLONG column: rows are int<1> 0x00,
// a NULL bitmap of (columns + 7 + 2) / 8 bytes, then the values.
// https://mariadb.com/kb/en/resultset-row/#binary-resultset-row
Bytes BinaryResultSet(uint8_t seq, int rows, bool eof, uint16_t status = 2) {
  Bytes out = Packet(seq++, Lenenc(1));
  out += ColumnDef(seq++, "id");
  if (eof) out += Eof(seq++);
  for (int i = 0; i < rows; ++i) out += Packet(seq++, std::string(2, '\0') + U64(uint64_t(i)));
  out += eof ? Eof(seq, status) : Ok(seq, 0, status, '\xfe');
  return out;
}

// Records with the connection's schema and user at the moment each was
// emitted (the audit writer reads them then).
struct SchemaSink : dbwarden::StatementSink {
  void on_statement(const Statement& s) override {
    seen.push_back(s.text + " @" + s.connection->database + " by " + s.connection->user);
  }
  std::vector<std::string> seen;
};

std::vector<std::string> Describe(const std::vector<Chunk>& chunks, size_t piece) {
  Run run;
  Feed(run, chunks, piece);
  std::vector<std::string> out = run.sink.lines();
  for (const Statement& s : run.sink.got) {
    std::string p = s.statement_unresolved ? "unresolved" : "";
    for (const auto& v : s.parameters) p += "|" + (v ? "'" + *v + "'" : std::string("NULL"));
    out.push_back(p);
  }
  out.insert(out.end(), run.params.begin(), run.params.end());
  const Counters& k = run.counters;
  out.push_back(std::to_string(k.unresolved_statements) + "/" +
                std::to_string(k.unmatched_responses) + "/" + std::to_string(k.invalid_packets) +
                "/" + std::to_string(k.login_failures_authentication) + "/" +
                std::to_string(k.login_failures_other));
  return out;
}

// Prepare with 5 parameters (LONGLONG, DOUBLE, VAR_STRING, NULL, BLOB sent as
// long data), execute, reset (drops long data), execute again rebinding
// nothing, ping, close, quit. EOF packets on or off.
std::vector<Chunk> LifeCycle(bool eof) {
  const uint32_t caps = kBaseCaps | (eof ? 0 : kDeprecateEof);
  const std::string types = std::string(1, '\x01') + U16(8) + U16(5) + U16(253) + U16(6) + U16(252);
  // NULL bitmap: parameter 3 (bit 3), and parameter 4 (bit 4) as libmariadb
  // sets it for a parameter bound without a buffer: its value came as long
  // data, which wins (the server's rule), and has no bytes here.
  const std::string first = std::string(1, '\x18') + types + U64(42) + U64(0x400c000000000000) +
                            LenStr("O'Brien");
  // Second execute: nothing rebound, parameter 4 now NULL too, no long data.
  const std::string second =
      std::string(1, '\x18') + '\0' + U64(7) + U64(0x3ff8000000000000) + LenStr("x");
  return With(
      Login(caps),
      {{kC, Command(0x16, "INSERT INTO t VALUES (?, ?, ?, ?, ?)"), 10},
       {kS, PrepareOk(1, 3, 0, 5, eof), 11},
       {kC, Command(0x18, U32(3) + U16(4) + std::string("blob\0", 5)), 12},
       {kC, Command(0x18, U32(3) + U16(4) + "bytes"), 13},
       {kC, Exec(3, first), 14},
       {kS, Ok(1, 1), 15},
       {kC, Command(0x18, U32(3) + U16(4) + "dropped by reset"), 16},
       {kC, Command(0x1a, U32(3)), 17},  // COM_STMT_RESET
       {kS, Ok(1), 18},
       {kC, Exec(3, second), 19},
       {kS, Ok(1, 1), 20},
       {kC, Command(0x0e, ""), 21},  // COM_PING
       {kS, Ok(1), 22},
       {kC, Command(0x16, "SELECT id FROM t WHERE id > ?"), 23},
       {kS, PrepareOk(1, 4, 1, 1, eof), 24},
       {kC, Exec(4, std::string(1, '\0') + '\x01' + U16(3) + U32(0)), 25},
       {kS, BinaryResultSet(1, 4, eof), 26},
       {kC, Command(0x19, U32(3)), 27},  // COM_STMT_CLOSE: no answer
       {kC, Query("SELECT 1"), 28},
       {kS, ResultSet(1, {"1"}, eof), 29},
       {kC, Command(0x01, ""), 30}});  // COM_QUIT
}

}  // namespace

TEST_CASE("mysql commands: prepare, long data, execute, reset, ping, close, quit", "[mysql]") {
  for (bool eof : {true, false}) {
    INFO(eof);
    Run run;
    Feed(run, LifeCycle(eof));
    REQUIRE(run.sink.got.size() == 4);
    const Statement& a = run.sink.got[0];
    CHECK(a.text == "INSERT INTO t VALUES (?, ?, ?, ?, ?)");
    CHECK(a.statement_name == "3");
    CHECK(a.command_tag == "OK");
    CHECK(a.returned_rows == 1);
    CHECK(a.parameters == std::vector<std::optional<std::string>>{
                              "42", "3.5", "O'Brien", std::nullopt, std::string("blob\0bytes", 10)});
    const Statement& b = run.sink.got[1];
    // After COM_STMT_RESET the long data is gone; types stay bound.
    CHECK(b.parameters ==
          std::vector<std::optional<std::string>>{"7", "1.5", "x", std::nullopt, std::nullopt});
    CHECK(b.start_ns == 19);
    const Statement& c = run.sink.got[2];
    CHECK(c.text == "SELECT id FROM t WHERE id > ?");
    CHECK(c.statement_name == "4");
    CHECK(c.command_tag == "RESULTSET");
    CHECK(c.returned_rows == 4);  // binary rows (header 0x00) are rows, not OKs
    CHECK(c.parameters == std::vector<std::optional<std::string>>{"0"});
    CHECK(run.sink.got[3].text == "SELECT 1");
    CHECK(run.sink.got[3].returned_rows == 1);
    CHECK(run.counters.unmatched_responses == 0);
    CHECK(run.counters.invalid_packets == 0);
    CHECK(run.counters.unresolved_statements == 0);
    // The observer still sees every value, NULL spelled "NULL".
    CHECK(run.params.size() == 11);
    CHECK(run.params[3] == "3#3=NULL");
  }
}

TEST_CASE("mysql commands: execute of an id prepared before capture", "[mysql]") {
  Run run;
  // Joined mid-stream: the prepare was never seen. Two executes of id 9, one
  // failing; both come out, named by id, unresolved, counted.
  Feed(run, {{kC, Exec(9, std::string(1, '\0') + '\x01' + U16(3) + U32(5)), 10},
             {kS, BinaryResultSet(1, 2, false), 11},
             {kC, Exec(9, std::string(1, '\0') + '\0' + U32(5)), 12},
             {kS, Err(1, 1062, "23000", "Duplicate entry"), 13}});
  REQUIRE(run.sink.got.size() == 2);
  for (const Statement& s : run.sink.got) {
    CHECK(s.statement_name == "9");
    CHECK(s.statement_unresolved);
    CHECK(s.text.empty());
    CHECK(s.parameters.empty());  // parameter count unknown: values cannot be cut apart
  }
  CHECK(run.sink.got[0].returned_rows == 2);
  CHECK(run.sink.got[1].status_code == "1062");
  CHECK(run.sink.got[1].sqlstate == "23000");
  CHECK(run.counters.unresolved_statements == 2);
  CHECK(run.counters.midstream_joins == 1);
}

TEST_CASE("mysql commands: CALL through COM_STMT_EXECUTE sums its result sets", "[mysql]") {
  for (bool eof : {true, false}) {
    INFO(eof);
    Run run;
    const uint16_t more = 2 | 8;
    Feed(run, With(Login(kBaseCaps | (eof ? 0 : kDeprecateEof)),
                   {{kC, Command(0x16, "CALL report()"), 10},
                    {kS, PrepareOk(1, 1, 0, 0, eof), 11},
                    {kC, Exec(1, ""), 12},
                    {kS, BinaryResultSet(1, 3, eof, more), 13},
                    {kS, BinaryResultSet(eof ? 8 : 7, 2, eof, more), 14},
                    {kS, Ok(eof ? 14 : 12, 0, 2), 15},
                    {kC, Query("SELECT 2"), 16},
                    {kS, ResultSet(1, {"2"}, eof), 17}}));
    REQUIRE(run.sink.got.size() == 2);
    CHECK(run.sink.got[0].text == "CALL report()");
    CHECK(run.sink.got[0].returned_rows == 5);
    CHECK(run.sink.got[0].command_tag == "RESULTSET");
    CHECK(run.sink.got[0].end_ns == 15);
    CHECK(run.sink.got[1].text == "SELECT 2");
    CHECK(run.counters.unmatched_responses == 0);
  }
}

TEST_CASE("mysql commands: each record carries the schema it ran in", "[mysql]") {
  // Without session tracking the server reports a USE nowhere but in its
  // text; with it, in the OK. COM_INIT_DB in between.
  for (bool track : {false, true}) {
    INFO(track);
    ConnectionInfo info;
    Counters counters;
    SchemaSink sink;
    Session session(info, sink, Limits{}, counters);
    const uint32_t caps = track ? kBaseCaps : (kBaseCaps & ~0x00800000u);
    std::vector<Chunk> chunks =
        With(Login(caps), {{kC, Query("SELECT 1; USE `o``ther`; SELECT 2"), 10},
                           {kS, ResultSet(1, {"1"}, true, 2 | 8), 11},
                           {kS, track ? OkSchema(6, "o`ther", 2 | 8) : Ok(6, 0, 2 | 8), 12},
                           {kS, ResultSet(7, {"2"}, true), 13},
                           {kC, Command(0x02, "third"), 14},
                           {kS, Ok(1), 15},
                           {kC, Query("SELECT 3"), 16},
                           {kS, ResultSet(1, {"3"}, true), 17},
                           {kC, Query("use fourth"), 18},
                           {kS, track ? OkSchema(1, "fourth") : Ok(1), 19},
                           {kC, Query("USE nosuch"), 20},
                           {kS, Err(1, 1049, "42000", "Unknown database 'nosuch'"), 21},
                           {kC, Query("SELECT 4"), 22},
                           {kS, ResultSet(1, {"4"}, true), 23}});
    dbw_test::FeedChunks(session, chunks, 0, true);
    CHECK(sink.seen == std::vector<std::string>{"SELECT 1 @shop by alice",
                                                "USE `o``ther` @o`ther by alice",
                                                "SELECT 2 @o`ther by alice",
                                                "USE `third` @third by alice",
                                                "SELECT 3 @third by alice",
                                                "use fourth @fourth by alice",
                                                "USE nosuch @fourth by alice",
                                                "SELECT 4 @fourth by alice"});
  }
}

TEST_CASE("mysql commands: USE statement recognition", "[mysql]") {
  using dbwarden::mysql::UseSchema;
  CHECK(UseSchema("USE shop") == "shop");
  CHECK(UseSchema("use\t`a``b c` ") == "a`b c");
  CHECK(UseSchema("USE`x`") == "x");
  CHECK_FALSE(UseSchema("USER x"));
  CHECK_FALSE(UseSchema("USE"));
  CHECK_FALSE(UseSchema("USE a b"));
  CHECK_FALSE(UseSchema("USE `open"));
  CHECK_FALSE(UseSchema("SELECT 1"));
}

TEST_CASE("mysql commands: cursor fetch rows are counted, not misread as OKs", "[mysql]") {
  Run run;
  // MariaDB answers an execute with CURSOR_TYPE_READ_ONLY with the column
  // definitions and an EOF carrying SERVER_STATUS_CURSOR_EXISTS; rows come
  // from COM_STMT_FETCH (int<4> id, int<4> rows).
  Bytes opened = Packet(1, Lenenc(1)) + ColumnDef(2, "id") + Eof(3, 2 | 0x40);
  Bytes fetched = Packet(1, std::string(2, '\0') + U64(1)) + Packet(2, std::string(2, '\0') + U64(2)) +
                  Eof(3, 2 | 0x80);  // SERVER_STATUS_LAST_ROW_SENT
  Feed(run, With(Login(kBaseCaps), {{kC, Command(0x16, "SELECT id FROM t"), 10},
                                    {kS, PrepareOk(1, 2, 1, 0, true), 11},
                                    {kC, Command(0x17, U32(2) + '\x01' + U32(1)), 12},
                                    {kS, opened, 13},
                                    {kC, Command(0x1c, U32(2) + U32(100)), 14},
                                    {kS, fetched, 15},
                                    {kC, Query("SELECT 1"), 16},
                                    {kS, ResultSet(1, {"1"}, true), 17}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].statement_name == "2");
  CHECK(run.sink.got[1].text == "SELECT 1");
  CHECK(run.sink.got[1].returned_rows == 1);
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("mysql commands: refused logins are counted by kind, never recorded", "[mysql]") {
  SECTION("wrong password") {
    Run run;
    Feed(run, {{kS, Greeting(), 1},
               {kC, HandshakeResponse(kCaps, "alice", "shop", "TOKEN-0123456789abcd"), 2},
               {kS, Err(2, 1045, "28000", "Access denied for user 'alice'@'localhost'"), 3}});
    CHECK(run.counters.login_failures_authentication == 1);
    CHECK(run.counters.login_failures_other == 0);
    CHECK(run.sink.got.empty());
  }
  SECTION("after an authentication switch") {
    Run run;
    Feed(run, {{kS, Greeting(), 1},
               {kC, HandshakeResponse(kCaps, "alice", "shop", "TOKEN-0123456789abcd"), 2},
               {kS, Packet(2, "\xfe" + CStr("mysql_clear_password")), 3},
               {kC, Packet(3, CStr("cleartext-secret")), 4},
               {kS, Err(4, 1045, "28000", "Access denied"), 5}});
    CHECK(run.counters.login_failures_authentication == 1);
  }
  SECTION("unknown database") {
    Run run;
    Feed(run, {{kS, Greeting(), 1},
               {kC, HandshakeResponse(kCaps, "alice", "nosuch", "TOKEN-0123456789abcd"), 2},
               {kS, Err(2, 1049, "42000", "Unknown database 'nosuch'"), 3}});
    CHECK(run.counters.login_failures_authentication == 0);
    CHECK(run.counters.login_failures_other == 1);
  }
  SECTION("refused before the greeting (pre-4.1 ERR, no SQLSTATE)") {
    Run run;
    Feed(run, {{kS, Packet(0, "\xff" + U16(1040) + "Too many connections"), 1}});
    CHECK(run.counters.login_failures_other == 1);
    CHECK(run.counters.login_failures_authentication == 0);
  }
  SECTION("COM_CHANGE_USER refused") {
    Run run;
    Feed(run, With(Login(kCaps), {{kC, Command(0x11, CStr("bob") + '\x04' + "abcd" + CStr("shop")), 10},
                                  {kS, Err(1, 1045, "28000", "Access denied for user 'bob'"), 11}}));
    CHECK(run.counters.login_failures_authentication == 1);
    CHECK(run.info.user == "alice");
  }
}

TEST_CASE("mysql commands: same records at every chunk boundary", "[mysql]") {
  for (bool eof : {true, false}) {
    INFO(eof);
    dbw_test::CheckSameRecordsHoweverChunked(LifeCycle(eof), Describe);
  }
}

TEST_CASE(
    "mysql commands: joined mid-stream under MariaDB's cached metadata, executes and a later "
    "prepare are followed",
    "[mysql]") {
  // Found in a long-lived libmariadb connection opened before the agent: the client had
  // negotiated MARIADB_CLIENT_CACHE_METADATA, so a binary result set's column count carries
  // a "metadata follows" byte, 0 once the client has the definitions (none are sent). Not
  // knowing the flag, the decoder took rows for column definitions, lost the answers, and
  // never saw the prepare OK of a statement prepared later: its executes stayed unresolved.
  Run run;
  auto cached_rows = [](uint8_t seq, int rows) {
    Bytes out = Packet(seq++, Lenenc(1) + '\0');  // one column, no metadata follows
    for (int i = 0; i < rows; ++i) out += Packet(seq++, std::string(2, '\0') + U64(uint64_t(i)));
    return out + Ok(seq, 0, 2, '\xfe');
  };
  Feed(run, {{kC, Query("SELECT 1"), 10},
             {kS, ResultSet(1, {"1"}, false), 11},  // learns CLIENT_DEPRECATE_EOF
             {kC, Exec(1, std::string(1, '\0') + '\x01' + U16(8) + U64(7)), 12},
             {kS, cached_rows(1, 3), 13},
             {kC, Command(0x19, U32(1)), 14},  // COM_STMT_CLOSE
             {kC, Command(0x16, "SELECT ? AS n"), 15},
             {kS, PrepareOk(1, 2, 1, 1, false), 16},
             {kC, Exec(2, std::string(1, '\0') + '\x01' + U16(8) + U64(9)), 17},
             {kS, cached_rows(1, 1), 18}});
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[1].statement_unresolved);  // prepared before we joined
  CHECK(run.sink.got[1].returned_rows == 3);
  CHECK(run.sink.got[2].text == "SELECT ? AS n");
  CHECK_FALSE(run.sink.got[2].statement_unresolved);
  CHECK(run.sink.got[2].returned_rows == 1);
  REQUIRE(run.sink.got[2].parameters.size() == 1);
  CHECK(run.sink.got[2].parameters[0] == "9");
  CHECK(run.counters.unmatched_responses == 0);
}
