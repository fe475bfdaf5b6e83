// SPDX-License-Identifier: Apache-2.0
// Fuzzes the MySQL decoder: the first byte seeds how the rest of the input is
// cut into client/server chunks and gaps, so the same input always replays
// the same way (fuzz_driver.h). The sink and the parameter observer read
// every field.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_driver.h"
#include "protocol/mysql/session.h"

namespace {
// Also reads the bound parameters each record carries.
class ParameterTouchSink : public dbw_fuzz::TouchSink {
 public:
  void on_statement(const dbwarden::Statement& s) override {
    TouchSink::on_statement(s);
    sum += s.statement_unresolved;
    for (const auto& p : s.parameters) {
      sum += p ? p->size() + 1 : 0;
      if (p) {
        for (char c : *p) sum += static_cast<uint8_t>(c);
      }
    }
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  dbwarden::ConnectionInfo info;
  ParameterTouchSink sink;
  dbwarden::mysql::Counters counters;
  dbwarden::mysql::Limits limits;
  limits.max_query_bytes = 256;  // exercise truncation
  limits.max_parameter_bytes = 16;
  limits.max_prepared_statements = 8;
  dbwarden::mysql::Session session(info, sink, limits, counters);
  session.set_parameter_observer([&sink](const dbwarden::Statement&, size_t i, std::string_view v) {
    sink.sum += i + v.size();
    for (char c : v) sink.sum += static_cast<uint8_t>(c);
  });
  using dbwarden::mysql::Direction;
  // Seeds: golden captures, Byte1 'C'|'S' records (tests/data/mysql/README.md).
  dbw_fuzz::DriveSession(data, size, session, 'C', 'S', Direction::kClient, Direction::kServer);
  // Returning a value derived from every read keeps them from being optimised out.
  return static_cast<int>(sink.sum & 0);
}
