// SPDX-License-Identifier: Apache-2.0
//
// Result masking in the PostgreSQL relay itself, MB/s of result values per core of relay
// CPU (issue 13's >= 500 MB/s target, without the sockets and the kernel that
// bench/proxy_mask_throughput.py also measures): a PgRelay is sent `SELECT * FROM
// bench_mask` and fed the server's answer (RowDescription, one DataRow per row, completion,
// ReadyForQuery) in reads of 64 KiB, as the proxy reads a socket. The table is the one
// proxy_mask_throughput.py loads into PostgreSQL, written out by its --write-table (100,000
// rows x 10 text values of 20-60 bytes, 1 % holding a planted item), so both benches see
// the same bytes. Setups, rotated every round: `plain` (the shipped guardrails, no mask
// rule: rows stream through), `mask` (plus one mask rule naming every built-in detector),
// `mask-aa` (mask again: the A/A spread). Medians of thread CPU over rounds.
//
// Before timing, one pass keeps what the relay sends the client and checks every planted
// item against it: a planted item that comes back whole is a leak, listed with its value
// (and the exit status is 1).
//
// Usage: bench_mask_relay_rows TABLE [--rounds R] [--read BYTES]
//   TABLE: `proxy_mask_throughput.py --write-table TABLE` (and TABLE.planted beside it)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pg_relay_conn.h"
#include "policy_file.h"
#include "protocol/pgsql/messages.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::Bytes;
using dbwarden::bench::Conn;
using dbwarden::bench::Desc;
using dbwarden::bench::I16;
using dbwarden::bench::I32;
using dbwarden::bench::median;
using dbwarden::bench::Span;
using dbwarden::bench::thread_cpu_ns;
using dbwarden::bench::Typed;

// The same rule as proxy_mask_throughput.py's MASK_RULE.
constexpr const char* kMaskRule =
    "  - name: bench-content\n    action: mask\n"
    "    detectors: [email, payment_card, iban, phone, us_ssn, token]\n    style: full\n";

struct Planted {
  size_t row = 0, column = 0;
  std::string item;
};

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  size_t at = 0;
  for (;;) {
    const size_t next = line.find(sep, at);
    out.push_back(line.substr(at, next - at));
    if (next == std::string::npos) return out;
    at = next + 1;
  }
}

// The values of each DataRow the client was sent, in order.
std::vector<std::vector<std::string>> sent_rows(const Bytes& out) {
  std::vector<std::vector<std::string>> rows;
  size_t at = 0;
  while (out.size() - at >= 5) {
    const char type = out[at];
    const uint32_t len = dbwarden::pgsql::ReadBe32(reinterpret_cast<const uint8_t*>(&out[at + 1]));
    const size_t body = at + 5, end = at + 1 + len;
    if (type == 'D') {
      auto& row = rows.emplace_back();
      const size_t n = (static_cast<uint8_t>(out[body]) << 8) | static_cast<uint8_t>(out[body + 1]);
      size_t p = body + 2;
      for (size_t i = 0; i < n; ++i) {
        const auto vlen = static_cast<int32_t>(
            dbwarden::pgsql::ReadBe32(reinterpret_cast<const uint8_t*>(&out[p])));
        p += 4;
        row.push_back(vlen < 0 ? std::string() : out.substr(p, static_cast<size_t>(vlen)));
        if (vlen > 0) p += static_cast<size_t>(vlen);
      }
    }
    at = end;
  }
  return rows;
}

