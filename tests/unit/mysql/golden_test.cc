// SPDX-License-Identifier: Apache-2.0
// Real sessions recorded from MariaDB 10.11 (tests/data/mysql/README.md):
// exact records, and the same records however the bytes are chunked.
#include <catch2/catch.hpp>

#include "../support/chunking_check.h"
#include "my_wire.h"

using namespace mytest;

namespace {

constexpr const char* kCaptures[] = {"stmt_client.mycap", "stmt_client_deprecate_eof.mycap",
                                     "mariadb_cli.mycap", "pymysql.mycap"};
constexpr const char* kPassword = "mysqlpw-4d2e8b";
// Recorded with the integration harness's server and user (tests/data/mysql/README.md).
constexpr const char* kHarnessPassword = "Dbw-my5ql-S3cret-Zx9";

std::vector<std::string> Decode(const std::vector<Chunk>& chunks, size_t piece = 0) {
  Run run;
  Feed(run, chunks, piece);
  std::vector<std::string> out = run.sink.lines();
  for (const Statement& s : run.sink.got) {
    std::string p = s.statement_unresolved ? "unresolved" : "";
    for (const auto& v : s.parameters) p += "|" + (v ? "'" + *v + "'" : std::string("NULL"));
    out.push_back(p);
  }
  out.insert(out.end(), run.params.begin(), run.params.end());
  return out;
}

struct Want {
  std::string text, status, tag;
  std::optional<uint64_t> rows;
  std::string name;
};

void Check(const Run& run, const std::vector<Want>& want) {
  REQUIRE(run.sink.got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(i);
    const Statement& s = run.sink.got[i];
    CHECK(s.text == want[i].text);
    if (want[i].tag.rfind("ERR ", 0) == 0) {
      // OpenTelemetry MySQL/MariaDB: the error number; the SQLSTATE aside.
      CHECK(s.status_code == want[i].tag.substr(4));
      CHECK(s.sqlstate == want[i].status);
    } else {
      CHECK(s.status_code == want[i].status);
      CHECK(s.sqlstate.empty());
    }
    CHECK(s.command_tag == want[i].tag);
    CHECK(s.returned_rows == want[i].rows);
    CHECK(s.statement_name == want[i].name);
    CHECK_FALSE(s.capture_gap);
    CHECK(s.start_ns <= s.end_ns);
  }
}

}  // namespace

