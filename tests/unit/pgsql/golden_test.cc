// SPDX-License-Identifier: Apache-2.0
// Real sessions recorded from PostgreSQL 15 (tests/data/pgsql/README.md):
// exact records, and the same records however the bytes are chunked.
#include <catch2/catch.hpp>

#include "../support/chunking_check.h"
#include "pg_wire.h"

using namespace pgtest;

namespace {

constexpr const char* kCaptures[] = {"psql_simple.pgcap", "pgbench_extended.pgcap",
                                     "pgbench_prepared.pgcap", "pgbench_pipeline_error.pgcap"};
// The cleartext password the captures authenticated with (auth method "password").
constexpr const char* kPassword = "goldenpw-7f3a9c";

std::vector<std::string> Decode(const std::vector<Chunk>& chunks, size_t piece = 0,
                                Counters* counters = nullptr) {
  Run run;
  Feed(run, chunks, piece);
  if (counters) *counters = run.counters;
  return run.sink.lines();
}

}  // namespace

TEST_CASE("pgsql golden: psql simple, multi-statement, error, COPY", "[pgsql]") {
  Run run;
  Feed(run, LoadCapture("psql_simple.pgcap"));
  CHECK(run.info.user == "postgres");
  CHECK(run.info.database == "postgres");
  CHECK(run.info.application_name == "golden_renamed");
  CHECK(run.counters.invalid_messages == 0);
  CHECK(run.counters.unmatched_responses == 0);
  CHECK(run.counters.midstream_joins == 0);
  CHECK(run.counters.encrypted_connections == 0);  // SSLRequest refused with 'N'
  struct Want {
    std::string text, status, tag;
    std::optional<uint64_t> rows;
  };
  const std::vector<Want> want = {
      {"SELECT 1 AS one", "00000", "SELECT 1", 1},
      {"CREATE TEMP TABLE t(a int, b text)", "00000", "CREATE TABLE", std::nullopt},
      {"INSERT INTO t VALUES (1, 'x;y'), (2, $$z;$$)", "00000", "INSERT 0 2", 2},
      {"SELECT * FROM t", "00000", "SELECT 2", 2},
      {"UPDATE t SET a = a + 1 /* ; */", "00000", "UPDATE 2", 2},
      {"SELECT 1", "00000", "SELECT 1", 1},
      {"SELECT 1/0", "22012", "", std::nullopt},  // "SELECT 2" after it never ran
      {"SET application_name = 'golden_renamed'", "00000", "SET", std::nullopt},
      {"COPY t TO STDOUT", "00000", "COPY 2", 2},
  };  // "-- nothing to run" is answered by EmptyQueryResponse: no record
  REQUIRE(run.sink.got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(i);
    const Statement& s = run.sink.got[i];
    CHECK(s.text == want[i].text);
    CHECK(s.status_code == want[i].status);
    CHECK(s.command_tag == want[i].tag);
    CHECK(s.returned_rows == want[i].rows);
    CHECK_FALSE(s.capture_gap);
    CHECK(s.start_ns <= s.end_ns);
  }
  CHECK(run.sink.got[6].error_message == "division by zero");
}

TEST_CASE("pgsql golden: result-heavy text result sets", "[pgsql]") {
  // The decoder throughput bench's PostgreSQL stream (bench/decode_throughput.cc).
  const auto chunks = LoadCapture("result_heavy.pgcap");
  for (size_t piece : {size_t{0}, size_t{1000}, size_t{4096}}) {
    INFO("piece " << piece);
    Run run;
    Feed(run, chunks, piece);
    CHECK(run.counters.invalid_messages == 0);
    REQUIRE(run.sink.got.size() == 2);
    CHECK(run.sink.got[0].returned_rows == 3000);
    CHECK(run.sink.got[0].command_tag == "SELECT 3000");
    CHECK(run.sink.got[1].returned_rows == 1500);
    CHECK(run.sink.got[1].text.rfind("SELECT g, md5(g::text)", 0) == 0);
    for (const Statement& s : run.sink.got) CHECK(s.status_code == "00000");
  }
}

TEST_CASE("pgsql golden: pgbench extended and prepared", "[pgsql]") {
  for (const char* name : {"pgbench_extended.pgcap", "pgbench_prepared.pgcap"}) {
    INFO(name);
    const bool prepared = std::string(name) == "pgbench_prepared.pgcap";
    Run run;
    Feed(run, LoadCapture(name));
    CHECK(run.counters.unmatched_responses == 0);
    CHECK(run.counters.invalid_messages == 0);
    CHECK(run.info.application_name == "pgbench");
    // 3 transactions of the TPC-B-like script: 7 statements each.
    REQUIRE(run.sink.got.size() == 21);
    const std::vector<std::string> verbs = {"BEGIN",  "UPDATE", "SELECT", "UPDATE",
                                            "UPDATE", "INSERT", "END"};
    for (size_t i = 0; i < run.sink.got.size(); ++i) {
      INFO(i);
      const Statement& s = run.sink.got[i];
      CHECK(s.text.rfind(verbs[i % 7], 0) == 0);
      CHECK(s.status_code == "00000");
      CHECK(s.statement_name.empty() != prepared);
      CHECK_FALSE(s.capture_gap);
      CHECK(s.request_bytes > 0);
      CHECK(s.response_bytes > 0);
    }
    CHECK(run.sink.got[2].returned_rows == 1);
    CHECK(run.sink.got[1].text.find("$1") != std::string::npos);
  }
}

TEST_CASE("pgsql golden: pipelined extended queries with an error", "[pgsql]") {
  Run run;
  Feed(run, LoadCapture("pgbench_pipeline_error.pgcap"));
  REQUIRE(run.sink.got.size() == 4);  // "SELECT 3;" was skipped by the server
  CHECK(run.sink.got[0].text == "SELECT 1 AS a;");
  CHECK(run.sink.got[1].text == "SELECT 2 AS b;");
  CHECK(run.sink.got[2].text == "SELECT 1;");
  CHECK(run.sink.got[3].text == "SELECT 1/0;");
  CHECK(run.sink.got[3].status_code == "22012");
  CHECK(run.counters.unmatched_responses == 0);
}

TEST_CASE("pgsql golden: same records at every chunk boundary", "[pgsql]") {
  for (const char* name : kCaptures) {
    INFO(name);
    const std::vector<Chunk> chunks = LoadCapture(name);
    dbw_test::CheckSameRecordsHoweverChunked(
        chunks, [](const std::vector<Chunk>& c, size_t piece) { return Decode(c, piece); });
  }
}

TEST_CASE("pgsql golden: the login password never appears in any record", "[pgsql]") {
  for (const char* name : kCaptures) {
    INFO(name);
    const std::vector<Chunk> chunks = LoadCapture(name);
    bool on_wire = false;
    for (const Chunk& c : chunks) on_wire = on_wire || c.bytes.find(kPassword) != std::string::npos;
    REQUIRE(on_wire);  // the test means something only if the password was sent
    for (size_t piece : {size_t{0}, size_t{1}}) {
      Run run;
      Feed(run, chunks, piece);
      for (const Statement& s : run.sink.got)
        CHECK(DescribeStatement(s).find(kPassword) == std::string::npos);
      CHECK(run.info.user.find(kPassword) == std::string::npos);
      CHECK(run.info.database.find(kPassword) == std::string::npos);
      CHECK(run.info.application_name.find(kPassword) == std::string::npos);
    }
  }
}
