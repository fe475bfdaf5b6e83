// SPDX-License-Identifier: Apache-2.0
//
// bench_bpf_floor_live: the floor programs of bpf/io_floor.bpf.c on a live PostgreSQL
// (issue 16), for bench/pgbench_floor_live.py.
//
// bench_bpf_io_cost measures the floor under a captured call in a two-process loopback
// exchange; this puts one floor pair on the same two tracepoints while real backends serve
// pgbench, so that its BPF time per statement can be set beside the agent's, taken the same
// way on the same path (4 backends, pgbench's client processes, the shared caches).
//
//   bench_bpf_floor_live --postmaster PID [--condition min|nots|empty] [--ring-bytes N]
//
// Loads and attaches the pair of --condition (ring of the agent's default size), tracks the
// children of the postmaster (backends and background processes: polled every 10 ms from
// /proc/PID/task/PID/children, bits set and cleared through the skeleton's .bss), drains
// the ring like the agent (poll every 100 ms) and counts what it carried. Prints "READY"
// once attached; on SIGTERM or SIGINT prints one line
//   FLOOR {"condition": ..., "run_cnt": ..., "run_time_ns": ..., "records": ..., ...,
//          "programs": {NAME: [run_cnt, run_time_ns], ...}}
// where run_cnt and run_time_ns are the pair's totals (the kernel's BPF statistics,
// switched on through BPF_ENABLE_STATS for the process's life) since attaching: every
// socket call on the host that reached a tracepoint, tracked or not, as in the agent's
// figure. Needs root (exit 77 otherwise).
#include <bpf/bpf.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "bpf_floor.h"
#include "capture/capture.h"

namespace {

using dbwarden::bench::FloorCapture;

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

// The pids a process's main thread forked that are alive now (the postmaster forks every
// backend from its main thread). Empty once the postmaster is gone.
std::set<uint32_t> children_of(uint32_t pid) {
  std::set<uint32_t> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  uint32_t child = 0;
  while (in >> child) out.insert(child);
  return out;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_bpf_floor_live --postmaster PID [--condition min|nots|empty] "
               "[--ring-bytes N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t postmaster = 0;
  std::string condition = "min";
  uint32_t ring_bytes = dbwarden::capture::Options{}.ringbuf_bytes;  // the agent's default
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    if (a == "--postmaster") {
      postmaster = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10));
    } else if (a == "--condition") {
      condition = argv[++i];
    } else if (a == "--ring-bytes") {
      ring_bytes = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10));
    } else {
      return usage();
    }
  }
  if (postmaster == 0 || kill(static_cast<pid_t>(postmaster), 0) != 0) {
    std::fprintf(stderr, "bench_bpf_floor_live: no postmaster with pid %u\n", postmaster);
    return usage();
  }
  FloorCapture::Kind kind;
  if (condition == "min") {
    kind = FloorCapture::Kind::kMinimal;
  } else if (condition == "nots") {
    kind = FloorCapture::Kind::kMinimalNoTimestamp;
  } else if (condition == "empty") {
    kind = FloorCapture::Kind::kEmpty;
  } else {
    return usage();
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench_bpf_floor_live: needs root (loads BPF programs)\n");
    return 77;
  }
  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats_fd < 0) {
    std::fprintf(stderr, "bench_bpf_floor_live: BPF_ENABLE_STATS: %s\n", std::strerror(errno));
    return 1;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);

  uint64_t tracked_ever = 0;
  {
    FloorCapture floor(kind, ring_bytes);
    std::set<uint32_t> tracked;
    auto refresh = [&] {
      const std::set<uint32_t> now = children_of(postmaster);
      for (uint32_t pid : now) {
        if (tracked.insert(pid).second) {
          floor.track(pid);
          tracked_ever++;
        }
      }
      // An exited child's pid may come back as anyone's: stop tracking it.
      for (auto it = tracked.begin(); it != tracked.end();) {
        if (now.count(*it)) {
          ++it;
        } else {
          floor.untrack(*it);
          it = tracked.erase(it);
        }
      }
    };
    refresh();
    std::printf("READY\n");
    std::fflush(stdout);
    while (!g_stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      refresh();
    }
    uint64_t runs = 0, ns = 0;
    std::string programs;  // "name": [runs, ns] of each program of the pair
    for (auto& [name, v] : floor.stats()) {
      runs += v.first;
      ns += v.second;
      programs += std::string(programs.empty() ? "" : ", ") + "\"" + name + "\": [" +
                  std::to_string(v.first) + ", " + std::to_string(v.second) + "]";
    }
    // Let the consumer's next poll (every 100 ms) drain what the last calls left.
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    std::ostringstream line;
    line << "FLOOR {\"condition\": \"" << condition << "\", \"run_cnt\": " << runs
         << ", \"run_time_ns\": " << ns << ", \"records\": " << floor.records.load()
         << ", \"bytes\": " << floor.bytes.load() << ", \"gaps\": " << floor.gaps.load()
         << ", \"tracked_processes\": " << tracked_ever << ", \"ring_bytes\": " << ring_bytes
         << ", \"programs\": {" << programs << "}}";
    std::printf("%s\n", line.str().c_str());
    std::fflush(stdout);
  }
  close(stats_fd);
  return 0;
}
