// SPDX-License-Identifier: Apache-2.0
//
// dbwarden_fingerprint_statements_total (bounded per-fingerprint counts) and
// the operation label of MySQL statements, through the real pipeline: the SQL
// analyser fills operation, fingerprint and summary, the exporter counts.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "agent/pipeline.h"
#include "metrics/exporter.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::Statement;
using dbwarden::metrics::Exporter;

std::unique_ptr<Exporter> make_exporter(size_t max_fingerprints) {
  auto r = Exporter::Start("", "1.2.3-test", max_fingerprints);
  if (!r.ok()) FAIL(r.status().message());
  return std::move(r.value());
}

size_t count_lines_with(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) ++n;
  }
  return n;
}

double value_of(const std::string& text, const std::string& prefix, const std::string& needle) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0 && line.find(needle) != std::string::npos) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return -1;
}

ConnectionInfo connection(const std::string& db_system) {
  ConnectionInfo c;
  c.db_system = db_system;
  c.database = "shop";
  c.user = "app";
  return c;
}

void run(dbwarden::agent::Pipeline& p, const ConnectionInfo& c, const std::string& sql) {
  Statement s;
  s.connection = &c;
  s.text = sql;
  p.on_statement(s);
}

}  // namespace

TEST_CASE("metrics: MySQL statements carry the operation label", "[metrics][sql]") {
  auto exporter = make_exporter(100);
  dbwarden::agent::Pipeline pipeline({exporter.get()});
  const ConnectionInfo my = connection("mysql");
  run(pipeline, my, "/*!40101 SET NAMES utf8mb4 */");
  run(pipeline, my, "select * from `orders` where id = 1");
  run(pipeline, my, "select * from `orders` where id = 2");
  const std::string text = exporter->serialize();
  CHECK(value_of(text, "dbwarden_statements_total{", "operation=\"SELECT\"") == 2);
  CHECK(value_of(text, "dbwarden_statements_total{", "operation=\"SET\"") == 1);
  CHECK(count_lines_with(text, "db_system=\"mysql\"") >= 2);
}

TEST_CASE("metrics: statements are counted per fingerprint, literals ignored", "[metrics][sql]") {
  auto exporter = make_exporter(100);
  dbwarden::agent::Pipeline pipeline({exporter.get()});
  const ConnectionInfo pg = connection("postgresql");
  for (int i = 0; i < 5; ++i) {
    run(pipeline, pg, "SELECT * FROM accounts WHERE id IN (" + std::to_string(i) + ", 7)");
  }
  run(pipeline, pg, "DELETE FROM accounts");
  exporter->publish_fingerprints();
  const std::string text = exporter->serialize();
  CHECK(count_lines_with(text, "dbwarden_fingerprint_statements_total{") == 2);
  CHECK(value_of(text, "dbwarden_fingerprint_statements_total{", "summary=\"SELECT accounts\"") ==
        5);
  CHECK(value_of(text, "dbwarden_fingerprint_statements_total{", "summary=\"DELETE accounts\"") ==
        1);
}

TEST_CASE("metrics: only the most frequent fingerprints have series, re-ranked as they change",
          "[metrics][sql]") {
  auto exporter = make_exporter(3);
  dbwarden::agent::Pipeline pipeline({exporter.get()});
  const ConnectionInfo my = connection("mysql");
  // t0..t2 three times each, t3..t9 once: the top three are t0..t2.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 3; ++i) run(pipeline, my, "SELECT * FROM t" + std::to_string(i));
  }
  for (int i = 3; i < 10; ++i) run(pipeline, my, "SELECT * FROM t" + std::to_string(i));
  exporter->publish_fingerprints();
  std::string text = exporter->serialize();
  CHECK(count_lines_with(text, "dbwarden_fingerprint_statements_total{") == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(value_of(text, "dbwarden_fingerprint_statements_total{",
                   "summary=\"SELECT t" + std::to_string(i) + "\"") == 3);
  }
  // t9 becomes the most frequent: it takes a series, the last of the old top loses its own.
  for (int k = 0; k < 5; ++k) run(pipeline, my, "SELECT * FROM t9");
  run(pipeline, my, "SELECT * FROM t0");
  run(pipeline, my, "SELECT * FROM t1");
  exporter->publish_fingerprints();
  text = exporter->serialize();
  CHECK(count_lines_with(text, "dbwarden_fingerprint_statements_total{") == 3);
  CHECK(value_of(text, "dbwarden_fingerprint_statements_total{", "summary=\"SELECT t9\"") == 6);
  CHECK(value_of(text, "dbwarden_fingerprint_statements_total{", "summary=\"SELECT t0\"") == 4);
  CHECK(value_of(text, "dbwarden_fingerprint_statements_total{", "summary=\"SELECT t2\"") == -1);
}

TEST_CASE("metrics: promtool accepts the exposition with fingerprints", "[metrics][sql]") {
  if (access("/usr/bin/promtool", X_OK) != 0) {
    WARN("promtool not installed; skipped");
    return;
  }
  auto exporter = make_exporter(2);
  dbwarden::agent::Pipeline pipeline({exporter.get()});
  const ConnectionInfo my = connection("mysql");
  for (const char* sql : {"SELECT \"x\" FROM `we\"ird`", "UPDATE t SET a = 1", "TRUNCATE t2"}) {
    run(pipeline, my, sql);
  }
  exporter->publish_fingerprints();
  char path[] = "/tmp/dbw_metrics_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << exporter->serialize();
  const std::string cmd = std::string("/usr/bin/promtool check metrics < ") + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int rc = pclose(p);
  unlink(path);
  INFO(out);
  CHECK(rc == 0);
}