void feed(Conn& c, const Bytes& query, const Bytes& answer, size_t read) {
  c.in_bytes(query);
  for (size_t at = 0; at < answer.size(); at += read) {
    const size_t n = std::min(read, answer.size() - at);
    c.relay.on_server(Span(answer).subspan(at, n), c.out, ++c.now);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TABLE [--rounds R] [--read BYTES]\n", argv[0]);
    return 2;
  }
  int rounds = 7;
  size_t read = 64 * 1024;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--read") == 0) read = std::strtoul(argv[i + 1], nullptr, 10);
  }
  std::vector<std::vector<std::string>> table;
  size_t payload = 0;
  {
    std::ifstream f(argv[1]);
    std::string line;
    while (std::getline(f, line)) {
      table.push_back(split(line, '\t'));
      for (const std::string& v : table.back()) payload += v.size();
    }
  }
  std::vector<Planted> planted;
  {
    std::ifstream f(std::string(argv[1]) + ".planted");
    std::string line;
    while (std::getline(f, line)) {
      const auto parts = split(line, '\t');
      if (parts.size() != 3) continue;
      planted.push_back({std::stoul(parts[0]), std::stoul(parts[1]), parts[2]});
    }
  }
  if (table.empty() || planted.empty()) {
    std::fprintf(stderr, "%s: no rows or no %s.planted\n", argv[1], argv[1]);
    return 2;
  }
  std::vector<const char*> names;
  std::vector<std::string> name_store;
  for (size_t i = 0; i < table.front().size(); ++i)
    name_store.push_back("c" + std::to_string(i + 1));
  for (const std::string& n : name_store) names.push_back(n.c_str());
  Bytes answer = Desc(names, 16500);
  for (const auto& row : table) {
    Bytes body = I16(static_cast<uint16_t>(row.size()));
    for (const std::string& v : row) body += I32(static_cast<uint32_t>(v.size())) + v;
    answer += Typed('D', body);
  }
  answer += Typed('C', "SELECT " + std::to_string(table.size()) + '\0') + Typed('Z', "I");
  const Bytes query = Typed('Q', Bytes("SELECT * FROM bench_mask") + '\0');

  const std::string guardrails = dbwarden::bench::read_policy_file(DBW_POLICY_FILE);
  const std::string masked = guardrails + kMaskRule;

  // The leak check: every planted item against what the client was sent.
  size_t leaked = 0;
  uint64_t masked_values = 0;
  {
    Conn check(masked, false);
    check.out.keep = true;
    feed(check, query, answer, read);
    const auto rows = sent_rows(check.out.kept);
    if (rows.size() != table.size()) {
      std::fprintf(stderr, "the relay sent %zu rows of %zu\n", rows.size(), table.size());
      return 1;
    }
    for (const Planted& p : planted) {
      const std::string& v = rows[p.row][p.column];
      if (v.find(p.item) == std::string::npos) continue;
      if (++leaked <= 20) {
        std::printf("LEAKED row %zu column %zu: '%s' in '%s'\n", p.row, p.column, p.item.c_str(),
                    v.c_str());
      }
    }
    masked_values = check.sink.masked_values;
  }

  Conn plain(guardrails, false), mask(masked, false), aa(masked, false);
  Conn* conns[] = {&plain, &mask, &aa};
  std::vector<double> t[3];
  for (int r = 0; r < rounds; ++r) {
    for (int j = 0; j < 3; ++j) {
      const int k = (r + j) % 3;  // rotate the order every round
      const double t0 = thread_cpu_ns();
      feed(*conns[k], query, answer, read);
      t[k].push_back(thread_cpu_ns() - t0);
    }
  }
  for (Conn* c : conns) {
    if (c->out.closed) {
      std::fprintf(stderr, "a connection was closed\n");
      return 1;
    }
  }
  const double mb = static_cast<double>(payload) / 1e6;
  const double plain_ns = median(t[0]), mask_ns = median(t[1]), aa_ns = median(t[2]);
  std::printf(
      "PgRelay, SELECT * FROM bench_mask: %zu rows, %.1f MB of values, %zu planted items, "
      "reads of %zu bytes; MB/s of values per core of relay CPU, median of %d rotated rounds\n",
      table.size(), mb, planted.size(), read, rounds);
  std::printf("plain (no mask rule)  %8.0f MB/s  (%.2f ns/byte)\n", mb / (plain_ns * 1e-9),
              plain_ns / static_cast<double>(payload));
  std::printf("mask                  %8.0f MB/s  (%.2f ns/byte; masking adds %.2f ns/byte)\n",
              mb / (mask_ns * 1e-9), mask_ns / static_cast<double>(payload),
              (mask_ns - plain_ns) / static_cast<double>(payload));
  std::printf("mask again (A/A)      %8.0f MB/s  (ratio %.3f)\n", mb / (aa_ns * 1e-9),
              mask_ns / aa_ns);
  std::printf("masked values %llu, planted items %zu, planted items sent whole: %zu\n",
              static_cast<unsigned long long>(masked_values), planted.size(), leaked);
  return leaked == 0 ? 0 : 1;
}
