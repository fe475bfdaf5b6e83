// SPDX-License-Identifier: Apache-2.0
// Fuzzes the MySQL decoder: the first byte seeds how the rest of the input is
// cut into client/server chunks and gaps, so the same input always replays
// the same way. The sink and the parameter observer read every field.
#include <cstddef>
#include <cstdint>
#include <span>

#include "protocol/mysql/session.h"

namespace {

class TouchSink : public dbwarden::StatementSink {
 public:
  void on_statement(const dbwarden::Statement& s) override {
    sum += s.start_ns ^ s.end_ns ^ s.request_bytes ^ s.response_bytes;
    sum += s.text.size() + s.status_code.size() + s.error_message.size() + s.command_tag.size() +
           s.statement_name.size();
    for (char c : s.text) sum += static_cast<uint8_t>(c);
    for (char c : s.error_message) sum += static_cast<uint8_t>(c);
    sum += s.returned_rows.value_or(0) + s.text_truncated + s.capture_gap;
    sum += s.connection->user.size() + s.connection->database.size();
  }
  uint64_t sum = 0;
};

struct Lcg {
  uint32_t state;
  uint32_t next() {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  dbwarden::ConnectionInfo info;
  TouchSink sink;
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

  // Seed files are golden captures in their own record format (Byte1 'C'|'S',
  // Int32 big-endian length, bytes): replay them record by record when the
  // input parses that way, so the fuzzer starts from real conversations.
  Lcg rng{data[0]};
  size_t i = 1;
  uint64_t ts = 1;
  while (i < size) {
    const uint8_t tag = data[i];
    if ((tag == 'C' || tag == 'S') && i + 5 <= size) {
      const uint32_t n = (uint32_t{data[i + 1]} << 24) | (uint32_t{data[i + 2]} << 16) |
                         (uint32_t{data[i + 3]} << 8) | data[i + 4];
      if (n <= size - i - 5) {
        const Direction dir = tag == 'C' ? Direction::kClient : Direction::kServer;
        size_t off = 0;
        while (off < n) {
          const size_t len = std::min<size_t>(n - off, 1 + rng.next() % 64);
          if (rng.next() % 97 == 0) {
            session.on_gap(dir, len, ts);
          } else {
            session.on_data(dir, {data + i + 5 + off, len}, ts);
          }
          off += len;
          ++ts;
        }
        i += 5 + n;
        continue;
      }
    }
    const size_t len = std::min<size_t>(size - i, 1 + rng.next() % 32);
    const Direction dir = rng.next() % 2 ? Direction::kClient : Direction::kServer;
    if (rng.next() % 50 == 0) {
      session.on_gap(dir, rng.next() % 100000, ts);
    } else {
      session.on_data(dir, {data + i, len}, ts);
    }
    i += len;
    ++ts;
  }
  session.on_close(ts);
  return static_cast<int>(sink.sum & 0);
}
