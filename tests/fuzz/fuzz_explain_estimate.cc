// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the blast radius's readers of a server's EXPLAIN answer (proxy/explain_estimate.h,
// pg_explain.h, mysql_explain.h): the first byte picks the reader, the rest is the answer.
// Checks what they promise: an estimate or a fixed reason, never both, never a reason
// empty; the PostgreSQL answer's framing (DataRows, errors, ReadyForQuery) read message by
// message as the relay frames them; a client's Bind body read into the values the agent's
// own role binds its EXPLAIN with (PgBindParameters, then PgBindValues): every value within
// the body, one format per value; a held MySQL execute's parameter block re-addressed to
// the EXPLAIN's statement (RebindExecute: a whole packet of the right length, or a reason),
// and the answer to the EXPLAIN's own COM_STMT_PREPARE framed piece by piece.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pgsql/messages.h"
#include "proxy/explain_estimate.h"
#include "proxy/mysql_explain.h"
#include "proxy/pg_explain.h"

namespace {

void Check(const dbwarden::proxy::BlastEstimate& e) {
  if (e.ok == e.failure.empty()) return;
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 7) {
    case 0:
      Check(dbwarden::proxy::ReadPgExplain(text));
      break;
    case 1:
      Check(dbwarden::proxy::ReadMysqlExplain(text));
      break;
    case 2: {
      // Server messages, framed as lookup_answer() frames them.
      dbwarden::proxy::PgExplainLookup lookup;
      std::vector<uint8_t> out;
      std::string why;
      lookup.query("DELETE FROM t", {}, {}, out, why);
      const std::span<const uint8_t> bytes(data + 1, size - 1);
      size_t pos = 0;
      bool ended = false;
      while (!ended && bytes.size() - pos >= dbwarden::pgsql::kTypedHeaderSize) {
        const uint32_t length = dbwarden::pgsql::ReadBe32(bytes.data() + pos + 1);
        if (length < 4 || bytes.size() - pos - 1 < length) break;
        bool forward = false;
        ended = lookup.on_message(bytes[pos], bytes.subspan(pos + 5, length - 4), &forward);
        pos += 1 + length;
      }
      if (ended) Check(lookup.result());
      break;
    }
    case 4: {
      std::string_view statement;
      std::span<const uint8_t> parameters;
      if (!dbwarden::proxy::PgBindParameters({data + 1, size - 1}, &statement, &parameters)) break;
      std::vector<std::optional<std::string>> values;
      std::vector<int> formats;
      if (!dbwarden::proxy::PgBindValues(parameters, values, formats)) break;
      size_t bytes = 0;
      for (const auto& v : values) bytes += v ? v->size() : 0;
      if (values.size() != formats.size() || bytes > parameters.size()) std::abort();
      break;
    }
    case 5: {
      // A client's COM_STMT_EXECUTE payload; the statement's parameter count and the types an
      // earlier execute bound come from the input too.
      if (size < 4) break;
      const uint16_t count = static_cast<uint16_t>(data[1] % 9);
      std::vector<uint16_t> types(data[2] % 2 ? count : 0, static_cast<uint16_t>(data[3]));
      std::vector<uint8_t> packet;
      std::string why;
      const std::span<const uint8_t> payload(data + 4, size - 4);
      if (dbwarden::proxy::RebindExecute(payload, count, types, 7, packet, why)) {
        const size_t length = size_t{packet[0]} | (size_t{packet[1]} << 8) |
                              (size_t{packet[2]} << 16);
        if (!why.empty() || packet.size() != length + 4 || packet[4] != 0x17) std::abort();
      } else if (why.empty()) {
        std::abort();
      }
      break;
    }
    case 6: {
      // The server's answer to the EXPLAIN's prepare, fed in pieces of the second byte's size.
      if (size < 2) break;
      dbwarden::proxy::MysqlExplainLookup lookup;
      std::vector<uint8_t> packet;
      std::string why;
      std::vector<uint8_t> execute = {6, 0, 0, 0, 0x17, 0, 0, 0, 0, 0};
      if (!lookup.prepare("DELETE FROM t WHERE id = ?", true, (data[1] & 1) != 0, 0,
                          std::move(execute), packet, why)) {
        std::abort();
      }
      const size_t piece = 1 + data[1] % 17;
      std::span<const uint8_t> bytes(data + 2, size - 2);
      while (!bytes.empty() && !lookup.prepare_done()) {
        const auto chunk = bytes.first(std::min(piece, bytes.size()));
        const size_t used = lookup.prepare_answer(chunk);
        if (used > chunk.size() || (used < chunk.size() && !lookup.prepare_done())) std::abort();
        bytes = bytes.subspan(used);
      }
      if (lookup.prepare_done()) {
        dbwarden::proxy::BlastEstimate failed;
        if (!lookup.execute(packet, failed)) Check(failed);
        (void)lookup.close(packet);
      }
      break;
    }
    default: {
      // A MySQL answer as the relay keeps it: the packets an ERR may be among.
      dbwarden::proxy::MysqlExplainLookup lookup;
      Check(lookup.result({data + 1, size - 1}, (data[0] & 0x10) != 0));
      break;
    }
  }
  return 0;
}
