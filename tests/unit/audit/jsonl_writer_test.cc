// SPDX-License-Identifier: Apache-2.0
#include "audit/jsonl_writer.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "audit_test_util.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::Status;
using dbwarden::audit::JsonlWriter;
using dbwarden::audit::WriterOptions;
using namespace dbw_audit_test;

std::vector<std::string> expected_texts(uint64_t n) {
  std::vector<std::string> v;
  for (uint64_t i = 0; i < n; ++i) v.push_back("SELECT " + std::to_string(i));
  return v;
}

// A writer that waits for room at a tiny bound instead of dropping (replay's mode).
WriterOptions waiting_options(const std::string& path) {
  WriterOptions o;
  o.path = path;
  o.flush_bytes = 512;
  o.max_buffered_bytes = 4096;
  o.wait_when_full = true;
  return o;
}

// While alive, this process may not make files longer than `bytes` (RLIMIT_FSIZE):
// write(2) writes up to it, then fails with EFBIG (SIGXFSZ ignored meanwhile).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(uint64_t bytes) {
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old_) == 0);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    REQUIRE(sigaction(SIGXFSZ, &ignore, &previous_) == 0);
    rlimit small = old_;
    small.rlim_cur = bytes;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  }
  ~FileSizeLimit() {  // CHECK, not REQUIRE: a destructor must not throw
    CHECK(setrlimit(RLIMIT_FSIZE, &old_) == 0);
    CHECK(sigaction(SIGXFSZ, &previous_, nullptr) == 0);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit old_{};
  struct sigaction previous_ {};
};

}  // namespace

