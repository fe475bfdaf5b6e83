// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden audit cat`: the trail read back as JSON Lines, whole records only,
// from trails the real writer made (rotated, compressed, crashed and recovered).
#include "audit/trail_reader.h"

#include <time.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/audit_cat.h"
#include "audit/frame.h"
#include "audit/recovery.h"
#include "audit_test_util.h"

namespace {

using dbwarden::ConnectionInfo;
using namespace dbwarden::audit;
using namespace dbw_audit_test;

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

int cat(const std::vector<std::string>& args, std::string& out, std::string& err,
        const std::function<bool()>& stop = nullptr) {
  std::vector<const char*> argv{"cat"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream o, e;
  const int rc =
      dbwarden::agent::audit_cat_main(static_cast<int>(argv.size()), argv.data(), o, e, stop);
  out = o.str();
  err = e.str();
  return rc;
}

}  // namespace

TEST_CASE("audit cat: a rotated, compressed trail comes back as JSON Lines in chain order",
          "[audit][cat]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.rotate_bytes = 4000;
  write_statements(o, 0, 60);
  write_statements(o, 60, 40);
  REQUIRE(dir_files(tmp.path).size() >= 5);
  std::string out, err;
  REQUIRE(cat({tmp.path}, out, err) == 0);
  CHECK(err.empty());
  const auto lines = split_lines(out);
  const auto texts = statement_texts(lines);  // every line is JSON
  REQUIRE(texts.size() == 100);
  for (size_t i = 0; i < texts.size(); ++i) CHECK(texts[i] == "SELECT " + std::to_string(i));
  // The same bytes verify-audit checks: the seq runs 0, 1, 2, ... across files.
  for (size_t i = 0; i < lines.size(); ++i) {
    CHECK(nlohmann::json::parse(lines[i])["dbwarden.seq"] == i);
  }
  // One file alone, compressed or not.
  REQUIRE(cat({dir_files(tmp.path).front()}, out, err) == 0);
  CHECK(is_checkpoint(split_lines(out).front()));
}

TEST_CASE("audit cat: an incomplete last record is left out and said so", "[audit][cat]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  write_statements(o, 0, 3);
  std::ofstream(o.path, std::ios::app) << "{\"time\":\"2026";
  std::string out, err;
  REQUIRE(cat({o.path}, out, err) == 0);
  CHECK(split_lines(out).size() == 4);  // open checkpoint + 3
  CHECK_THAT(err, Catch::Contains("13 byte(s) of an incomplete last record left out"));
}

TEST_CASE("audit cat: usage and read errors", "[audit][cat]") {
  std::string out, err;
  CHECK(cat({"--bogus"}, out, err) == 2);
  CHECK(cat({"/nonexistent/dir"}, out, err) == 2);
  CHECK_THAT(err, Catch::Contains("/nonexistent/dir"));
  TempDir tmp;
  std::ofstream(tmp.path + "/audit.jsonl.20260101T000000.000000Z.zst") << "not zstd";
  CHECK(cat({tmp.path}, out, err) == 1);
}

TEST_CASE("audit cat --follow: across rotations and a crash's cut, each record once and whole",
          "[audit][cat]") {
  const bool framed = GENERATE(false, true);  // format: jsonl, then frames (--audit-format zst)
  INFO("framed: " << framed);
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + (framed ? "/audit.jsonl.zst" : "/audit.jsonl");
  o.format = framed ? TrailFormat::kFrames : TrailFormat::kJsonl;
  o.rotate_bytes = framed ? 700 : 6000;
  o.flush_interval = std::chrono::milliseconds(20);
  o.frame_interval = std::chrono::milliseconds(20);
  write_statements(o, 0, 5);  // the active file exists before the follower starts

  std::atomic<bool> stop{false};
  std::string out, err;
  int rc = -1;
  std::thread follower([&] {
    rc = cat({"--follow", tmp.path}, out, err, [&] { return stop.load(); });
  });
  ConnectionInfo c;
  {
    auto w = open_writer(o);
    for (uint64_t i = 5; i < 60; ++i) {
      w->on_statement(make_statement(&c, i));
      if (i % 5 == 0) {
        REQUIRE(w->flush().ok());
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
      }
    }
    REQUIRE(w->flush().ok());
    CHECK(w->rotations() >= 3);
  }
  // A kill mid-record (mid-frame): the follower holds the torn bytes back; the
  // next agent cuts them off and continues after the last complete record.
  if (framed) {
    const std::string whole = slurp(o.path);
    FrameUnit first;
    REQUIRE(split_unit(whole, true, first, nullptr) == SplitResult::kUnit);
    std::ofstream(o.path, std::ios::app) << whole.substr(0, first.bytes / 2);
  } else {
    std::ofstream(o.path, std::ios::app) << "{\"time\":\"2026-12-06T00:00:00Z\",\"db.query";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  {
    auto st = read_state_file(o.path + ".state").value();
    st.clean_stop = false;
    REQUIRE(write_state_file(o.path + ".state", st).ok());
  }
  write_statements(o, 60, 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  stop = true;
  follower.join();
  REQUIRE(rc == 0);
  const auto lines = split_lines(out);
  const auto texts = statement_texts(lines);  // every line parses: nothing torn got through
  INFO(out);
  REQUIRE(texts.size() == 70);
  for (size_t i = 0; i < texts.size(); ++i) CHECK(texts[i] == "SELECT " + std::to_string(i));
  size_t recoveries = 0;
  for (const auto& l : lines) recoveries += l.find(kRecoveryMarker) != std::string::npos;
  CHECK(recoveries == 1);
  // What --follow printed is what a later cat prints.
  std::string again;
  REQUIRE(cat({tmp.path}, again, err) == 0);
  CHECK(again == out);
}

TEST_CASE("audit cat --follow: the file printed was rotated before the follow began",
          "[audit][cat]") {
  // cat read the active file; before the follower opened it, the writer
  // rotated it (more than once): the follower continues after the last
  // record printed, from the rotated files.
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.compress_rotated = GENERATE(false, true);
  write_statements(o, 0, 5);
  timespec started{};
  clock_gettime(CLOCK_REALTIME, &started);
  std::string printed;
  REQUIRE(cat_audit_file(o.path, [&](std::string_view l) { printed.append(l); }).ok());
  const auto before = split_lines(printed);
  const uint64_t last = nlohmann::json::parse(before.back())["dbwarden.seq"].get<uint64_t>();
  o.rotate_bytes = 3000;
  write_statements(o, 5, 40);
  REQUIRE(dir_files(tmp.path).size() >= 4);

  std::string followed;
  FollowOptions f;
  f.poll = std::chrono::milliseconds(20);
  f.since_unix_ns = static_cast<int64_t>(started.tv_sec) * 1'000'000'000 + started.tv_nsec;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  f.stop = [&] { return std::chrono::steady_clock::now() > deadline; };
  REQUIRE(follow_audit_file(
              o.path, last, [&](std::string_view l) { followed.append(l); }, f)
              .ok());
  auto all = before;
  for (const auto& l : split_lines(followed)) all.push_back(l);
  const auto texts = statement_texts(all);
  REQUIRE(texts.size() == 45);
  for (size_t i = 0; i < texts.size(); ++i) CHECK(texts[i] == "SELECT " + std::to_string(i));
  for (size_t i = 0; i < all.size(); ++i) {
    CHECK(nlohmann::json::parse(all[i])["dbwarden.seq"] == i);
  }
}
