// SPDX-License-Identifier: Apache-2.0
#include "audit/compress.h"

#include <sys/stat.h>
#include <zstd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

#include "audit_test_util.h"

namespace {

using dbwarden::audit::zstd_compress_file;
using dbwarden::audit::ZstdDecoder;
using namespace dbw_audit_test;

constexpr size_t kFrame = 2u << 20;  // compress.cc's frame size

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Audit-like lines with a fixed-seed varying part: compressible, never constant.
std::string make_text(size_t bytes) {
  std::string s;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  while (s.size() < bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s += "{\"time\":\"2026-01-01T00:00:00." + std::to_string(x % 1000000000) +
         "Z\",\"db.query.text\":\"SELECT abalance FROM pgbench_accounts WHERE aid = " +
         std::to_string(x % 1000000) + "\"}\n";
  }
  s.resize(bytes);
  return s;
}

// Compresses `text` through a file and returns the decoded bytes and frame count.
struct RoundTrip {
  std::string decoded;
  size_t frames = 0;
  bool at_frame_end = false;
};
RoundTrip round_trip(const std::string& dir, const std::string& text) {
  const std::string src = dir + "/audit.jsonl.20260101T000000.000000Z";
  std::ofstream(src, std::ios::binary) << text;
  REQUIRE(zstd_compress_file(src, 1).ok());
  CHECK(!fs::exists(src));
  CHECK(!fs::exists(src + ".zst.tmp"));
  struct stat st {};
  REQUIRE(stat((src + ".zst").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  const std::string z = read_file(src + ".zst");
  RoundTrip r;
  for (size_t at = 0; at < z.size(); ++r.frames) {
    const size_t n = ZSTD_findFrameCompressedSize(z.data() + at, z.size() - at);
    REQUIRE(!ZSTD_isError(n));
    at += n;
  }
  ZstdDecoder d;
  REQUIRE(d.feed(z, [&](std::string_view piece) { r.decoded.append(piece); }).ok());
  r.at_frame_end = d.at_frame_end();
  fs::remove(src + ".zst");
  return r;
}

}  // namespace

TEST_CASE("compress: a rotated file comes back byte for byte from its frames",
          "[audit][compress]") {
  TempDir tmp;
  SECTION("several frames, the last one short") {
    const std::string text = make_text(2 * kFrame + 12345);
    const RoundTrip r = round_trip(tmp.path, text);
    CHECK(r.frames == 3);
    CHECK(r.at_frame_end);
    CHECK(r.decoded == text);
  }
  SECTION("an exact multiple of the frame size: no empty frame after it") {
    const std::string text = make_text(2 * kFrame);
    const RoundTrip r = round_trip(tmp.path, text);
    CHECK(r.frames == 2);
    // The last frame's output fills the decoder's buffer exactly (2 MiB is a
    // multiple of ZSTD_DStreamOutSize()): a rotated file of exactly 4 MiB read
    // as "truncated" in the crash-restart test.
    CHECK(r.at_frame_end);
    CHECK(r.decoded == text);
  }
  SECTION("a small file is one frame") {
    const std::string text = make_text(1000);
    const RoundTrip r = round_trip(tmp.path, text);
    CHECK(r.frames == 1);
    CHECK(r.decoded == text);
  }
  SECTION("an empty file is one empty frame") {
    const RoundTrip r = round_trip(tmp.path, "");
    CHECK(r.frames == 1);
    CHECK(r.at_frame_end);
    CHECK(r.decoded.empty());
  }
}

TEST_CASE("compress: a truncated multi-frame file is not at a frame end", "[audit][compress]") {
  TempDir tmp;
  const std::string src = tmp.path + "/audit.jsonl.20260101T000000.000000Z";
  const std::string text = make_text(kFrame + 5000);
  std::ofstream(src, std::ios::binary) << text;
  REQUIRE(zstd_compress_file(src, 1).ok());
  const std::string z = read_file(src + ".zst");
  const size_t first = ZSTD_findFrameCompressedSize(z.data(), z.size());
  REQUIRE(!ZSTD_isError(first));
  REQUIRE(first < z.size());
  ZstdDecoder d;
  std::string decoded;
  // Cut in the middle of the second frame.
  REQUIRE(d.feed(std::string_view(z).substr(0, first + (z.size() - first) / 2),
                 [&](std::string_view piece) { decoded.append(piece); })
              .ok());
  CHECK(!d.at_frame_end());
  CHECK(decoded.size() >= kFrame);  // the first frame whole
  CHECK(decoded.size() < text.size());
  CHECK(text.compare(0, decoded.size(), decoded) == 0);
}

TEST_CASE("compress: a missing source is an error and leaves nothing behind", "[audit][compress]") {
  TempDir tmp;
  const std::string src = tmp.path + "/gone";
  const auto s = zstd_compress_file(src, 1);
  REQUIRE(!s.ok());
  CHECK_THAT(s.message(), Catch::Contains(src) && Catch::Contains("No such file"));
  CHECK(!fs::exists(src + ".zst"));
  CHECK(!fs::exists(src + ".zst.tmp"));
}
