// SPDX-License-Identifier: Apache-2.0
//
// Throughput checks, hidden from the default run (tag [.bench]); run them on a
// build without sanitizers: unit_tests "[.bench]"
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "sql/lexer.h"
#include "sql/operation.h"

namespace {

// 100 bytes, the size the brief's target refers to.
constexpr std::string_view kQuery =
    "SELECT a.id, a.name, b.total FROM accounts a JOIN balances b ON b.id = a.id WHERE a.id = $1 "
    "LIMIT 10";

template <typename F>
double per_second(int iterations, F&& f) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) f(i);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  return iterations / took.count();
}

}  // namespace

TEST_CASE("bench: operation_name and full lexing of a 100-byte statement", "[.bench][sql]") {
  REQUIRE(kQuery.size() == 100);
  size_t sink = 0;
  const double ops =
      per_second(5'000'000, [&](int) { sink += dbwarden::sql::operation_name(kQuery).size(); });
  const std::string with =
      "WITH recent AS (SELECT id FROM orders WHERE ts > now() - interval '1 day') "
      "DELETE FROM t WHERE id IN (SELECT id FROM recent)";
  const double with_ops =
      per_second(2'000'000, [&](int) { sink += dbwarden::sql::operation_name(with).size(); });
  const double lex = per_second(2'000'000, [&](int) {
    dbwarden::sql::Lexer lexer(kQuery);
    for (auto t = lexer.next(); t.kind != dbwarden::sql::TokenKind::kEnd; t = lexer.next()) ++sink;
  });
  std::printf("operation_name, 100-byte SELECT: %.2f M/s\n", ops / 1e6);
  std::printf("operation_name, %zu-byte WITH ... DELETE: %.2f M/s\n", with.size(), with_ops / 1e6);
  std::printf("full token scan, 100-byte SELECT: %.2f M statements/s\n", lex / 1e6);
  CHECK(sink > 0);
}
