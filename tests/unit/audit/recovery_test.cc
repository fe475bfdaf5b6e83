// SPDX-License-Identifier: Apache-2.0
//
// Crash recovery of the audit trail (issue 19): the file left by a killed
// writer, as the kernel leaves it, read back by the real JsonlWriter and
// checked by the verifier.
#include "audit/recovery.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "audit/chain_state.h"
#include "audit/compress.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace {

using dbwarden::ConnectionInfo;
using namespace dbwarden::audit;
using namespace dbw_audit_test;

void put(const std::string& path, const std::string& bytes, bool append = false) {
  std::ofstream(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc)) << bytes;
}

// A trail whose state file lags its log the way a SIGKILL leaves it: the
// state as it was after the first `synced` statements, the log holding
// `synced + unsynced` of them.
struct CrashedLog {
  TempDir tmp;
  WriterOptions o;
  std::string path, state;
  CrashedLog(uint64_t synced, uint64_t unsynced) {
    o.path = tmp.path + "/audit.jsonl";
    o.compress_rotated = false;
    path = o.path;
    state = o.path + ".state";
    write_statements(o, 0, synced);
    const std::string old_state = slurp(state);
    write_statements(o, synced, unsynced);
    auto st = parse_state(old_state);
    REQUIRE(st.ok());
    st.value().clean_stop = false;  // what a killed agent's last update says
    REQUIRE(write_state_file(state, st.value()).ok());
  }
};

std::vector<std::string> recovery_lines(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) {
    if (l.find(kRecoveryMarker) != std::string::npos) out.push_back(l);
  }
  return out;
}

VerifySummary require_valid(const std::vector<std::string>& files, const std::string& state) {
  auto s = verify(files, state);
  INFO((s.failure
            ? s.failure->file + ":" + std::to_string(s.failure->line) + " " + s.failure->reason
            : std::string("valid")));
  REQUIRE(s.valid());
  return s;
}

}  // namespace

TEST_CASE("recovery: a file ahead of its state file is followed", "[audit][recovery]") {
  // Pins issue 19: start() read the tail through the O_WRONLY append fd, so
  // pread failed, the tail looked empty and the chain went on from the
  // lagging state: verify-audit then said "reordered or duplicated".
  CrashedLog log(10, 10);
  write_statements(log.o, 20, 5);
  const auto s = require_valid({log.path}, log.state);
  CHECK(s.statements == 25);
  REQUIRE(s.recoveries.size() == 1);  // the crash shows, as a crash
  CHECK(s.recoveries[0].record.bytes_cut == 0);
  CHECK(s.recoveries[0].record.state_next_seq == 11u);  // 10 statements + open checkpoint
  // The second run wrote seq 11..21 (open checkpoint, 10 statements).
  CHECK(s.recoveries[0].record.last_good_seq == 21u);
}

TEST_CASE("recovery: a torn last record is cut off, kept aside and recorded", "[audit][recovery]") {
  CrashedLog log(10, 10);
  const std::string whole = slurp(log.path);
  // SIGKILL inside write(2): the kernel stops copying at a page boundary,
  // mid-record.
  const std::string torn = R"({"time":"2026-12-06T00:00:00Z","db.query.text":"SELECT 9)";
  put(log.path, torn, /*append=*/true);
  auto w = open_writer(log.o);
  CHECK(w->recovered());
  CHECK(w->bytes_cut() == torn.size());
  w.reset();
  CHECK(slurp(log.path).substr(0, whole.size()) == whole);  // nothing before the tear changed

  const auto s = require_valid({log.path}, log.state);
  REQUIRE(s.recoveries.size() == 1);
  const RecoveryView& r = s.recoveries[0].record;
  CHECK(r.bytes_cut == torn.size());
  REQUIRE(!r.cut_file.empty());
  CHECK(slurp(log.tmp.path + "/" + r.cut_file) == torn);  // the cut bytes are kept
  CHECK(r.cut_file.front() == '.');                       // hidden: not taken for another audit log
  CHECK(dir_files(log.tmp.path).size() == 1);
}

TEST_CASE("recovery: pages a power loss never wrote (zeros) are cut off", "[audit][recovery]") {
  CrashedLog log(5, 5);
  put(log.path, std::string(8192, '\0'), /*append=*/true);
  write_statements(log.o, 10, 3);
  const auto s = require_valid({log.path}, log.state);
  CHECK(s.statements == 13);
  REQUIRE(s.recoveries.size() == 1);
  CHECK(s.recoveries[0].record.bytes_cut == 8192);
}

TEST_CASE("recovery: a clean stop leaves no recovery record, every crash leaves one",
          "[audit][recovery]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  write_statements(o, 0, 3);
  auto st = read_state_file(o.path + ".state");
  REQUIRE(st.ok());
  CHECK(st.value().clean_stop);
  write_statements(o, 3, 3);
  CHECK(recovery_lines(read_lines(o.path)).empty());

  // Killed right after a state update: the file is level with the state,
  // but the state says the agent never stopped.
  st.value() = read_state_file(o.path + ".state").value();
  st.value().clean_stop = false;
  REQUIRE(write_state_file(o.path + ".state", st.value()).ok());
  write_statements(o, 6, 3);
  CHECK(recovery_lines(read_lines(o.path)).size() == 1);
  CHECK(require_valid({o.path}, o.path + ".state").recoveries.size() == 1);
}

TEST_CASE("recovery: a file behind its state file still fails verification", "[audit][recovery]") {
  CrashedLog log(10, 0);
  // Records the state had seen synced are gone: removal, not a crash.
  const auto state = read_state_file(log.state).value();
  auto lines = read_lines(log.path);
  lines.resize(lines.size() - 3);
  write_lines(log.path, lines);
  ChainState crashed = state;
  crashed.clean_stop = false;
  REQUIRE(write_state_file(log.state, crashed).ok());
  write_statements(log.o, 10, 2);
  const auto s = verify({log.path}, log.state);
  REQUIRE(!s.valid());
  CHECK_THAT(s.failure->reason, Catch::Contains("deleted: records seq 9..10 are missing"));
}

