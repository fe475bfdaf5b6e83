// SPDX-License-Identifier: Apache-2.0
#include "shipping/spool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "shipping_test_util.h"

using dbw_shipping_test::TempDir;
using dbwarden::shipping::Spool;
namespace fs = std::filesystem;

namespace {

std::string frame(int i) {
  const std::string body = "<110>1 - - - - audit - record " + std::to_string(i);
  return std::to_string(body.size()) + " " + body;
}

std::unique_ptr<Spool> open_spool(const std::string& dir, uint64_t max = 1 << 20,
                                  uint64_t segment = 256) {
  auto s = Spool::Open(dir, max, segment);
  INFO((s.ok() ? "" : s.status().message()));
  REQUIRE(s.ok());
  return std::move(s.value());
}

size_t segment_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".log";
  return n;
}

}  // namespace

TEST_CASE("spool: records come back in order across segments, delivered segments go",
          "[shipping][spool]") {
  TempDir tmp;
  const std::string dir = tmp.path + "/spool";
  auto spool = open_spool(dir);
  struct stat st {};
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  for (int i = 0; i < 50; ++i) REQUIRE(spool->append(frame(i), 1000 + i) == Spool::Append::kOk);
  CHECK(spool->records() == 50);
  CHECK(spool->oldest_unix_ms() == 1000);
  CHECK(segment_files(dir) > 3);  // 256-byte segments
  for (const auto& e : fs::directory_iterator(dir)) {
    REQUIRE(::stat(e.path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
  std::string f;
  int64_t ms = 0;
  for (int i = 0; i < 30; ++i) {
    REQUIRE(spool->read_next(f, ms));
    CHECK(f == frame(i));
    CHECK(ms == 1000 + i);
  }
  spool->commit(20);
  CHECK(spool->records() == 30);
  CHECK(spool->oldest_unix_ms() == 1020);
  // A drop: the 10 read but uncommitted come again.
  spool->rewind();
  for (int i = 20; i < 50; ++i) {
    REQUIRE(spool->read_next(f, ms));
    CHECK(f == frame(i));
  }
  CHECK_FALSE(spool->read_next(f, ms));
  spool->commit(30);
  CHECK(spool->records() == 0);
  CHECK(spool->bytes() == 0);
  CHECK(segment_files(dir) == 0);
  // Appending after it emptied starts a fresh segment.
  REQUIRE(spool->append(frame(50), 2000) == Spool::Append::kOk);
  REQUIRE(spool->read_next(f, ms));
  CHECK(f == frame(50));
}

TEST_CASE("spool: reading interleaved with appends to the write segment", "[shipping][spool]") {
  TempDir tmp;
  auto spool = open_spool(tmp.path + "/s", 1 << 20, 1 << 20);
  std::string f;
  int64_t ms = 0;
  int next_read = 0;
  for (int i = 0; i < 100; ++i) {
    REQUIRE(spool->append(frame(i), i) == Spool::Append::kOk);
    if (i % 3 == 0) {
      while (spool->read_next(f, ms)) CHECK(f == frame(next_read++));
      spool->commit(1000);
    }
  }
  while (spool->read_next(f, ms)) CHECK(f == frame(next_read++));
  CHECK(next_read == 100);
}

TEST_CASE("spool: full refuses the newest record, byte-exact", "[shipping][spool]") {
  TempDir tmp;
  const std::string one = "7 " + frame(0);  // enqueue ms "7", a space, the frame
  auto spool = open_spool(tmp.path + "/s", one.size() * 3, 1 << 20);
  CHECK(spool->append(frame(0), 7) == Spool::Append::kOk);
  CHECK(spool->append(frame(0), 7) == Spool::Append::kOk);
  CHECK(spool->append(frame(0), 7) == Spool::Append::kOk);
  CHECK(spool->append(frame(0), 7) == Spool::Append::kFull);
  CHECK(spool->records() == 3);
  CHECK(spool->bytes() == one.size() * 3);
  std::string f;
  int64_t ms = 0;
  REQUIRE(spool->read_next(f, ms));
  spool->commit(1);
  CHECK(spool->append(frame(0), 7) == Spool::Append::kOk);  // room again
}

TEST_CASE("spool: a new run resumes undelivered records, a torn tail is cut and counted",
          "[shipping][spool]") {
  TempDir tmp;
  const std::string dir = tmp.path + "/s";
  {
    auto spool = open_spool(dir);
    for (int i = 0; i < 20; ++i) REQUIRE(spool->append(frame(i), i) == Spool::Append::kOk);
    std::string f;
    int64_t ms = 0;
    for (int i = 0; i < 12; ++i) REQUIRE(spool->read_next(f, ms));
    spool->commit(12);  // whole segments of these are gone; a partial one stays
  }
  // Tear the last record of the newest segment, as a crash mid-write would.
  fs::path newest;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (newest.empty() || e.path() > newest) newest = e.path();
  }
  const auto size = fs::file_size(newest);
  fs::resize_file(newest, size - 3);
  auto spool = open_spool(dir);
  CHECK(spool->torn_records() == 1);
  std::string f;
  int64_t ms = 0;
  std::vector<std::string> got;
  while (spool->read_next(f, ms)) got.push_back(f);
  // At-least-once: the partly delivered head segment comes again whole.
  REQUIRE(!got.empty());
  CHECK(got.back() == frame(18));
  const int first = std::stoi(got.front().substr(got.front().rfind(' ') + 1));
  CHECK(first <= 12);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == frame(first + static_cast<int>(i)));
  // New records go to a new segment after the resumed ones.
  REQUIRE(spool->append(frame(99), 99) == Spool::Append::kOk);
  REQUIRE(spool->read_next(f, ms));
  CHECK(f == frame(99));
}

TEST_CASE("spool: garbage files and a file for a directory are errors, not crashes",
          "[shipping][spool]") {
  TempDir tmp;
  std::ofstream(tmp.path + "/file") << "x";
  auto bad = Spool::Open(tmp.path + "/file", 100);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("not a directory") != std::string::npos);
  const std::string dir = tmp.path + "/s";
  fs::create_directory(dir);
  std::ofstream(dir + "/spool-00000000000000000001.log") << "garbage without framing";
  std::ofstream(dir + "/unrelated.txt") << "left alone";
  auto spool = open_spool(dir);
  CHECK(spool->records() == 0);
  CHECK(spool->torn_records() == 1);
  CHECK(fs::exists(dir + "/unrelated.txt"));
  REQUIRE(spool->append(frame(1), 1) == Spool::Append::kOk);
  std::string f;
  int64_t ms = 0;
  REQUIRE(spool->read_next(f, ms));
  CHECK(f == frame(1));
}