TEST_CASE("mysql golden: own binary-protocol client, EOF on and off", "[mysql]") {
  for (const char* name : {"stmt_client.mycap", "stmt_client_deprecate_eof.mycap"}) {
    INFO(name);
    const bool deprecate = std::string(name) == "stmt_client_deprecate_eof.mycap";
    const std::string ins = deprecate ? "4" : "1";
    const std::string sel = deprecate ? "5" : "2";
    const std::string insert =
        "INSERT INTO items(id, name, price, added, note) VALUES (?, ?, ?, ?, ?)";
    const std::string select = "SELECT id, name, price, added FROM items WHERE id >= ? ORDER BY id";
    Run run;
    Feed(run, LoadCapture(name));
    CHECK(run.info.user == "golden");
    CHECK(run.info.database == "shop");
    CHECK(run.info.db_system == "mariadb");  // "5.5.5-10.11.19-MariaDB-0+deb12u1"
    CHECK(run.counters.invalid_packets == 0);
    CHECK(run.counters.unmatched_responses == 0);
    CHECK(run.counters.unresolved_statements == 1);  // the execute of id 4242
    CHECK(run.counters.local_infile_bytes == 44);
    CHECK(run.counters.midstream_joins == 0);
    Check(run, {
                   {"USE `shop`", "00000", "COM_INIT_DB", std::nullopt, ""},
                   {"DELETE FROM items WHERE id > 100", "00000", "OK", deprecate ? 5 : 7, ""},
                   {insert, "00000", "OK", 1, ins},
                   {insert, "00000", "OK", 1, ins},
                   {insert, "00000", "OK", 1, ins},
                   {insert, "23000", "ERR 1062", std::nullopt, ins},
                   {select, "00000", "RESULTSET", 3, sel},
                   {select, "00000", "RESULTSET", 2, sel},
                   {"SELEKT nothing", "42000", "ERR 1064", std::nullopt, ""},
                   {"", "HY000", "ERR 1243", std::nullopt, "4242"},
                   {"UPDATE items SET price = price + 1 WHERE id = 101", "00000", "OK", 1, ""},
                   {"SELECT name FROM items WHERE id IN (101, 102)", "00000", "RESULTSET", 2, ""},
                   {"DO 1", "00000", "OK", 0, ""},
                   {"LOAD DATA LOCAL INFILE 'rows.csv' INTO TABLE items FIELDS TERMINATED BY ',' "
                    "(id, name)",
                    "00000", "OK", 2, ""},
                   {"SELECT COUNT(*) FROM items", "00000", "RESULTSET", 1, ""},
               });
    CHECK(run.sink.got[5].error_message == "Duplicate entry '101' for key 'PRIMARY'");
    const std::vector<std::string> params = {ins + "#0=101",
                                             ins + "#1=O'Brien widget",
                                             ins + "#2=19.5",
                                             ins + "#3=2024-02-29 13:45:30",
                                             ins + "#4=NULL",
                                             ins + "#0=102",
                                             ins + "#1=gadget",
                                             ins + "#2=7.25",
                                             ins + "#3=2023-12-01",
                                             ins + "#4=blob" + std::string(1, '\0') + "bytes",
                                             ins + "#0=103",
                                             ins + "#1=gizmo",
                                             ins + "#2=2.5",
                                             ins + "#3=-26:03:04",
                                             ins + "#4=long note part 1; part 2",
                                             ins + "#0=101",
                                             ins + "#1=dup",
                                             ins + "#2=NULL",
                                             ins + "#3=NULL",
                                             ins + "#4=NULL",
                                             sel + "#0=101",
                                             sel + "#0=102"};
    CHECK(run.params == params);
    // The same values reach the record itself, NULL as nullopt.
    std::vector<std::string> from_records;
    for (const Statement& s : run.sink.got) {
      for (size_t i = 0; i < s.parameters.size(); ++i) {
        from_records.push_back(s.statement_name + "#" + std::to_string(i) + "=" +
                               s.parameters[i].value_or("NULL"));
      }
      CHECK(s.statement_unresolved == (s.statement_name == "4242"));
    }
    CHECK(from_records == params);
    CHECK_FALSE(run.sink.got[6 - 1].parameters[2].has_value());  // the duplicate's NULL price
    // The LOCAL INFILE content never reaches a record.
    for (const Statement& s : run.sink.got)
      CHECK(DescribeStatement(s).find("secret-file-row") == std::string::npos);
  }
}

