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

#include "policy/policy.h"
#include "policy_file.h"
#include "proxy/pg_relay.h"
#include "proxy/policy_judge.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::thread_cpu_ns;
using dbwarden::bench::median;

using Bytes = std::string;

Bytes I16(uint16_t v) { return {char(v >> 8), char(v & 0xff)}; }
Bytes I32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v & 0xff)}; }
Bytes Typed(char t, const Bytes& body) { return t + I32(uint32_t(body.size() + 4)) + body; }
Bytes Cells(const std::vector<const char*>& cells) {
  Bytes b = I16(uint16_t(cells.size()));
  for (const char* c : cells) b += c == nullptr ? I32(~0u) : I32(uint32_t(strlen(c))) + c;
  return b;
}
Bytes Desc(const std::vector<const char*>& names, uint32_t table) {
  Bytes b = I16(uint16_t(names.size()));
  for (size_t i = 0; i < names.size(); ++i) {
    b += Bytes(names[i]) + '\0' + I32(table) + I16(uint16_t(i + 1)) + I32(25) + I16(0xffff) +
         I32(~0u) + I16(0);
  }
  return Typed('T', b);
}
std::span<const uint8_t> Span(const Bytes& b) {
  return {reinterpret_cast<const uint8_t*>(b.data()), b.size()};
}

struct Sink : dbwarden::StatementSink {
  void on_statement(const dbwarden::Statement&) override { ++n; }
  uint64_t n = 0;
};
struct Out : dbwarden::proxy::RelayOutput {
  void to_server(std::span<const uint8_t> b) override { server += b.size(); }
  void to_client(std::span<const uint8_t> b) override { client += b.size(); }
  void close_after_flush() override { closed = true; }
  uint64_t server = 0, client = 0;
  bool closed = false;
};

// One connection: a relay over `policy`, logged in, the catalog lookup (if any) answered.
struct Conn {
  explicit Conn(const std::string& yaml)
      : source(Load(yaml)),
        judge(source),
        relay(info, judge, records, limits, dbwarden::proxy::RelayLimits{}, counters) {
    relay.set_catalog(&catalog);
    const Bytes params = Bytes("user\0bench\0database\0bench\0\0", 27);
    in_bytes(I32(uint32_t(params.size() + 8)) + I32(3u << 16) + params);
    relay.on_server(Span(Typed('R', I32(0)) + Typed('Z', "I")), out, ++now);
  }
  static std::shared_ptr<const dbwarden::policy::Policy> Load(const std::string& yaml) {
    auto p = dbwarden::policy::Policy::load_string(yaml, "bench.yaml");
    if (!p.ok()) std::exit((std::fprintf(stderr, "%s\n", p.status().message().c_str()), 1));
    return p.value();
  }
  void in_bytes(const Bytes& b) {
    in.append(Span(b));
    relay.on_client(in, out, ++now);
  }
  dbwarden::ConnectionInfo info;
  dbwarden::pgsql::Counters counters;
  dbwarden::pgsql::Limits limits;
  Sink sink;
  dbwarden::proxy::DecisionWriter records{sink};
  dbwarden::proxy::PolicySource source;
  dbwarden::proxy::PolicyJudge judge;
  dbwarden::proxy::PgCatalogCache catalog;
  dbwarden::proxy::PgRelay relay;
  dbwarden::proxy::ByteBuffer in;
  Out out;
  uint64_t now = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 9;
  const long n = argc > 2 ? std::atol(argv[2]) : 200000;
  const std::string guardrails = dbwarden::bench::read_policy_file(DBW_POLICY_FILE);
  const std::string masked = guardrails +
                             "  - name: untouched-column\n    action: mask\n"
                             "    columns: [public.bench_untouched.secret]\n";
  Conn plain(guardrails), aa(guardrails), mask(masked);
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
