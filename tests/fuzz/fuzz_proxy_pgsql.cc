// SPDX-License-Identifier: Apache-2.0
// Fuzzes the proxy's PostgreSQL relay with client and server bytes (proxy_fuzz.h); seeds are
// the decoder's golden captures.
#include "proxy/pg_relay.h"
#include "proxy_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  dbwarden::ConnectionInfo info;
  dbw_fuzz::TouchSink sink;
  dbwarden::proxy::DecisionWriter records(sink);
  dbwarden::pgsql::Counters counters;
  dbwarden::pgsql::Limits limits;
  limits.max_query_bytes = 256;
  dbwarden::proxy::RelayLimits relay_limits;
  relay_limits.max_judged_bytes = 512;  // exercise the too-large path
  // Half the inputs under mask rules: the server side is then framed and rewritten.
  dbwarden::proxy::PolicySource source((data[0] & 0x40) != 0 ? dbw_fuzz::FuzzMaskPolicy()
                                                             : dbw_fuzz::FuzzPolicy());
  dbwarden::proxy::PolicyJudge judge(source);
  dbwarden::proxy::PgRelay relay(info, judge, records, limits, relay_limits, counters);
  // Some with the catalog: the relay then sends lookups of its own and reads their answers
  // from the server bytes.
  dbwarden::proxy::PgCatalogCache catalog;
  if ((data[0] & 0x20) != 0) relay.set_catalog(&catalog);
  using dbwarden::pgsql::Direction;
  dbw_fuzz::RelayDriver<Direction> driver(relay, Direction::kFrontend);
  relay.set_approvals(&driver.broker);
  // Half with the blast radius: held statements are EXPLAINed first, the answers read from
  // the server bytes.
  relay.set_blast_radius((data[0] & 0x10) != 0);
  driver.out.tls_available = (data[0] & 0x80) != 0;  // with a certificate or without
  dbw_fuzz::DriveSession(data, size, driver, 'F', 'B', Direction::kFrontend, Direction::kBackend);
  return static_cast<int>(sink.sum & 0);
}
