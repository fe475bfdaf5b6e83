// SPDX-License-Identifier: Apache-2.0
//
// Throughput checks, hidden from the default run (tag [.bench]); run them on a
// build without sanitizers: unit_tests "[.bench]"
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "../support/bench_statement.h"
#include "audit/jsonl_writer.h"
#include "audit/record.h"

namespace {

template <typename F>
double per_second(int iterations, F&& f) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) f(i);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  return iterations / took.count();
}

}  // namespace

TEST_CASE("bench: format_record and the writer with a 100-byte query", "[.bench][audit]") {
  dbw_test::BenchStatement bench;
  dbwarden::Statement& s = bench.statement;
  REQUIRE(s.text.size() == 100);
  std::string out;
  size_t bytes = 0;
  const double rate = per_second(2'000'000, [&](int i) {
    out.clear();
    s.start_ns += 1000;  // advance time like a real stream of statements
    s.end_ns = s.start_ns + 30'000 + i % 1000;
    dbwarden::audit::format_record(s, 1'700'000'000'000'000'000, out);
    bytes += out.size();
  });
  std::printf("format_record, 100-byte query: %.2f M records/s (%zu bytes/record)\n", rate / 1e6,
              out.size());

  dbwarden::audit::WriterOptions o;
  o.path = "/dev/null";
  auto w = dbwarden::audit::JsonlWriter::Open(o);
  REQUIRE(w.ok());
  const double writer_rate = per_second(2'000'000, [&](int) { w.value()->on_statement(s); });
  REQUIRE(w.value()->flush().ok());
  // The producer outruns the writer thread here, so some records are dropped
  // at the queue bound; this measures the decode thread's cost only.
  std::printf(
      "JsonlWriter::on_statement to /dev/null (decode thread only): %.2f M records/s, %llu "
      "dropped at the queue bound\n",
      writer_rate / 1e6, static_cast<unsigned long long>(w.value()->records_dropped()));
  CHECK(w.value()->records_written() + w.value()->records_dropped() == 2'000'000);
  CHECK(bytes > 0);
}
