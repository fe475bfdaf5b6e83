// SPDX-License-Identifier: Apache-2.0
// Fuzzes the proxy's MySQL relay with client and server bytes (proxy_fuzz.h); seeds are the
// decoder's golden captures. With the first byte's bit 0x40 the policy also has mask rules:
// every statement's answer is then framed and rewritten (mysql_results.h), the catalog
// lookup's answer parsed (mysql_catalog.h).
#include <cstdlib>

#include "proxy/mysql_relay.h"
#include "proxy_fuzz.h"

namespace {

std::shared_ptr<const dbwarden::policy::Policy> MaskPolicy() {
  static const auto policy = [] {
    auto p = dbwarden::policy::Policy::load_string(
        "rules:\n"
        "  - {name: no-drop, match: {operation: [DROP TABLE, TRUNCATE]}, action: block}\n"
        "  - {name: pii, action: mask, columns: ['*.*.ssn', 'shop.t.*'], detectors: [email],\n"
        "     style: full, on_derived: block, predicates: block}\n"
        "  - {name: cards, action: mask, columns: ['*.*.c'], style: 'null'}\n",
        "fuzz-mask.yaml");
    if (!p.ok()) std::abort();
    return p.value();
  }();
  return policy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  dbwarden::ConnectionInfo info;
  dbw_fuzz::TouchSink sink;
  dbwarden::proxy::DecisionWriter records(sink);
  dbwarden::mysql::Counters counters;
  dbwarden::mysql::Limits limits;
  limits.max_query_bytes = 256;
  dbwarden::proxy::RelayLimits relay_limits;
  relay_limits.max_judged_bytes = 512;
  dbwarden::proxy::PolicySource source((data[0] & 0x40) ? MaskPolicy() : dbw_fuzz::FuzzPolicy());
  dbwarden::proxy::PolicyJudge judge(source);
  dbwarden::proxy::MysqlRelay relay(info, judge, records, limits, relay_limits, counters);
  using dbwarden::mysql::Direction;
  dbw_fuzz::RelayDriver<Direction> driver(relay, Direction::kClient);
  relay.set_approvals(&driver.broker);
  // Half with the blast radius: held statements are EXPLAINed first, the answers read from
  // the server bytes.
  relay.set_blast_radius((data[0] & 0x10) != 0);
  driver.out.tls_available = (data[0] & 0x80) != 0;  // with a certificate or without
  dbw_fuzz::DriveSession(data, size, driver, 'C', 'S', Direction::kClient, Direction::kServer);
  return static_cast<int>(sink.sum & 0);
}
