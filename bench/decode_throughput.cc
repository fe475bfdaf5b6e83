// SPDX-License-Identifier: Apache-2.0
//
// Decoder throughput, MB/s on one core, on recorded result-heavy streams of
// both protocols (issue 4: target >= 1,000 MB/s). The baseline, measured in
// the same run on the same chunks, is a plain memcpy of the bytes: the ratio
// says how far the decoder is from just touching the data once.
//
// Streams (tests/data/<protocol>/, format: tests/data/mysql/README.md):
// - mysql: result_heavy.mycap, MariaDB 10.11 answering the mariadb CLI with
//   3,000 + 1,500 text rows (400 kB), as recorded.
// - pgsql: psql_simple.pgcap's recorded startup, then its recorded
//   "SELECT 1 AS one" exchange with the recorded DataRow repeated
//   (kPgRows per query, CommandComplete re-encoded to match), the query
//   repeated kPgQueries times. Tiny rows: the worst case per byte.
// - any other capture given with --mysql FILE / --pgsql FILE.
// Each stream runs twice: in the chunks the relay recorded (one per recv(),
// up to 64 kB) and cut into 4 KiB pieces (the size of a capture event).
//
// Usage: bench_decode_throughput [--seconds S] [--data DIR] [--mysql FILE]... [--pgsql FILE]...
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/mysql/session.h"
#include "protocol/pgsql/session.h"
#include "protocol/statement.h"

namespace {

constexpr size_t kPgRows = 1000;
constexpr size_t kPgQueries = 200;

struct Chunk {
  bool client = false;
  std::string bytes;
};
using Stream = std::vector<Chunk>;

// Records of Byte1 tag, Int32 big-endian length, bytes.
Stream Load(const std::string& path, char client_tag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  const std::string d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Stream out;
  size_t i = 0;
  while (i + 5 <= d.size()) {
    const auto* p = reinterpret_cast<const uint8_t*>(d.data() + i + 1);
    const size_t n = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
    if (i + 5 + n > d.size()) throw std::runtime_error("truncated capture " + path);
    out.push_back({d[i] == client_tag, d.substr(i + 5, n)});
    i += 5 + n;
  }
  return out;
}

// PostgreSQL backend messages: Byte1 type, Int32 length (itself included).
// https://www.postgresql.org/docs/current/protocol-message-formats.html
std::vector<std::string> PgMessages(const std::string& bytes) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i + 5 <= bytes.size()) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + i + 1);
    const size_t n = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
    out.push_back(bytes.substr(i, 1 + n));
    i += 1 + n;
  }
  return out;
}

std::string PgMessage(char type, const std::string& body) {
  const uint32_t n = static_cast<uint32_t>(body.size() + 4);
  std::string out(1, type);
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((n >> s) & 0xff));
  return out + body;
}

// See the header comment: the recorded startup, then the recorded
// "SELECT 1 AS one" exchange with many copies of its recorded DataRow.
Stream PgResultHeavy(const std::string& data_dir) {
  const Stream rec = Load(data_dir + "/pgsql/psql_simple.pgcap", 'F');
  Stream out;
  size_t q = 0;
  for (; q < rec.size(); ++q) {
    if (rec[q].client && rec[q].bytes.rfind("Q", 0) == 0 &&
        rec[q].bytes.find("SELECT 1 AS one") != std::string::npos) {
      break;
    }
    out.push_back(rec[q]);
  }
  if (q + 1 >= rec.size()) throw std::runtime_error("psql_simple.pgcap: query not found");
  std::string row_description, data_row, ready;
  for (const std::string& m : PgMessages(rec[q + 1].bytes)) {
    if (m[0] == 'T') row_description = m;
    if (m[0] == 'D') data_row = m;
    if (m[0] == 'Z') ready = m;
  }
  if (data_row.empty() || ready.empty()) throw std::runtime_error("no DataRow recorded");
  std::string response = row_description;
  for (size_t i = 0; i < kPgRows; ++i) response += data_row;
  response += PgMessage('C', "SELECT " + std::to_string(kPgRows) + '\0') + ready;
  for (size_t i = 0; i < kPgQueries; ++i) {
    out.push_back(rec[q]);
    // Delivered the way a socket would: at most 64 kB per read.
    for (size_t off = 0; off < response.size(); off += 65536) {
      out.push_back({false, response.substr(off, 65536)});
    }
  }
  for (size_t i = q + 2; i < rec.size(); ++i) out.push_back(rec[i]);
  return out;
}

Stream Cut(const Stream& s, size_t piece) {
  Stream out;
  for (const Chunk& c : s) {
    for (size_t off = 0; off < c.bytes.size(); off += piece) {
      out.push_back({c.client, c.bytes.substr(off, piece)});
    }
  }
  return out;
}

uint64_t Bytes(const Stream& s) {
  uint64_t n = 0;
  for (const Chunk& c : s) n += c.bytes.size();
  return n;
}

// Reads what an audit writer would, so nothing is optimised away.
struct CountingSink : dbwarden::StatementSink {
  void on_statement(const dbwarden::Statement& s) override {
    ++statements;
    rows += s.returned_rows.value_or(0);
    text_bytes += s.text.size();
  }
  uint64_t statements = 0, rows = 0, text_bytes = 0;
};

template <typename Session, typename Limits, typename Counters, typename Direction>
void DecodeOnce(const Stream& s, Direction client, Direction server, CountingSink& sink,
                Counters& counters) {
  dbwarden::ConnectionInfo info;
  Session session(info, sink, Limits{}, counters);
  uint64_t ts = 0;
  for (const Chunk& c : s) {
    session.on_data(c.client ? client : server,
                    {reinterpret_cast<const uint8_t*>(c.bytes.data()), c.bytes.size()}, ++ts);
  }
  session.on_close(++ts);
}

