// SPDX-License-Identifier: Apache-2.0
// Protocol features beyond plain queries (issue 4): COPY both ways, pipelining,
// portals with row limits, asynchronous messages, FunctionCall, CancelRequest,
// errors in transactions, prepared-before-capture and bound parameters. Each
// stream is also cut at every byte boundary and must give the same records.
#include <catch2/catch.hpp>

#include <cstring>

#include "pg_wire.h"

using namespace pgtest;
using namespace std::string_literals;

namespace {
constexpr auto kF = Direction::kFrontend;
constexpr auto kB = Direction::kBackend;

std::vector<Chunk> Login() {
  return {{kF, Startup("alice", "shop", "app1"), 1}, {kB, Handshake(), 2}};
}

std::vector<Chunk> With(std::vector<Chunk> head, const std::vector<Chunk>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

// Every field the decoder fills, parameters and the unresolved flag included.
std::string Describe(const Statement& s) {
  std::string out = DescribeStatement(s) + '|' + (s.statement_unresolved ? "U" : "-") + '|';
  for (const auto& p : s.parameters) out += (p ? "'" + *p + "'" : "NULL"s) + ',';
  return out;
}

std::vector<std::string> Lines(const Run& run) {
  std::vector<std::string> out;
  for (const Statement& s : run.sink.got) out.push_back(Describe(s));
  return out;
}

// The records (and counters that matter) must not depend on where the
// capture cut the bytes: every single cut, and one byte at a time.
void CheckEveryBoundary(const std::vector<Chunk>& chunks) {
  Run whole;
  Feed(whole, chunks);
  const auto want = Lines(whole);
  dbw_test::ForEachSingleCut(chunks, [&](const std::vector<Chunk>& split, size_t c, size_t cut) {
    Run run;
    Feed(run, split);
    INFO("chunk " << c << " cut at " << cut);
    REQUIRE(Lines(run) == want);
    REQUIRE(run.counters.unresolved_statements == whole.counters.unresolved_statements);
    REQUIRE(run.counters.invalid_messages == 0);
  });
  Run bytewise;
  Feed(bytewise, chunks, 1);
  CHECK(Lines(bytewise) == want);
}

std::string Be(uint64_t v, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out.insert(out.begin(), static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

}  // namespace

TEST_CASE("pgsql features: COPY FROM STDIN counts rows, data is neither kept nor framed",
          "[pgsql]") {
  // CopyData whose payload looks like protocol messages ('Q' + length) must
  // stay data: the framer skips it by its own length.
  const std::string tricky = Query("DROP TABLE x") + "1\tQ\n";
  const auto chunks =
      With(Login(), {{kF, Query("COPY t FROM STDIN"), 10},
                     {kB, CopyInResponse(), 11},
                     {kF, CopyData(tricky) + CopyData("2\tsecret-row\n") + CopyDone(), 12},
                     {kB, Complete("COPY 2") + Ready(), 13}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 1);
  const Statement& s = run.sink.got[0];
  CHECK(s.text == "COPY t FROM STDIN");
  CHECK(s.returned_rows == 2);
  CHECK(s.command_tag == "COPY 2");
  CHECK(s.status_code == "00000");
  CHECK(Describe(s).find("secret-row") == std::string::npos);
  CHECK(Describe(s).find("DROP") == std::string::npos);
  CHECK(run.counters.unmatched_responses == 0);
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: COPY TO STDOUT counts rows, CopyFail gives the error", "[pgsql]") {
  const auto chunks = With(
      Login(),
      {{kF, Query("COPY t TO STDOUT"), 10},
       {kB, CopyOutResponse() + CopyData("1\tC\n") + CopyData("2\tZ\n") + CopyDone() +
                Complete("COPY 2") + Ready(),
        11},
       {kF, Query("COPY t FROM STDIN"), 12},
       {kB, CopyInResponse(), 13},
       {kF, CopyData("3\n") + CopyFail("client gave up"), 14},
       {kB, Error("57014", "COPY from stdin failed: client gave up") + Ready(), 15}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].returned_rows == 2);
  CHECK(run.sink.got[0].response_bytes > 0);
  CHECK(run.sink.got[1].status_code == "57014");
  CHECK_FALSE(run.sink.got[1].returned_rows.has_value());
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: pipelined Executes before one Sync come out in order", "[pgsql]") {
  const auto chunks = With(
      Login(),
      {{kF,
        Parse("", "INSERT INTO t VALUES ($1)") + Bind("", "", "1") + Execute("") +
            Bind("", "", "2") + Execute("") + Parse("", "SELECT a FROM t") + Bind("", "") +
            Execute("") + Sync(),
        10},
       {kB,
        ParseComplete() + BindComplete() + Complete("INSERT 0 1") + BindComplete() +
            Complete("INSERT 0 1") + ParseComplete() + BindComplete() + DataRow("1") +
            DataRow("2") + Complete("SELECT 2") + Ready(),
        20}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].parameters == std::vector<std::optional<std::string>>{"1"});
  CHECK(run.sink.got[1].parameters == std::vector<std::optional<std::string>>{"2"});
  CHECK(run.sink.got[2].text == "SELECT a FROM t");
  CHECK(run.sink.got[2].returned_rows == 2);
  CHECK(run.sink.got[2].parameters.empty());
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: a row-limited portal gives one record per Execute", "[pgsql]") {
  const auto chunks = With(
      Login(), {{kF, Parse("s", "SELECT g FROM big") + Bind("c", "s") + Execute("c", 2) + Flush(),
                 10},
                {kB, ParseComplete() + BindComplete() + DataRow("1") + DataRow("2") + Suspended(),
                 11},
                {kF, Execute("c", 2) + Flush(), 12},
                {kB, DataRow("3") + Complete("SELECT 1"), 13},
                {kF, Close('P', "c") + Sync(), 14},
                {kB, CloseComplete() + Ready(), 15}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text == "SELECT g FROM big");
  CHECK(run.sink.got[0].returned_rows == 2);
  CHECK(run.sink.got[0].command_tag.empty());
  CHECK(run.sink.got[0].status_code == "00000");
  CHECK(run.sink.got[1].text == "SELECT g FROM big");
  CHECK(run.sink.got[1].returned_rows == 1);
  CHECK(run.sink.got[1].command_tag == "SELECT 1");
  CHECK(run.counters.unmatched_responses == 0);
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: notices and notifications complete nothing", "[pgsql]") {
  const auto chunks =
      With(Login(), {{kB, Notification(77, "jobs", "idle"), 5},
                     {kF, Query("LISTEN jobs; DO $$BEGIN RAISE NOTICE 'hi'; END$$"), 10},
                     {kB,
                      Complete("LISTEN") + Notice("hi") + Notification(77, "jobs", "x") +
                          Complete("DO") + Ready(),
                      11},
                     {kB, Notification(78, "jobs", "later") + Notice("async"), 12},
                     {kF, Query("SELECT 1"), 13},
                     {kB, DataRow("1") + Complete("SELECT 1") + Ready(), 14}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 3);
  CHECK(run.sink.got[0].command_tag == "LISTEN");
  CHECK(run.sink.got[1].command_tag == "DO");
  CHECK(run.sink.got[1].status_code == "00000");
  CHECK(run.sink.got[2].returned_rows == 1);
  CHECK(run.counters.unmatched_responses == 0);
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: FunctionCall gives a record with its OID and arguments", "[pgsql]") {
  const auto chunks = With(
      Login(), {{kF, FunctionCall(954, {{Be(3, 4), 1}, {"", 0, true}}), 10},
                {kB, FunctionResult("abc") + Ready(), 11},
                {kF, FunctionCall(955, {{"x", 0}}), 12},
                {kB, Error("42883", "function does not exist") + Ready(), 13}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].command_tag == "FUNCTION CALL 954");
  CHECK(run.sink.got[0].text.empty());
  CHECK(run.sink.got[0].status_code == "00000");
  // No Parse: the binary argument's type is unknown, so it is hex.
  CHECK(run.sink.got[0].parameters ==
        std::vector<std::optional<std::string>>{"\\x00000003", std::nullopt});
  CHECK(run.sink.got[1].status_code == "42883");
  CHECK(run.counters.function_calls == 2);
  CHECK(run.counters.unmatched_responses == 0);
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: CancelRequest is counted, its key kept nowhere", "[pgsql]") {
  Run run;
  Feed(run, {{kF, CancelRequest(), 1}});
  CHECK(run.sink.got.empty());
  CHECK(run.counters.cancel_requests == 1);
  CHECK(run.counters.invalid_messages == 0);
  // The cancelled query on its own connection.
  Run victim;
  Feed(victim, With(Login(), {{kF, Query("SELECT pg_sleep(60)"), 10},
                              {kB, Error("57014", "canceling statement due to user request") +
                                       Ready(), 20}}));
  REQUIRE(victim.sink.got.size() == 1);
  CHECK(victim.sink.got[0].status_code == "57014");
}

TEST_CASE("pgsql features: GSSENCRequest refused, then SSLRequest refused, then plaintext",
          "[pgsql]") {
  const auto chunks = std::vector<Chunk>{{kF, GssEncRequest(), 1}, {kB, "N", 2},
                                         {kF, SslRequest(), 3},    {kB, "N", 4},
                                         {kF, Startup("bob", "db"), 5}, {kB, Handshake(), 6},
                                         {kF, Query("SELECT 1"), 7},
                                         {kB, Complete("SELECT 0") + Ready(), 8}};
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 1);
  CHECK(run.info.user == "bob");
  CHECK(run.counters.encrypted_connections == 0);
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: errors inside a transaction, each statement recorded", "[pgsql]") {
  const auto chunks = With(
      Login(), {{kF, Query("BEGIN"), 10},
                {kB, Complete("BEGIN") + Ready('T'), 11},
                {kF, Query("SELECT 1/0"), 12},
                {kB, Error("22012", "division by zero") + Ready('E'), 13},
                {kF, Parse("", "SELECT 1") + Bind("", "") + Execute("") + Sync(), 14},
                {kB, Error("25P02", "current transaction is aborted") + Ready('E'), 15},
                {kF, Query("ROLLBACK"), 16},
                {kB, Complete("ROLLBACK") + Ready('I'), 17}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 4);
  CHECK(run.sink.got[1].status_code == "22012");
  CHECK(run.sink.got[2].text == "SELECT 1");
  CHECK(run.sink.got[2].status_code == "25P02");
  CHECK(run.sink.got[3].command_tag == "ROLLBACK");
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: error recovery skips to Sync, then the next cycle is clean",
          "[pgsql]") {
  const auto chunks = With(
      Login(),
      {{kF,
        Parse("", "SELECT 1/0") + Bind("", "") + Execute("") + Parse("", "SELECT 2") +
            Bind("", "") + Execute("") + Sync() + Parse("", "SELECT 3") + Bind("", "") +
            Execute("") + Sync(),
        10},
       {kB,
        ParseComplete() + BindComplete() + Error("22012", "division by zero") + Ready() +
            ParseComplete() + BindComplete() + DataRow("3") + Complete("SELECT 1") + Ready(),
        11}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 2);  // SELECT 2 was skipped by the server
  CHECK(run.sink.got[0].status_code == "22012");
  CHECK(run.sink.got[1].text == "SELECT 3");
  CHECK(run.sink.got[1].returned_rows == 1);
  CHECK(run.counters.unmatched_responses == 0);
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: prepared before capture is unresolved, named and counted",
          "[pgsql]") {
  const auto chunks = With(
      Login(),
      {// Bind of a statement whose Parse we never saw.
       {kF, BindValues("", "old_stmt", {{"42"}}) + Execute("") + Sync(), 10},
       {kB, BindComplete() + DataRow("x") + Complete("SELECT 1") + Ready(), 11},
       // Execute of a portal whose Bind we never saw.
       {kF, Execute("old_portal", 0) + Sync(), 12},
       {kB, Complete("UPDATE 3") + Ready(), 13},
       // The unnamed statement, Parse never seen.
       {kF, Bind("", "") + Execute("") + Sync(), 14},
       {kB, BindComplete() + Complete("DELETE 0") + Ready(), 15},
       // Known: resolved.
       {kF, Parse("new", "SELECT 7") + Bind("", "new") + Execute("") + Sync(), 16},
       {kB, ParseComplete() + BindComplete() + DataRow("7") + Complete("SELECT 1") + Ready(),
        17}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 4);
  const auto& g = run.sink.got;
  CHECK(g[0].text.empty());
  CHECK(g[0].statement_name == "old_stmt");
  CHECK(g[0].statement_unresolved);
  CHECK(g[0].returned_rows == 1);
  CHECK(g[0].status_code == "00000");
  CHECK(g[0].parameters == std::vector<std::optional<std::string>>{"42"});
  CHECK(g[1].statement_name == "old_portal");
  CHECK(g[1].statement_unresolved);
  CHECK(g[1].returned_rows == 3);
  CHECK(g[2].statement_name.empty());
  CHECK(g[2].statement_unresolved);
  CHECK(g[3].text == "SELECT 7");
  CHECK_FALSE(g[3].statement_unresolved);
  CHECK(run.counters.unresolved_statements == 3);
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: statements beyond the prepared-statement limit are unresolved",
          "[pgsql]") {
  Run run;
  run.limits.max_prepared_statements = 1;
  Feed(run, With(Login(), {{kF,
                            Parse("a", "SELECT 1") + Parse("b", "SELECT 2") + Bind("", "b") +
                                Execute("") + Sync(),
                            10},
                           {kB,
                            ParseComplete() + ParseComplete() + BindComplete() + DataRow("2") +
                                Complete("SELECT 1") + Ready(),
                            11}}));
  REQUIRE(run.sink.got.size() == 1);
  CHECK(run.sink.got[0].statement_name == "b");
  CHECK(run.sink.got[0].statement_unresolved);
  CHECK(run.counters.unresolved_statements == 1);
}

TEST_CASE("pgsql features: bound values decoded by the Parse's types", "[pgsql]") {
  float f4 = 1.5f;
  double f8 = -0.25;
  uint32_t f4bits = 0;
  uint64_t f8bits = 0;
  std::memcpy(&f4bits, &f4, 4);
  std::memcpy(&f8bits, &f8, 8);
  const std::vector<uint32_t> types = {21, 23, 20, 700, 701, 16, 25, 1043, 2950, 17, 1082, 0, 23};
  const std::vector<Value> values = {
      {Be(0xfffe, 2), 1},                      // int2 -2
      {Be(123456, 4), 1},                      // int4
      {Be(0x8000000000000000ull, 8), 1},       // int8 min
      {Be(f4bits, 4), 1},                      // float4
      {Be(f8bits, 8), 1},                      // float8
      {"\x01"s, 1},                            // bool
      {"h\xc3\xa9llo", 1},                     // text (binary = UTF-8 bytes)
      {"bad\xff", 1},                          // varchar with invalid UTF-8
      {"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x23\x45\x67\x89\xab\xcd\xef"s, 1},  // uuid
      {"\x00\xff"s, 1},                        // bytea
      {Be(7, 4), 1},                           // date: not decoded
      {"plain text \xc3", 0},                  // text format, cut UTF-8
      {"", 0, true},                           // NULL
  };
  const auto chunks =
      With(Login(), {{kF,
                      ParseTyped("s", "INSERT INTO t VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,"
                                      "$12,$13)",
                                 types) +
                          BindValues("", "s", values) + Execute("") + Sync(),
                      10},
                     {kB, ParseComplete() + BindComplete() + Complete("INSERT 0 1") + Ready(),
                      11}});
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 1);
  const std::vector<std::optional<std::string>> want = {
      "-2",
      "123456",
      "-9223372036854775808",
      "1.5",
      "-0.25",
      "true",
      "h\xc3\xa9llo",
      "bad\xef\xbf\xbd",
      "12345678-9abc-def0-0123-456789abcdef",
      "\\x00ff",
      "\\x00000007",
      "plain text \xef\xbf\xbd",
      std::nullopt};
  CHECK(run.sink.got[0].parameters == want);
  CHECK(run.counters.parameters_cut == 0);
  CheckEveryBoundary(chunks);
}

TEST_CASE("pgsql features: values and their count are bounded, cuts marked", "[pgsql]") {
  Run run;
  run.limits.max_parameter_bytes = 8;
  run.limits.max_parameters = 3;
  const std::vector<Value> values = {{"0123456789"}, {"\xaa\xbb\xcc\xdd\xee", 1}, {"ok"}, {"x"},
                                     {"y"}};
  Feed(run, With(Login(), {{kF, Parse("", "SELECT $1,$2,$3,$4,$5") +
                                    BindValues("", "", values) + Execute("") + Sync(),
                            10},
                           {kB, ParseComplete() + BindComplete() + Complete("SELECT 0") + Ready(),
                            11}}));
  REQUIRE(run.sink.got.size() == 1);
  const std::vector<std::optional<std::string>> want = {
      "01234567\xE2\x80\xA6[10 bytes]", "\\xaabbcc\xE2\x80\xA6[5 bytes]", "ok"};
  CHECK(run.sink.got[0].parameters == want);
  CHECK(run.counters.parameters_cut == 2);
  CHECK(run.counters.parameters_dropped == 2);
}

TEST_CASE("pgsql features: a huge Bind is read only up to its limit", "[pgsql]") {
  Run run;
  run.limits.max_bind_bytes = 64;
  const std::string big(100000, 'v');
  Feed(run, With(Login(), {{kF, Parse("", "SELECT $1,$2") +
                                    BindValues("", "", {{big}, {"after"}}) + Execute("") + Sync(),
                            10},
                           {kB, ParseComplete() + BindComplete() + Complete("SELECT 0") + Ready(),
                            11}}));
  REQUIRE(run.sink.got.size() == 1);
  const auto& p = run.sink.got[0].parameters;
  REQUIRE(p.size() == 2);
  CHECK(p[0]->find("\xE2\x80\xA6[100000 bytes]") != std::string::npos);
  CHECK(p[0]->size() < 2 * 1024 + 64 + 20);  // the framer kept names + max_bind_bytes
  CHECK(*p[1] == "\xE2\x80\xA6[not captured]");
  CHECK(run.counters.parameters_cut == 2);
}

TEST_CASE("pgsql features: a gap inside a Bind marks the lost values", "[pgsql]") {
  Run run;
  const std::string bind = BindValues("", "", {{"aaaaaaaaaa"}, {"bbbb"}});
  // Header, names, 2 format codes, count, first length and 2 bytes of the
  // value; then 8 bytes lost; then the rest.
  const size_t head = 5 + 2 + 6 + 2 + 4 + 2;
  Feed(run, With(Login(), {{kF, Parse("", "SELECT $1,$2"), 9},
                           {kF, bind.substr(0, head), 10},
                           {kF, "", 10, 8},
                           {kF, bind.substr(head + 8) + Execute("") + Sync(), 10},
                           {kB, ParseComplete() + BindComplete() + Complete("SELECT 0") + Ready(),
                            11}}));
  REQUIRE(run.sink.got.size() == 1);
  const auto& p = run.sink.got[0].parameters;
  REQUIRE(p.size() == 2);
  CHECK(*p[0] == "aa\xE2\x80\xA6[10 bytes]");
  CHECK(*p[1] == "\xE2\x80\xA6[not captured]");
  CHECK(run.sink.got[0].capture_gap);
}

TEST_CASE("pgsql features: parameters held for portals are bounded", "[pgsql]") {
  Run run;
  run.limits.max_portal_parameter_bytes = 150;  // one 80-byte value and its slot
  const std::string v(80, 'z');
  Feed(run, With(Login(), {{kF,
                            Parse("", "SELECT $1") + BindValues("p1", "", {{v}}) +
                                BindValues("p2", "", {{v}}) + Execute("p1") + Execute("p2") +
                                Sync(),
                            10},
                           {kB,
                            ParseComplete() + BindComplete() + BindComplete() +
                                Complete("SELECT 0") + Complete("SELECT 0") + Ready(),
                            11}}));
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].parameters.size() == 1);
  CHECK(run.sink.got[1].parameters.empty());  // over budget: dropped and counted
  CHECK(run.counters.parameters_dropped == 1);
}
