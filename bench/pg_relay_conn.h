// SPDX-License-Identifier: Apache-2.0
//
// A PgRelay as the relay benches drive it, without sockets: PostgreSQL wire messages built
// by hand, an output that counts (or keeps) what the relay sends, and one connection
// logged in over a policy (bench/mask_relay.cc, bench/mask_relay_rows.cc).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "proxy/pg_relay.h"
#include "proxy/policy_judge.h"

namespace dbwarden::bench {

using Bytes = std::string;

inline Bytes I16(uint16_t v) { return {char(v >> 8), char(v & 0xff)}; }
inline Bytes I32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v & 0xff)};
}
inline Bytes Typed(char t, const Bytes& body) { return t + I32(uint32_t(body.size() + 4)) + body; }
inline Bytes Cells(const std::vector<const char*>& cells) {
  Bytes b = I16(uint16_t(cells.size()));
  for (const char* c : cells) b += c == nullptr ? I32(~0u) : I32(uint32_t(strlen(c))) + c;
  return b;
}
// RowDescription of text columns `names` of relation OID `table`.
inline Bytes Desc(const std::vector<const char*>& names, uint32_t table) {
  Bytes b = I16(uint16_t(names.size()));
  for (size_t i = 0; i < names.size(); ++i) {
    b += Bytes(names[i]) + '\0' + I32(table) + I16(uint16_t(i + 1)) + I32(25) + I16(0xffff) +
         I32(~0u) + I16(0);
  }
  return Typed('T', b);
}
inline std::span<const uint8_t> Span(const Bytes& b) {
  return {reinterpret_cast<const uint8_t*>(b.data()), b.size()};
}

struct Sink : StatementSink {
  void on_statement(const Statement& s) override {
    ++n;
    masked_values += s.masked_values;
  }
  uint64_t n = 0;
  uint64_t masked_values = 0;
};

// Counts what the relay sends; with `keep`, keeps what it sends the client too.
struct Out : proxy::RelayOutput {
  void to_server(std::span<const uint8_t> b) override { server += b.size(); }
  void to_client(std::span<const uint8_t> b) override {
    client += b.size();
    if (keep) kept.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void close_after_flush() override { closed = true; }
  uint64_t server = 0, client = 0;
  bool closed = false;
  bool keep = false;
  Bytes kept;
};

// One connection: a relay over `yaml` (with the proxy's catalog when `catalog`), logged in.
struct Conn {
  Conn(const std::string& yaml, bool catalog)
      : source(Load(yaml)),
        judge(source),
        relay(info, judge, records, limits, proxy::RelayLimits{}, counters) {
    if (catalog) relay.set_catalog(&pg_catalog);
    const Bytes params = Bytes("user\0bench\0database\0bench\0\0", 27);
    in_bytes(I32(uint32_t(params.size() + 8)) + I32(3u << 16) + params);
    relay.on_server(Span(Typed('R', I32(0)) + Typed('Z', "I")), out, ++now);
  }
  static std::shared_ptr<const policy::Policy> Load(const std::string& yaml) {
    auto p = policy::Policy::load_string(yaml, "bench.yaml");
    if (!p.ok()) std::exit((std::fprintf(stderr, "%s\n", p.status().message().c_str()), 1));
    return p.value();
  }
  void in_bytes(const Bytes& b) {
    in.append(Span(b));
    relay.on_client(in, out, ++now);
  }
  ConnectionInfo info;
  pgsql::Counters counters;
  pgsql::Limits limits;
  Sink sink;
  proxy::DecisionWriter records{sink};
  proxy::PolicySource source;
  proxy::PolicyJudge judge;
  proxy::PgCatalogCache pg_catalog;
  proxy::PgRelay relay;
  proxy::ByteBuffer in;
  Out out;
  uint64_t now = 0;
};

}  // namespace dbwarden::bench
