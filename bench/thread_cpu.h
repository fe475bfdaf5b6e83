// SPDX-License-Identifier: Apache-2.0
//
// What the micro-benchmarks time with, and how they summarise rounds: this thread's CPU
// time (per core even while other work shares the machine's cores; wall time on a loaded
// 2-core machine measures the neighbours), and the median of rounds.
#pragma once

#include <time.h>

#include <algorithm>
#include <vector>

namespace dbwarden::bench {

inline double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

inline double thread_cpu_seconds() { return thread_cpu_ns() * 1e-9; }

// The upper median for an even count, as every bench has reported it.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace dbwarden::bench
