// SPDX-License-Identifier: Apache-2.0
//
// Audit write throughput with the hash chain, rotation and zstd compression
// on, hidden from the default run; run on a build without sanitizers:
//   unit_tests "[.bench][chain]"
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "../support/bench_statement.h"
#include "audit/chain.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace {

using namespace dbw_audit_test;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

TEST_CASE("bench: chained, rotating, compressed audit writes", "[.bench][audit][chain]") {
  dbw_test::BenchStatement bench;
  dbwarden::Statement& s = bench.statement;

  // The chain alone: SHA-256 over a typical 400-byte record.
  {
    auto hasher = dbwarden::audit::ChainHasher::Create("");
    REQUIRE(hasher.ok());
    const std::string record(400, 'x');
    dbwarden::audit::Digest d{};
    const int n = 1'000'000;
    const auto t = Clock::now();
    for (int i = 0; i < n; ++i) d = hasher.value()->next(d, record);
    std::printf("chain hash (SHA-256, 400-byte record): %.2f M records/s\n",
                n / seconds_since(t) / 1e6);
  }

  TempDir tmp;
  dbwarden::audit::WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.rotate_bytes = 64ull << 20;
  o.max_buffered_bytes = 64 << 20;  // measure throughput, not the drop policy
  const uint64_t n = 2'000'000;
  double decode_seconds = 0;
  uint64_t bytes = 0, written = 0, dropped = 0, rotations = 0;
  const auto start = Clock::now();
  {
    auto w = open_writer(o);
    const auto t = Clock::now();
    for (uint64_t i = 0; i < n; ++i) {
      s.start_ns += 1000;
      s.end_ns = s.start_ns + 30'000 + i % 1000;
      w->on_statement(s);
      // Pace the producer to the writer's sustained rate: this measures the
      // writer, not the drop policy.
      while ((i & 255) == 0 && w->buffered_bytes() > o.max_buffered_bytes / 2) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    decode_seconds = seconds_since(t);
    REQUIRE(w->flush().ok());
    bytes = w->bytes_written();
    written = w->records_written();
    dropped = w->records_dropped();
    rotations = w->rotations();
  }  // joins the compressor: every rotated file is compressed here
  const double total = seconds_since(start);
  std::printf(
      "decode thread (format + hand-over, paced): %.2f M records/s\n"
      "end to end (chain + write + rotate + zstd): %.2f M records/s, %.1f MB/s, "
      "%llu rotations, %llu dropped\n",
      n / decode_seconds / 1e6, written / total / 1e6, bytes / total / 1e6,
      static_cast<unsigned long long>(rotations), static_cast<unsigned long long>(dropped));
  CHECK(written == n);
  CHECK(dropped == 0);

  auto files = dbwarden::audit::expand_audit_paths({tmp.path}, nullptr);
  REQUIRE(files.ok());
  uint64_t on_disk = 0;
  for (const auto& f : files.value()) on_disk += fs::file_size(f);
  dbwarden::audit::VerifyOptions vo;
  const auto t = Clock::now();
  auto v = dbwarden::audit::verify_audit_files(files.value(), vo);
  REQUIRE(v.ok());
  CHECK(v.value().valid());
  std::printf("verify-audit: %.2f M records/s; on disk %.1f MB for %.1f MB written (%.1fx)\n",
              v.value().records / seconds_since(t) / 1e6, on_disk / 1e6, bytes / 1e6,
              static_cast<double>(bytes) / static_cast<double>(on_disk));
}
