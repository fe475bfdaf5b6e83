// SPDX-License-Identifier: Apache-2.0
//
// Throughput checks, hidden from the default run (tag [.bench]); run them on a
// build without sanitizers: unit_tests "[.bench]"
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "metrics/exporter.h"

TEST_CASE("bench: Exporter::on_statement over 60 label sets", "[.bench][metrics]") {
  auto e = dbwarden::metrics::Exporter::Start("", "bench");
  REQUIRE(e.ok());
  std::vector<dbwarden::ConnectionInfo> conns(20);
  for (size_t i = 0; i < conns.size(); ++i) {
    conns[i].db_system = "postgresql";
    conns[i].database = "shop";
    conns[i].user = "user" + std::to_string(i);
  }
  const char* const ops[] = {"SELECT", "UPDATE", "INSERT"};
  std::vector<dbwarden::Statement> statements;
  for (size_t i = 0; i < 60; ++i) {
    dbwarden::Statement s;
    s.connection = &conns[i % conns.size()];
    s.operation = ops[i / conns.size()];
    s.start_ns = 1000;
    s.end_ns = 1000 + 37'000 * (i + 1);
    statements.push_back(s);
  }
  constexpr int kIterations = 4'000'000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIterations; ++i) e.value()->on_statement(statements[i % statements.size()]);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("Exporter::on_statement: %.2f M/s (%.0f ns each)\n", kIterations / took.count() / 1e6,
              took.count() * 1e9 / kIterations);
  CHECK(e.value()->serialize().find("dbwarden_statements_total") != std::string::npos);
}