TEST_CASE("writer: creates directories 0700 and file 0600, appends lines", "[audit][writer]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/a/b/audit.jsonl";
  ConnectionInfo c;
  c.db_system = "postgresql";
  {
    auto w = open_writer(o);
    for (uint64_t i = 0; i < 3; ++i) w->on_statement(make_statement(&c, i));
    CHECK(w->records_written() == 0);  // batched until handed over
    REQUIRE(w->flush().ok());
    CHECK(w->records_written() == 3);
    CHECK(w->bytes_written() == fs::file_size(o.path));
    CHECK(w->buffered_bytes() == 0);
  }
  struct stat st {};
  REQUIRE(stat((tmp.path + "/a").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  REQUIRE(stat((tmp.path + "/a/b").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  REQUIRE(stat(o.path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(stat((o.path + ".state").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);

  {  // reopening appends; the destructor writes what is left
    auto w = open_writer(o);
    w->on_statement(make_statement(&c, 3));
  }
  const auto lines = read_lines(o.path);
  REQUIRE(lines.size() == 6);  // two "open" checkpoints and four statements
  CHECK(is_checkpoint(lines[0]));
  CHECK(is_checkpoint(lines[4]));
  CHECK(statement_texts(lines) == expected_texts(4));
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i]);
    CHECK(j["dbwarden.seq"] == i);
    CHECK(j["dbwarden.chain"].get<std::string>().size() == 64);
  }
}

TEST_CASE("writer: open errors name the path and the reason", "[audit][writer]") {
  TempDir tmp;
  const std::string file = tmp.path + "/plain";
  std::ofstream(file) << "x";
  WriterOptions o;
  o.path = file + "/sub/audit.jsonl";
  auto r = JsonlWriter::Open(o);
  REQUIRE(!r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains(file + "/sub") && Catch::Contains("Not a directory"));

  o.path = tmp.path;  // a directory
  r = JsonlWriter::Open(o);
  REQUIRE(!r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains(tmp.path) && Catch::Contains("Is a directory"));

  o.path = tmp.path + "/audit.jsonl";
  o.hmac_key_file = tmp.path + "/no-such-key";
  r = JsonlWriter::Open(o);
  REQUIRE(!r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("no-such-key"));

  o.path.clear();
  CHECK(!JsonlWriter::Open(o).ok());
}

TEST_CASE("writer: hands batches over by size and by time", "[audit][writer]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.flush_bytes = 1000;
  o.flush_interval = std::chrono::milliseconds(200);
  ConnectionInfo c;
  auto w = open_writer(o);
  auto wait_for = [&](uint64_t n) {
    for (int i = 0; i < 500 && w->records_written() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return w->records_written();
  };

  w->on_statement(make_statement(&c, 0));
  const uint64_t t0 = 1'000'000'000'000'000;  // a "now" long after the writer was opened
  w->flush_if_due(t0);                        // timer due: handed over
  CHECK(wait_for(1) == 1);
  w->on_statement(make_statement(&c, 1));
  w->flush_if_due(t0 + 199'000'000);  // not yet due, and few bytes
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(w->records_written() == 1);
  w->flush_if_due(t0 + 200'000'000);
  CHECK(wait_for(2) == 2);

  // Size: on_statement itself hands over once flush_bytes are batched, with
  // no timer call; the record that crosses the size goes along.
  uint64_t i = 2;
  while (w->records_written() == 2) {
    w->on_statement(make_statement(&c, i++));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(i < 40);
  }
  CHECK(i > 4);
  CHECK(wait_for(i) == i);
  CHECK(w->buffered_bytes() == 0);
  CHECK(statement_texts(read_lines(o.path)) == expected_texts(i));
}

TEST_CASE("writer: a full disk counts errors, bounds memory, drops, never blocks",
          "[audit][writer]") {
  WriterOptions o;
  o.path = "/dev/full";  // every write fails with ENOSPC; not a regular file: no state, no rotation
  o.flush_bytes = 512;
  o.max_buffered_bytes = 4096;
  ConnectionInfo c;
  auto w = open_writer(o);
  // Not timed (a loaded machine makes any bound flaky): that the producer never waited
  // for the disk shows in what it did instead, dropping and counting nearly every record.
  for (uint64_t i = 0; i < 20'000; ++i) w->on_statement(make_statement(&c, i));
  const Status s = w->flush();
  REQUIRE(!s.ok());
  CHECK_THAT(s.message(), Catch::Contains("/dev/full") && Catch::Contains("No space left"));
  CHECK(w->records_written() == 0);
  CHECK(w->write_errors() >= 1);
  CHECK(w->buffered_bytes() <= 2 * o.max_buffered_bytes);  // chaining adds ~100 bytes a record
  CHECK(w->records_dropped() > 19'000);
}

TEST_CASE("writer: wait_when_full keeps every record at the bound (offline replay)",
          "[audit][writer]") {
  // A producer far faster than the writer thread (a replay) and a tiny bound: with
  // wait_when_full nothing is dropped and the file holds every record in order.
  TempDir tmp;
  const WriterOptions o = waiting_options(tmp.path + "/audit.jsonl");
  ConnectionInfo c;
  auto w = open_writer(o);
  constexpr uint64_t kRecords = 20'000;
  for (uint64_t i = 0; i < kRecords; ++i) w->on_statement(make_statement(&c, i));
  REQUIRE(w->flush().ok());
  CHECK(w->records_dropped() == 0);
  CHECK(w->records_written() == kRecords);
  CHECK(statement_texts(read_lines(o.path)) == expected_texts(kRecords));
}

TEST_CASE("writer: wait_when_full still drops (counted) while writes fail: no hang",
          "[audit][writer]") {
  const WriterOptions o = waiting_options("/dev/full");
  ConnectionInfo c;
  auto w = open_writer(o);
  for (uint64_t i = 0; i < 20'000; ++i) w->on_statement(make_statement(&c, i));
  CHECK(!w->flush().ok());
  CHECK(w->records_written() == 0);
  CHECK(w->records_dropped() > 0);
}

TEST_CASE("writer: wait_when_full drops whole records while writes fail, then recovers",
          "[audit][writer]") {
  // Writes fail (RLIMIT_FSIZE, EFBIG) while a fast producer is at the bound: the records
  // it cannot place are dropped whole and counted; once writes work again, the file holds
  // only complete records, in order, and nothing else (no stray bytes of a dropped one).
  TempDir tmp;
  const WriterOptions o = waiting_options(tmp.path + "/audit.jsonl");
  ConnectionInfo c;
  auto w = open_writer(o);
  REQUIRE(w->flush().ok());  // the opening checkpoint
  constexpr uint64_t kRecords = 2000;
  {
    const FileSizeLimit limit(w->bytes_written());  // not one more byte
    for (uint64_t i = 0; i < kRecords; ++i) w->on_statement(make_statement(&c, i));
  }
  REQUIRE(w->flush().ok());
  CHECK(w->records_dropped() > 0);
  CHECK(w->records_written() + w->records_dropped() == kRecords);
  const std::vector<std::string> lines = read_lines(o.path);
  for (const std::string& line : lines) {
    REQUIRE(line.find('\0') == std::string::npos);
    REQUIRE_NOTHROW(nlohmann::json::parse(line));
  }
  const std::vector<std::string> texts = statement_texts(lines);
  CHECK(texts.size() == w->records_written());
  CHECK(std::is_sorted(texts.begin(), texts.end(), [](const std::string& a, const std::string& b) {
    return std::stoull(a.substr(a.rfind(' ') + 1)) < std::stoull(b.substr(b.rfind(' ') + 1));
  }));
}

TEST_CASE("writer: partial writes keep whole records in order", "[audit][writer]") {
  // RLIMIT_FSIZE makes write(2) write only up to the limit, then fail with
  // EFBIG: a real partial write followed by an error.
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.flush_bytes = 1 << 20;
  ConnectionInfo c;
  c.db_system = "postgresql";
  auto w = open_writer(o);
  REQUIRE(w->flush().ok());  // the opening checkpoint
  const uint64_t opening = w->bytes_written();
  for (uint64_t i = 0; i < 50; ++i) w->on_statement(make_statement(&c, i));

  Status s;
  {
    const FileSizeLimit limit(opening + 1000);
    s = w->flush();
  }

  CHECK(!s.ok());
  CHECK(w->bytes_written() == opening + 1000);
  const uint64_t complete = w->records_written();
  CHECK(complete > 0);
  CHECK(complete < 50);
  CHECK(w->write_errors() >= 1);  // one per attempt: on hand-over and on flush
  CHECK(w->write_errors() <= 2);

  REQUIRE(w->flush().ok());
  CHECK(w->records_written() == 50);
  CHECK(w->bytes_written() == fs::file_size(o.path));
  CHECK(statement_texts(read_lines(o.path)) == expected_texts(50));
}

TEST_CASE("writer: a backlog is written in pieces, a failure among them loses and repeats nothing",
          "[audit][writer]") {
  // One batch of ~1.9 MB goes out in several write(2)s of about 256 KiB. The
  // file may not grow past ~700 KB at first (RLIMIT_FSIZE): a piece is cut short
  // there and fails, and the writer tries no further piece in that round (one
  // error a round: on hand-over and on flush). Once the limit is gone, the file
  // holds every record once, in order.
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.flush_bytes = 64 << 20;  // everything in one batch, handed over by flush()
  o.max_buffered_bytes = 64 << 20;
  ConnectionInfo c;
  auto w = open_writer(o);
  REQUIRE(w->flush().ok());  // the opening checkpoint
  const uint64_t opening = w->bytes_written();
  constexpr uint64_t kRecords = 3000;
  const std::string padding(500, 'x');
  std::vector<std::string> texts;
  for (uint64_t i = 0; i < kRecords; ++i) {
    dbwarden::Statement s = make_statement(&c, i);
    s.text += " -- " + padding;
    texts.push_back(s.text);
    w->on_statement(s);
  }
  Status s;
  {
    const FileSizeLimit limit(opening + 700'000);
    s = w->flush();
  }
  CHECK(!s.ok());
  CHECK(w->write_errors() >= 1);
  CHECK(w->write_errors() <= 2);
  CHECK(w->bytes_written() == opening + 700'000);
  CHECK(w->records_written() > 0);
  CHECK(w->records_written() < kRecords);

  REQUIRE(w->flush().ok());
  CHECK(w->records_written() == kRecords);
  CHECK(w->records_dropped() == 0);
  CHECK(w->bytes_written() == fs::file_size(o.path));
  CHECK(w->bytes_written() > opening + 1'800'000);
  CHECK(statement_texts(read_lines(o.path)) == texts);
}
