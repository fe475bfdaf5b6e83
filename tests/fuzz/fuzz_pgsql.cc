// SPDX-License-Identifier: Apache-2.0
// Fuzzes the PostgreSQL decoder: the first byte seeds how the rest of the input
// is cut into frontend/backend chunks and gaps, so the same input always
// replays the same way (fuzz_driver.h). The sink reads every field of every
// record.
#include <cstddef>
#include <cstdint>

#include "fuzz_driver.h"
#include "protocol/pgsql/session.h"

namespace {
// Also reads every bound parameter value and the unresolved flag.
class ParameterTouchSink : public dbwarden::StatementSink {
 public:
  void on_statement(const dbwarden::Statement& s) override {
    inner.on_statement(s);
    for (const auto& p : s.parameters) {
      if (p) {
        for (char c : *p) inner.sum += static_cast<uint8_t>(c);
      }
    }
    inner.sum += s.statement_unresolved;
  }
  dbw_fuzz::TouchSink inner;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  dbwarden::ConnectionInfo info;
  ParameterTouchSink sink;
  dbwarden::pgsql::Counters counters;
  dbwarden::pgsql::Limits limits;
  limits.max_query_bytes = 256;  // exercise truncation
  limits.max_parameter_bytes = 16;
  limits.max_parameters = 8;
  limits.max_bind_bytes = 128;
  limits.max_portal_parameter_bytes = 512;
  dbwarden::pgsql::Session session(info, sink, limits, counters);
  using dbwarden::pgsql::Direction;
  // Seeds: golden captures, Byte1 'F'|'B' records (tests/data/pgsql/README.md).
  dbw_fuzz::DriveSession(data, size, session, 'F', 'B', Direction::kFrontend, Direction::kBackend);
  // Returning a value derived from every read keeps them from being optimised out.
  return static_cast<int>(sink.inner.sum & 0);
}