TEST_CASE("mysql golden: mariadb CLI, errors, USE, multi-statement", "[mysql]") {
  Run run;
  Feed(run, LoadCapture("mariadb_cli.mycap"));
  CHECK(run.info.user == "golden");
  CHECK(run.info.database == "mysql");  // after USE mysql (COM_INIT_DB)
  CHECK(run.counters.unmatched_responses == 0);
  CHECK(run.counters.invalid_packets == 0);
  Check(run, {
                 {"SELECT 1 AS one", "00000", "RESULTSET", 1, ""},
                 {"CREATE TEMPORARY TABLE t(a INT, b TEXT)", "00000", "OK", 0, ""},
                 {"INSERT INTO t VALUES (1,'x;y'),(2,\"z';\"),(3,'a\\';b')", "00000", "OK", 3, ""},
                 {"SELECT * FROM t", "00000", "RESULTSET", 3, ""},
                 {"UPDATE t SET a = a + 1  WHERE a > 1", "00000", "OK", 2, ""},
                 {"SELECT * FROM nosuch_table", "42S02", "ERR 1146", std::nullopt, ""},
                 {"SELEC 1", "42000", "ERR 1064", std::nullopt, ""},
                 {"SELECT DATABASE()", "00000", "RESULTSET", 1, ""},
                 {"USE `mysql`", "00000", "COM_INIT_DB", std::nullopt, ""},
                 {"SELECT COUNT(*) FROM db", "00000", "RESULTSET", 1, ""},
                 {"SELECT 1", "00000", "RESULTSET", 1, ""},
                 {"SELECT 2", "00000", "RESULTSET", 1, ""},
                 {"DELETE FROM shop.items WHERE id = 999", "00000", "OK", 0, ""},
                 {"SELECT * FROM nosuch2", "42S02", "ERR 1146", std::nullopt, ""},
                 {"SELECT `a;b` FROM (SELECT 5 AS `a;b`) x", "00000", "RESULTSET", 1, ""},
                 {"DO 1", "00000", "OK", 0, ""},
                 {"SELECT 'done'", "00000", "RESULTSET", 1, ""},
             });
  CHECK(run.sink.got[5].error_message == "Table 'shop.nosuch_table' doesn't exist");
  // "SELECT 3" after the failing statement of that string never ran.
}

TEST_CASE("mysql golden: pymysql autocommit, executemany, transactions", "[mysql]") {
  Run run;
  Feed(run, LoadCapture("pymysql.mycap"));
  CHECK(run.counters.unmatched_responses == 0);
  Check(run, {
                 {"DELETE FROM items WHERE id >= 300", "00000", "OK", 0, ""},
                 {"INSERT INTO items(id, name, price) VALUES (300, 'a', 1.5e0),(301, 'b\\'q', "
                  "2),(302, NULL, 3)",
                  "00000", "OK", 3, ""},
                 {"SELECT id, name FROM items WHERE id >= 300", "00000", "RESULTSET", 3, ""},
                 {"SELECT * FROM items", "00000", "RESULTSET", 7, ""},
                 {"SET AUTOCOMMIT = 0", "00000", "OK", 0, ""},
                 {"UPDATE items SET price = price * 2 WHERE id >= 300", "00000", "OK", 3, ""},
                 {"COMMIT", "00000", "OK", 0, ""},
                 {"INSERT INTO items(id) VALUES (300)", "23000", "ERR 1062", std::nullopt, ""},
                 {"ROLLBACK", "00000", "OK", 0, ""},
                 {"USE `mysql`", "00000", "COM_INIT_DB", std::nullopt, ""},
                 {"SELECT 1", "00000", "RESULTSET", 1, ""},
             });
  CHECK(run.info.database == "mysql");
}

TEST_CASE("mysql golden: same records at every chunk boundary", "[mysql]") {
  for (const char* name : kCaptures) {
    INFO(name);
    const std::vector<Chunk> chunks = LoadCapture(name);
    dbw_test::CheckSameRecordsHoweverChunked(
        chunks, [](const std::vector<Chunk>& c, size_t piece) { return Decode(c, piece); });
  }
}

TEST_CASE("mysql golden: the password and its scramble never appear in any record", "[mysql]") {
  for (const char* name : kCaptures) {
    INFO(name);
    const std::vector<Chunk> chunks = LoadCapture(name);
    for (size_t piece : {size_t{0}, size_t{1}}) {
      Run run;
      Feed(run, chunks, piece);
      for (const Statement& s : run.sink.got) {
        CHECK(DescribeStatement(s).find(kPassword) == std::string::npos);
        CHECK(DescribeStatement(s).find("mysql_native_password") == std::string::npos);
      }
      CHECK(run.info.user == "golden");
      for (const std::string& p : run.params) CHECK(p.find(kPassword) == std::string::npos);
    }
  }
}