void CopyOnce(const Stream& s, std::vector<char>& buf, uint64_t& check) {
  for (const Chunk& c : s) {
    std::memcpy(buf.data(), c.bytes.data(), c.bytes.size());
    check += static_cast<unsigned char>(buf[c.bytes.size() / 2]);
  }
}

// This thread's CPU time: "per core" even when other processes share the
// cores (wall time on a loaded 2-core machine measures the neighbours).
double ThreadSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Median MB/s over 5 rounds of about seconds/5 of CPU time each.
template <typename Fn>
double MegabytesPerSecond(uint64_t bytes_per_pass, double seconds, Fn&& pass) {
  std::vector<double> rates;
  for (int round = 0; round < 5; ++round) {
    uint64_t passes = 0;
    const double start = ThreadSeconds();
    double elapsed = 0;
    do {
      pass();
      ++passes;
      elapsed = ThreadSeconds() - start;
    } while (elapsed < seconds / 5);
    rates.push_back(static_cast<double>(passes * bytes_per_pass) / elapsed / 1e6);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

struct Case {
  std::string protocol, name;
  Stream stream;
};

void Run(const Case& c, double seconds) {
  const uint64_t bytes = Bytes(c.stream);
  size_t largest = 0;
  for (const Chunk& ch : c.stream) largest = std::max(largest, ch.bytes.size());
  std::vector<char> buf(largest + 1);
  uint64_t check = 0;
  const double copy = MegabytesPerSecond(bytes, seconds, [&] { CopyOnce(c.stream, buf, check); });
  CountingSink sink;
  double decode = 0;
  uint64_t invalid = 0;
  if (c.protocol == "mysql") {
    dbwarden::mysql::Counters counters;
    decode = MegabytesPerSecond(bytes, seconds, [&] {
      DecodeOnce<dbwarden::mysql::Session, dbwarden::mysql::Limits>(
          c.stream, dbwarden::mysql::Direction::kClient, dbwarden::mysql::Direction::kServer, sink,
          counters);
    });
    invalid = counters.invalid_packets + counters.unmatched_responses;
  } else {
    dbwarden::pgsql::Counters counters;
    decode = MegabytesPerSecond(bytes, seconds, [&] {
      DecodeOnce<dbwarden::pgsql::Session, dbwarden::pgsql::Limits>(
          c.stream, dbwarden::pgsql::Direction::kFrontend, dbwarden::pgsql::Direction::kBackend,
          sink, counters);
    });
    invalid = counters.invalid_messages;
  }
  // Per pass: statements and rows the decoder reported (a sanity check that
  // it decoded what it was given, not a timing).
  CountingSink one;
  if (c.protocol == "mysql") {
    dbwarden::mysql::Counters k;
    DecodeOnce<dbwarden::mysql::Session, dbwarden::mysql::Limits>(
        c.stream, dbwarden::mysql::Direction::kClient, dbwarden::mysql::Direction::kServer, one, k);
  } else {
    dbwarden::pgsql::Counters k;
    DecodeOnce<dbwarden::pgsql::Session, dbwarden::pgsql::Limits>(
        c.stream, dbwarden::pgsql::Direction::kFrontend, dbwarden::pgsql::Direction::kBackend, one,
        k);
  }
  std::printf("%-6s %-34s %9.0f kB %7zu chunks %6llu stmts %8llu rows  decode %8.0f MB/s  "
              "memcpy %8.0f MB/s  ratio %.3f%s\n",
              c.protocol.c_str(), c.name.c_str(), static_cast<double>(bytes) / 1e3,
              c.stream.size(), static_cast<unsigned long long>(one.statements),
              static_cast<unsigned long long>(one.rows), decode, copy, decode / copy,
              invalid ? "  (invalid/unmatched messages!)" : "");
  std::printf("RESULT {\"protocol\":\"%s\",\"stream\":\"%s\",\"bytes\":%llu,\"decode_mb_s\":%.1f,"
              "\"memcpy_mb_s\":%.1f,\"check\":%llu}\n",
              c.protocol.c_str(), c.name.c_str(), static_cast<unsigned long long>(bytes), decode,
              copy, static_cast<unsigned long long>((check + sink.rows) & 1));
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  std::string data_dir = DBW_DATA_DIR;
  std::vector<Case> cases;
  std::vector<std::pair<std::string, std::string>> files;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    } else if (k == "--data") {
      data_dir = argv[i + 1];
    } else if (k == "--mysql" || k == "--pgsql") {
      files.emplace_back(k.substr(2), argv[i + 1]);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seconds S] [--data DIR] [--mysql FILE]... [--pgsql FILE]...\n",
                   argv[0]);
      return 2;
    }
  }
  try {
    cases.push_back({"mysql", "result_heavy.mycap",
                     Load(data_dir + "/mysql/result_heavy.mycap", 'C')});
    cases.push_back({"pgsql", "result_heavy.pgcap",
                     Load(data_dir + "/pgsql/result_heavy.pgcap", 'F')});
    cases.push_back({"pgsql", "psql_simple.pgcap, DataRow x" + std::to_string(kPgRows),
                     PgResultHeavy(data_dir)});
    for (const auto& [protocol, path] : files) {
      cases.push_back({protocol, path.substr(path.find_last_of('/') + 1),
                       Load(path, protocol == "mysql" ? 'C' : 'F')});
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decode_throughput: %s\n", e.what());
    return 1;
  }
  std::printf("decoder throughput, one core, %.1f s of CPU per figure (median of 5 rounds)\n",
              seconds);
  for (const Case& c : cases) {
    Run(c, seconds);
    Run({c.protocol, c.name + " (4 KiB pieces)", Cut(c.stream, 4096)}, seconds);
  }
  return 0;
}
