// SPDX-License-Identifier: Apache-2.0
//
// What the audit trail's fsync policy (--audit-fsync-interval-ms, issue 19)
// costs: the real JsonlWriter fed pgbench-like statements at a fixed rate,
// with fsync every interval vs never (0: only the state file's once-a-second
// sync), rounds alternating in one run. Prints per setting the process CPU
// (every thread: decode side, writer, syncer) per record, the fdatasyncs, and
// the ratio to the fsync-0 baseline of the same run. The syncs run on their
// own thread (userspace/audit/syncer.h): what they cost the database host is
// CPU and disk, never a wait of the decode or writer thread.
//
// Usage: audit_fsync [--dir DIR] [--rate N] [--seconds S] [--rounds N] [--interval MS]
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "audit/jsonl_writer.h"
#include "protocol/statement.h"

namespace {

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

struct Round {
  double cpu_us_per_record;
  uint64_t fsyncs;
  uint64_t records;
};

// `rate` statements a second for `seconds`, paced in 1 ms steps as a decode
// loop would hand them over.
Round run(const std::string& dir, int interval_ms, uint64_t rate, double seconds) {
  std::filesystem::remove_all(dir);
  dbwarden::audit::WriterOptions o;
  o.path = dir + "/audit.jsonl";
  o.fsync_interval = std::chrono::milliseconds(interval_ms);
  auto w = dbwarden::audit::JsonlWriter::Open(o);
  if (!w.ok()) {
    std::fprintf(stderr, "%s\n", w.status().message().c_str());
    std::exit(2);
  }
  dbwarden::ConnectionInfo c;
  c.db_system = "postgresql";
  c.user = "bench";
  c.database = "bench";
  c.application_name = "pgbench";
  dbwarden::Statement s;
  s.connection = &c;
  s.operation = "SELECT";
  const double cpu0 = cpu_seconds();
  const uint64_t t0 = mono_ns();
  const uint64_t total = static_cast<uint64_t>(static_cast<double>(rate) * seconds);
  uint64_t sent = 0;
  while (sent < total) {
    const uint64_t now = mono_ns();
    const uint64_t due = std::min(total, (now - t0) * rate / 1'000'000'000);
    for (; sent < due; ++sent) {
      s.start_ns = now;
      s.end_ns = now + 50'000;
      s.text = "SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(sent % 100000);
      w.value()->on_statement(s);
    }
    w.value()->flush_if_due(now);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  (void)w.value()->flush();
  const uint64_t fsyncs = w.value()->fsyncs();
  const uint64_t written = w.value()->records_written();
  w.value().reset();
  const double cpu = cpu_seconds() - cpu0;
  return {cpu * 1e6 / static_cast<double>(std::max<uint64_t>(written, 1)), fsyncs, written};
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/var/tmp/dbw-audit-fsync-" + std::to_string(getpid());
  uint64_t rate = 15000;
  double seconds = 5;
  int rounds = 4, interval = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--rate")
      rate = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--interval")
      interval = std::atoi(argv[i + 1]);
  }
  std::printf("JsonlWriter at %llu records/s for %.0f s a round, on %s\n",
              static_cast<unsigned long long>(rate), seconds, dir.c_str());
  std::vector<double> base, synced;
  for (int r = 0; r < rounds; ++r) {
    for (int ms : r % 2 ? std::vector<int>{interval, 0} : std::vector<int>{0, interval}) {
      const Round x = run(dir, ms, rate, seconds);
      std::printf("  fsync %4d ms: %.3f us CPU per record, %llu fdatasyncs, %llu records\n", ms,
                  x.cpu_us_per_record, static_cast<unsigned long long>(x.fsyncs),
                  static_cast<unsigned long long>(x.records));
      (ms ? synced : base).push_back(x.cpu_us_per_record);
    }
  }
  std::filesystem::remove_all(dir);
  std::sort(base.begin(), base.end());
  std::sort(synced.begin(), synced.end());
  const double b = base[base.size() / 2], s = synced[synced.size() / 2];
  std::printf("median CPU per record: fsync 0: %.3f us, fsync %d ms: %.3f us (ratio %.3f)\n", b,
              interval, s, s / b);
  return 0;
}