TEST_CASE("recovery: a recovery record cannot excuse records removed before it",
          "[audit][recovery]") {
  CrashedLog log(4, 4);
  write_statements(log.o, 8, 2);
  auto lines = read_lines(log.path);
  size_t at = 0;
  while (at < lines.size() && lines[at].find(kRecoveryMarker) == std::string::npos) ++at;
  REQUIRE(at >= 3);
  lines.erase(lines.begin() + static_cast<long>(at) - 3);  // a statement before the crash
  write_lines(log.path, lines);
  const auto s = verify({log.path});
  REQUIRE(!s.valid());
  CHECK_THAT(s.failure->reason, Catch::Contains("deleted"));
}

TEST_CASE("recovery: killed mid-rotation, the renamed file holds the newest records",
          "[audit][recovery]") {
  CrashedLog log(6, 6);
  // rename(2) done, the new active file not yet (or just) created: the
  // newest records are in the rotated file, the state still lags.
  const std::string rotated = log.path + ".29991231T235959.999999Z";
  REQUIRE(::rename(log.path.c_str(), rotated.c_str()) == 0);
  SECTION("no active file") {}
  SECTION("an empty active file") { put(log.path, ""); }
  SECTION("an active file with a torn first record") { put(log.path, "{\"time\":\"2026"); }
  write_statements(log.o, 12, 4);
  const auto s = require_valid(dir_files(log.tmp.path), log.state);
  CHECK(s.statements == 16);
  CHECK(s.files == 2);
  CHECK(s.recoveries.size() == 1);
}

TEST_CASE("recovery: scan_tail finds the last complete record from the end", "[audit][recovery]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  write_statements(o, 0, 3000);  // more than the first 64 KiB window holds
  const uint64_t size = std::filesystem::file_size(o.path);
  // A torn record longer than the first window: the scan widens.
  put(o.path, "{\"db.query.text\":\"" + std::string(200 * 1024, 'x'), /*append=*/true);
  const int fd = ::open(o.path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  const TailScan t = scan_tail(fd, std::filesystem::file_size(o.path));
  ::close(fd);
  REQUIRE(t.found);
  CHECK(t.good_end == size);
  CHECK(t.seq == 3000);  // open checkpoint + 3000 statements: seq 0..3000
}

TEST_CASE("recovery: the first checkpoint after a restart carries the capture's drops",
          "[audit][recovery]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.defer_open_checkpoint = true;
  {
    auto w = open_writer(o);
    REQUIRE(w->flush().ok());
    CHECK(read_lines(o.path).empty());  // waits for the capture's counters
    w->set_capture_drops({{"ringbuf_full", 1234}, {"truncated", 5}});
    REQUIRE(w->flush().ok());
  }
  const auto lines = read_lines(o.path);
  REQUIRE(!lines.empty());
  const auto j = nlohmann::json::parse(lines.front());
  CHECK(j["dbwarden.reason"] == "open");
  CHECK(j["dbwarden.capture_dropped"]["ringbuf_full"] == 1234);
  CHECK(j["dbwarden.capture_dropped"]["truncated"] == 5);
  require_valid({o.path}, o.path + ".state");
}

TEST_CASE("recovery: the trail is fdatasynced every fsync_interval, or not at all",
          "[audit][recovery]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.flush_interval = std::chrono::milliseconds(10);
  o.state_interval = std::chrono::seconds(3600);
  ConnectionInfo c;
  for (const int interval_ms : {10, 0}) {
    o.fsync_interval = std::chrono::milliseconds(interval_ms);
    auto w = open_writer(o);
    // The syncer runs on its own thread, and a loaded disk can make one
    // fdatasync take longer than the 30 ms between statements: with an
    // interval, write on (up to ~6 s) until three syncs are seen rather than
    // counting after a fixed time. Without one, five rounds must bring none.
    const uint64_t rounds = interval_ms > 0 ? 200 : 5;
    for (uint64_t i = 0; i < rounds; ++i) {
      if (interval_ms > 0 && i >= 5 && w->fsyncs() >= 3) break;
      w->on_statement(make_statement(&c, i));
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      w->flush_if_due(static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 +
                      static_cast<uint64_t>(now.tv_nsec));
    }
    if (interval_ms > 0) {
      CHECK(w->fsyncs() >= 3);  // by the interval, not only at the state update
    } else {
      CHECK(w->fsyncs() <= 1);  // the first state update's sync only
    }
  }
}

TEST_CASE("recovery: killed between the .zst's rename and its source's removal",
          "[audit][recovery]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.rotate_bytes = 3000;
  o.compress_rotated = false;
  write_statements(o, 0, 30);
  const auto files = dir_files(tmp.path);
  REQUIRE(files.size() >= 3);
  // The compressor's last two steps: the .zst renamed into place, the source
  // not yet removed. Both hold the same records; verify-audit reads one.
  REQUIRE(zstd_compress_file(files[1], 1).ok());
  {
    // Restore the source from the .zst, as it was before the unlink.
    std::string text;
    ZstdDecoder d;
    REQUIRE(d.feed(slurp(files[1] + ".zst"), [&](std::string_view p) { text.append(p); }).ok());
    put(files[1], text);
  }
  REQUIRE(std::filesystem::exists(files[1]));
  REQUIRE(std::filesystem::exists(files[1] + ".zst"));
  const auto s = require_valid(dir_files(tmp.path), o.path + ".state");
  CHECK(s.statements == 30);
}