TEST_CASE("mysql golden: own C API client (libmariadb), binary protocol", "[mysql]") {
  const std::vector<Chunk> chunks = LoadCapture("my_stmt_client.mycap");
  Run run;
  Feed(run, chunks);
  CHECK(run.info.user == "dbw_app");
  CHECK(run.info.database == "dbw_test");
  CHECK(run.counters.invalid_packets == 0);
  CHECK(run.counters.unmatched_responses == 0);
  CHECK(run.counters.unresolved_statements == 0);
  const std::string ins = "INSERT INTO items (id, d, s, n, b) VALUES (?, ?, ?, ?, ?)";
  const std::string sel = "SELECT id, d, s, b FROM items WHERE id >= ? ORDER BY id";
  const std::string upd = "UPDATE items SET s = ? WHERE id <= ?";
  Check(run, {
                 {"SELECT 'dbw-session:golden' AS tag, HOST FROM information_schema.PROCESSLIST "
                  "WHERE ID = CONNECTION_ID()",
                  "00000", "RESULTSET", 1, ""},
                 {"CREATE TABLE items (id INT PRIMARY KEY, d DOUBLE, s VARCHAR(64), n INT, b BLOB)",
                  "00000", "OK", 0, ""},
                 {ins, "00000", "OK", 1, "1"},
                 {ins, "00000", "OK", 1, "1"},
                 {ins, "00000", "OK", 1, "1"},
                 {ins, "23000", "ERR 1062", std::nullopt, "1"},
                 {sel, "00000", "RESULTSET", 3, "2"},
                 {sel, "00000", "RESULTSET", 2, "2"},
                 {upd, "00000", "OK", 2, "3"},
                 {"DROP TABLE items", "00000", "OK", 0, ""},
             });
  using P = std::vector<std::optional<std::string>>;
  CHECK(run.sink.got[2].parameters == P{"1", "1.5", "alpha", std::nullopt, "blob-1-part1;part2"});
  CHECK(run.sink.got[3].parameters == P{"2", "-2.25", "it's", std::nullopt, "blob-2-part1;part2"});
  CHECK(run.sink.got[4].parameters == P{"3", "1e+20", "gamma", std::nullopt, "blob-3-part1;part2"});
  CHECK(run.sink.got[5].parameters == P{"1", "0", "dup", std::nullopt, "blob-1-part1;part2"});
  CHECK(run.sink.got[6].parameters == P{"1"});
  CHECK(run.sink.got[7].parameters == P{"2"});
  CHECK(run.sink.got[8].parameters == P{"updated", "2"});
  for (const Statement& s : run.sink.got) {
    CHECK(DescribeStatement(s).find(kHarnessPassword) == std::string::npos);
  }
  dbw_test::CheckSameRecordsHoweverChunked(
      chunks, [](const std::vector<Chunk>& c, size_t piece) { return Decode(c, piece); });
}

TEST_CASE("mysql golden: result-heavy text result sets (the decoder bench's stream)", "[mysql]") {
  // 400 kB: checked whole, in 1-byte and in 1000-byte pieces (a cut at every
  // byte of every chunk would decode it 400,000 times).
  const std::vector<Chunk> chunks = LoadCapture("result_heavy.mycap");
  Run run;
  Feed(run, chunks);
  REQUIRE(run.sink.got.size() == 2);
  CHECK(run.sink.got[0].text.rfind("SELECT seq AS id, CONCAT('customer-', seq)", 0) == 0);
  CHECK(run.sink.got[0].returned_rows == 3000);
  CHECK(run.sink.got[1].returned_rows == 1500);
  for (const Statement& s : run.sink.got) CHECK(s.status_code == "00000");
  CHECK(run.counters.invalid_packets == 0);
  CHECK(run.counters.unmatched_responses == 0);
  const std::vector<std::string> whole = Decode(chunks, 0);
  CHECK(Decode(chunks, 1) == whole);
  CHECK(Decode(chunks, 1000) == whole);
}
