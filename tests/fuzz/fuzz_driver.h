// SPDX-License-Identifier: Apache-2.0
//
// Shared scaffolding for the decoder fuzz targets (fuzz_pgsql, fuzz_mysql):
// the first input byte seeds how the rest is cut into client/server chunks
// and gaps, so the same input always replays the same way.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "protocol/statement.h"

namespace dbw_fuzz {

// Reads every field of every record, so a field the decoder left
// uninitialised or dangling shows up under the sanitizers.
class TouchSink : public dbwarden::StatementSink {
 public:
  void on_statement(const dbwarden::Statement& s) override {
    sum += s.start_ns ^ s.end_ns ^ s.request_bytes ^ s.response_bytes;
    sum += s.text.size() + s.status_code.size() + s.error_message.size() + s.command_tag.size() +
           s.statement_name.size() + s.operation.size();
    for (char c : s.text) sum += static_cast<uint8_t>(c);
    for (char c : s.error_message) sum += static_cast<uint8_t>(c);
    sum += s.returned_rows.value_or(0) + s.text_truncated + s.capture_gap;
    sum += s.connection->user.size() + s.connection->database.size() +
           s.connection->application_name.size();
  }
  uint64_t sum = 0;
};

// Small deterministic generator seeded from the input.
struct Lcg {
  uint32_t state;
  uint32_t next() {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  }
};

// Feeds data[1..size) to `session` and closes it; needs size >= 2.
//
// Seed files are golden captures in their own record format (Byte1
// `client_tag` or `server_tag`, Int32 big-endian length, bytes): they are
// replayed record by record when the input parses that way, so the fuzzer
// starts from real conversations. Anything else is free-form bytes.
template <typename Session, typename Direction>
void DriveSession(const uint8_t* data, size_t size, Session& session, uint8_t client_tag,
                  uint8_t server_tag, Direction client, Direction server) {
  Lcg rng{data[0]};
  size_t i = 1;
  uint64_t ts = 1;
  while (i < size) {
    const uint8_t tag = data[i];
    if ((tag == client_tag || tag == server_tag) && i + 5 <= size) {
      const uint32_t n = (uint32_t{data[i + 1]} << 24) | (uint32_t{data[i + 2]} << 16) |
                         (uint32_t{data[i + 3]} << 8) | data[i + 4];
      if (n <= size - i - 5) {
        const Direction dir = tag == client_tag ? client : server;
        // Cut the record further at generated points, sometimes into a gap.
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
    // Free-form bytes: a chunk of random size and direction.
    const size_t len = std::min<size_t>(size - i, 1 + rng.next() % 32);
    const Direction dir = rng.next() % 2 ? client : server;
    if (rng.next() % 50 == 0) {
      session.on_gap(dir, rng.next() % 100000, ts);
    } else {
      session.on_data(dir, {data + i, len}, ts);
    }
    i += len;
    ++ts;
  }
  session.on_close(ts);
}

}  // namespace dbw_fuzz
