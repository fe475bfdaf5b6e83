// SPDX-License-Identifier: Apache-2.0
//
// Agent memory per tracked connection (issue 5: 10,000 idle connections within
// 64 MiB RSS). Drives the agent's real connection table (agent::Observer, with
// its reassemblers and PostgreSQL sessions) with the records the kernel side
// sends for a connection that logged in, ran one statement and went idle, and
// reports the growth of this process's anonymous memory. The baseline that
// counts, an idle agent's own RSS, is printed by the agent itself in its
// /proc/<pid>/status; see bench/README.md.
//
// Usage: idle_connections [N]   (default 10000)
#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "agent/observer.h"

namespace {

using dbwarden::Statement;
using dbwarden::StatementSink;

struct CountingSink : StatementSink {
  uint64_t statements = 0;
  void on_statement(const Statement&) override { statements++; }
};

long rss_anon_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::strtol(line.c_str() + 8, nullptr, 10);
  }
  return -1;
}

// PostgreSQL v3 messages (https://www.postgresql.org/docs/current/protocol-message-formats.html).
void put32(std::string& s, uint32_t v) {
  v = htonl(v);
  s.append(reinterpret_cast<const char*>(&v), 4);
}
std::string typed(char type, const std::string& body) {
  std::string m(1, type);
  put32(m, static_cast<uint32_t>(body.size() + 4));
  return m + body;
}
std::string startup(int i) {
  std::string body;
  put32(body, 196608);  // protocol 3.0
  body += std::string("user\0app_user\0database\0shop\0application_name\0worker-", 54) +
          std::to_string(i) + std::string("\0\0", 2);
  std::string m;
  put32(m, static_cast<uint32_t>(body.size() + 4));
  return m + body;
}
std::string login_reply() {
  std::string auth_ok;
  put32(auth_ok, 0);
  std::string key;
  put32(key, 1234);
  put32(key, 5678);
  return typed('R', auth_ok) + typed('S', std::string("client_encoding\0UTF8\0", 21)) +
         typed('K', key) + typed('Z', "I");
}
std::string query() { return typed('Q', std::string("SELECT 1\0", 9)); }
std::string result() {
  return typed('T', std::string("\0\1?column?\0\0\0\0\0\0\0\0\0\0\x17\0\4\xff\xff\xff\xff\0\0", 29)) +
         typed('D', std::string("\0\1\0\0\0\1" "1", 7)) + typed('C', std::string("SELECT 1\0", 9)) +
         typed('Z', "I");
}

void send(dbwarden::agent::Observer& obs, uint64_t conn, uint8_t dir, uint64_t& offset,
          const std::string& bytes) {
  static dbw_data_event e;
  std::memset(&e.hdr, 0, sizeof(e.hdr));
  e.hdr.kind = DBW_EV_DATA;
  e.hdr.pid = 1000 + static_cast<uint32_t>(conn);
  e.hdr.conn_id = conn;
  e.hdr.ts_ns = conn * 1000;
  e.direction = dir;
  e.offset = offset;
  e.length = e.captured = static_cast<uint32_t>(bytes.size());
  std::memcpy(e.data, bytes.data(), bytes.size());
  obs.on_data(e);
  offset += bytes.size();
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 10000;
  CountingSink sink;
  dbwarden::agent::Observer observer(sink, {}, {});
  const std::string login = login_reply(), q = query(), r = result();
  const long before = rss_anon_kib();
  for (int i = 1; i <= n; i++) {
    dbw_conn_event open{};
    open.hdr.kind = DBW_EV_CONN_OPEN;
    open.hdr.conn_id = static_cast<uint64_t>(i);
    open.hdr.pid = 1000 + static_cast<uint32_t>(i);
    open.family = DBW_FAMILY_INET;
    open.server_port = 5432;
    open.client_port = static_cast<uint16_t>(10000 + i % 50000);
    const uint8_t lo[4] = {127, 0, 0, 1};
    std::memcpy(open.client_addr, lo, 4);
    std::memcpy(open.server_addr, lo, 4);
    open.sock_ino = 100000 + static_cast<uint64_t>(i);
    observer.on_conn_open(open);
    uint64_t in = 0, out = 0;
    send(observer, static_cast<uint64_t>(i), DBW_DIR_INGRESS, in, startup(i));
    send(observer, static_cast<uint64_t>(i), DBW_DIR_EGRESS, out, login);
    send(observer, static_cast<uint64_t>(i), DBW_DIR_INGRESS, in, q);
    send(observer, static_cast<uint64_t>(i), DBW_DIR_EGRESS, out, r);
  }
  const long after = rss_anon_kib();
  if (sink.statements != static_cast<uint64_t>(n) ||
      observer.active_connections(dbwarden::agent::Protocol::kPostgresql) !=
          static_cast<size_t>(n)) {
    std::fprintf(stderr, "idle_connections: expected %d statements and connections, got %llu\n",
                 n, static_cast<unsigned long long>(sink.statements));
    return 1;
  }
  std::printf("connections %d, anonymous memory +%ld KiB (%.0f bytes per connection)\n", n,
              after - before, (after - before) * 1024.0 / n);
  std::printf("RESULT {\"bench\":\"idle_connections\",\"connections\":%d,\"rss_anon_growth_kib\":%ld}\n",
              n, after - before);
  return 0;
}
