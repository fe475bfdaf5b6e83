// SPDX-License-Identifier: Apache-2.0
//
// What one mask rule on a table the workload never reads adds per statement in the
// PostgreSQL relay itself, the judge included (issue 13's "<= 0.3 us added proxy CPU per
// statement"): a PgRelay fed pgbench -S's Query and its one-row answer, the shipped
// guardrails alone vs the guardrails plus one `columns` rule, the relay holding the proxy's
// catalog (the first statement's lookup answered once: pgbench_accounts is a table), so the
// rule is set aside by the per-scope fingerprint cache. ns of thread CPU per statement
// (client bytes in, server bytes out), medians of rotated rounds; A/A: guardrails again.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "pg_relay_conn.h"
#include "policy_file.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::Bytes;
using dbwarden::bench::Cells;
using dbwarden::bench::Conn;
using dbwarden::bench::Desc;
using dbwarden::bench::median;
using dbwarden::bench::Span;
using dbwarden::bench::thread_cpu_ns;
using dbwarden::bench::Typed;

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 9;
  const long n = argc > 2 ? std::atol(argv[2]) : 200000;
  const std::string guardrails = dbwarden::bench::read_policy_file(DBW_POLICY_FILE);
  const std::string masked = guardrails +
                             "  - name: untouched-column\n    action: mask\n"
                             "    columns: [public.bench_untouched.secret]\n";
  Conn plain(guardrails, true), aa(guardrails, true), mask(masked, true);
  Conn* conns[] = {&plain, &aa, &mask};
  std::vector<Bytes> queries;
  for (int i = 0; i < 100000; ++i) {
    const std::string sql = "SELECT abalance FROM pgbench_accounts WHERE aid = " +
                            std::to_string(1 + (i * 7919) % 1000000) + ";";
    queries.push_back(Typed('Q', sql + '\0'));
  }
  const Bytes answer = Desc({"abalance"}, 16400) + Typed('D', Cells({"0"})) +
                       Typed('C', Bytes("SELECT 1") + '\0') + Typed('Z', "I");
  // The masked connection's first statement looks pgbench_accounts up: answered here.
  const uint64_t before = mask.out.server;
  mask.in_bytes(queries[0]);
  if (mask.relay.own_server_bytes() == 0) {
    std::fprintf(stderr, "no catalog lookup was sent\n");
    return 1;
  }
  const Bytes lookup =
      Desc({"k", "i", "a", "b", "c", "d", "e"}, 0) +
      Typed('D', Cells({"s", "-1", "bench", "public,pg_catalog", nullptr, nullptr, nullptr})) +
      Typed('D', Cells({"r", "0", "16400", "public", "pgbench_accounts", "r", nullptr})) +
      Typed('D', Cells({"c", "0", "1", "aid", nullptr, nullptr, nullptr})) +
      Typed('D', Cells({"c", "0", "2", "bid", nullptr, nullptr, nullptr})) +
      Typed('D', Cells({"c", "0", "3", "abalance", nullptr, nullptr, nullptr})) +
      Typed('D', Cells({"c", "0", "4", "filler", nullptr, nullptr, nullptr})) +
      Typed('C', Bytes("SELECT 6") + '\0') + Typed('Z', "I");
  mask.relay.on_server(Span(lookup), mask.out, ++mask.now);
  mask.relay.on_client(mask.in, mask.out, ++mask.now);
  if (mask.out.server - before <= mask.relay.own_server_bytes()) {
    std::fprintf(stderr, "the statement did not follow the lookup\n");
    return 1;
  }
  mask.relay.on_server(Span(answer), mask.out, ++mask.now);
  const uint64_t lookups = mask.relay.own_server_bytes();
  std::vector<double> t[3];
  for (int r = 0; r < rounds; ++r) {
    for (int j = 0; j < 3; ++j) {
      const int k = (r + j) % 3;  // rotate the order every round
      Conn& c = *conns[k];
      const double t0 = thread_cpu_ns();
      for (long i = 0; i < n; ++i) {
        c.in_bytes(queries[static_cast<size_t>(i) % queries.size()]);
        c.relay.on_server(Span(answer), c.out, ++c.now);
      }
      t[k].push_back((thread_cpu_ns() - t0) / static_cast<double>(n));
    }
  }
  if (mask.relay.own_server_bytes() != lookups || mask.out.closed || plain.out.closed) {
    std::fprintf(stderr, "more lookups were sent, or a connection closed\n");
    return 1;
  }
  const double base = median(t[0]);
  std::printf(
      "PgRelay, pgbench -S's Query and its answer, ns of thread CPU per statement, median of "
      "%d rotated rounds of %ld (records: %llu)\n",
      rounds, n, static_cast<unsigned long long>(plain.sink.n + aa.sink.n + mask.sink.n));
  std::printf("guardrails                        %8.1f\n", base);
  std::printf("guardrails again (A/A)            %8.1f  (%+.1f ns)\n", median(t[1]),
              median(t[1]) - base);
  std::printf("guardrails + untouched mask rule  %8.1f  (%+.1f ns)\n", median(t[2]),
              median(t[2]) - base);
  return 0;
}
