// SPDX-License-Identifier: Apache-2.0
#include "audit/jsonl_writer.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using dbwarden::ConnectionInfo;
using dbwarden::Statement;
using dbwarden::Status;
using dbwarden::audit::JsonlWriter;
using dbwarden::audit::WriterOptions;

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/dbw-audit-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Statement make_statement(const ConnectionInfo* c, uint64_t i) {
  Statement s;
  s.connection = c;
  s.start_ns = 1'000'000 + i;
  s.end_ns = 2'000'000 + i;
  s.text = "SELECT " + std::to_string(i);
  s.operation = "SELECT";
  return s;
}

std::unique_ptr<JsonlWriter> open_writer(const WriterOptions& o) {
  auto r = JsonlWriter::Open(o);
  if (!r.ok()) FAIL(r.status().message());
  return std::move(r.value());
}

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
    CHECK(w->records_written() == 0);  // buffered until flushed
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

  {  // reopening appends; the destructor flushes
    auto w = open_writer(o);
    w->on_statement(make_statement(&c, 3));
  }
  const auto lines = read_lines(o.path);
  REQUIRE(lines.size() == 4);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i]);
    CHECK(j["db.query.text"] == "SELECT " + std::to_string(i));
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

  o.path.clear();
  CHECK(!JsonlWriter::Open(o).ok());
}

TEST_CASE("writer: flushes by size and by time", "[audit][writer]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.flush_bytes = 1000;
  o.flush_interval = std::chrono::milliseconds(200);
  ConnectionInfo c;
  auto w = open_writer(o);

  w->on_statement(make_statement(&c, 0));
  const uint64_t t0 = 1'000'000'000'000;  // a "now" long after the writer was opened
  w->flush_if_due(t0);                    // timer due: the first call flushes
  CHECK(w->records_written() == 1);
  w->on_statement(make_statement(&c, 1));
  w->flush_if_due(t0 + 199'000'000);  // not yet due, and few bytes
  CHECK(w->records_written() == 1);
  w->flush_if_due(t0 + 200'000'000);
  CHECK(w->records_written() == 2);

  // Size: on_statement itself writes once flush_bytes are buffered.
  uint64_t i = 2;
  while (w->records_written() == 2) {
    w->on_statement(make_statement(&c, i++));
    REQUIRE(w->buffered_bytes() < o.flush_bytes);
  }
  CHECK(w->buffered_bytes() == 0);
  CHECK(read_lines(o.path).size() == i);
}

TEST_CASE("writer: a full disk counts errors, bounds memory, drops and recovers",
          "[audit][writer]") {
  WriterOptions o;
  o.path = "/dev/full";  // every write fails with ENOSPC
  o.flush_bytes = 512;
  o.max_buffered_bytes = 4096;
  ConnectionInfo c;
  auto w = open_writer(o);
  for (uint64_t i = 0; i < 200; ++i) w->on_statement(make_statement(&c, i));
  CHECK(w->records_written() == 0);
  CHECK(w->write_errors() >= 1);
  CHECK(w->write_errors() < 5);  // failing writes are retried by the timer, not per record
  CHECK(w->buffered_bytes() <= o.max_buffered_bytes);
  CHECK(w->buffered_bytes() > o.max_buffered_bytes - 300);
  CHECK(w->records_dropped() > 100);
  const Status s = w->flush();
  REQUIRE(!s.ok());
  CHECK_THAT(s.message(), Catch::Contains("/dev/full") && Catch::Contains("No space left"));
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
  for (uint64_t i = 0; i < 50; ++i) w->on_statement(make_statement(&c, i));
  const size_t total = w->buffered_bytes();

  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  REQUIRE(sigaction(SIGXFSZ, &ignore, &previous) == 0);
  rlimit small = old;
  small.rlim_cur = 1000;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  const Status s = w->flush();
  REQUIRE(setrlimit(RLIMIT_FSIZE, &old) == 0);
  REQUIRE(sigaction(SIGXFSZ, &previous, nullptr) == 0);

  CHECK(!s.ok());
  CHECK(w->bytes_written() == 1000);
  CHECK(w->buffered_bytes() == total - 1000);
  const uint64_t complete = w->records_written();
  CHECK(complete > 0);
  CHECK(complete < 50);
  CHECK(w->write_errors() == 1);

  REQUIRE(w->flush().ok());
  CHECK(w->records_written() == 50);
  CHECK(w->bytes_written() == total);
  const auto lines = read_lines(o.path);
  REQUIRE(lines.size() == 50);
  for (size_t i = 0; i < lines.size(); ++i) {
    CHECK(nlohmann::json::parse(lines[i])["db.query.text"] == "SELECT " + std::to_string(i));
  }
}
