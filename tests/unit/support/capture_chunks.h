// SPDX-License-Identifier: Apache-2.0
//
// Decoder-neutral test drivers: a chunk of one direction's bytes (or a gap),
// the golden capture file reader, feeding chunks into a session, and cutting
// a capture at every byte. Each decoder's wire helpers (pg_wire.h, my_wire.h)
// instantiate these with its own Direction and Session.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dbw_test {

template <typename Direction>
struct Chunk {
  Direction dir;
  std::string bytes;
  uint64_t ts = 0;
  uint64_t gap = 0;  // if nonzero: a gap of this many bytes instead of data
};

// Golden capture files (written by tests/data/relay.py): records of Byte1
// direction tag, Int32 big-endian length, bytes. `client_tag` marks the
// client's records; every other tag is the server's. Timestamps are
// synthetic: 1000 * (index + 1).
template <typename Direction>
std::vector<Chunk<Direction>> LoadCapture(std::string_view protocol_dir, const std::string& name,
                                          char client_tag, Direction client, Direction server) {
  std::ifstream in(std::string(DBW_TEST_DATA_DIR) + "/" + std::string(protocol_dir) + "/" + name,
                   std::ios::binary);
  if (!in) throw std::runtime_error("missing capture " + name);
  const std::string d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<Chunk<Direction>> out;
  size_t i = 0;
  while (i + 5 <= d.size()) {
    const auto* p = reinterpret_cast<const uint8_t*>(d.data() + i + 1);
    const size_t n = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
    if (i + 5 + n > d.size()) throw std::runtime_error("truncated capture " + name);
    out.push_back(
        {d[i] == client_tag ? client : server, d.substr(i + 5, n), 1000 * (out.size() + 1)});
    i += 5 + n;
  }
  return out;
}

// Feeds chunks to `session` (on_data / on_gap, then on_close after the last
// timestamp when `close`); `max_piece` > 0 cuts every data chunk into pieces
// of that size.
template <typename Session, typename Direction>
void FeedChunks(Session& session, const std::vector<Chunk<Direction>>& chunks, size_t max_piece,
                bool close) {
  uint64_t last_ts = 0;
  for (const Chunk<Direction>& c : chunks) {
    last_ts = c.ts;
    if (c.gap) {
      session.on_gap(c.dir, c.gap, c.ts);
      continue;
    }
    const auto* p = reinterpret_cast<const uint8_t*>(c.bytes.data());
    const size_t step = max_piece ? max_piece : std::max<size_t>(c.bytes.size(), 1);
    for (size_t off = 0; off < c.bytes.size(); off += step) {
      session.on_data(c.dir, {p + off, std::min(step, c.bytes.size() - off)}, c.ts);
    }
  }
  if (close) session.on_close(last_ts + 1);
}

// Calls `check(split, chunk_index, cut)` once for every way of cutting one
// chunk of `chunks` in two (both halves keep the chunk's timestamp).
template <typename Direction, typename Check>
void ForEachSingleCut(const std::vector<Chunk<Direction>>& chunks, Check&& check) {
  for (size_t c = 0; c < chunks.size(); ++c) {
    for (size_t cut = 1; cut < chunks[c].bytes.size(); ++cut) {
      std::vector<Chunk<Direction>> split(chunks.begin(), chunks.begin() + c);
      split.push_back({chunks[c].dir, chunks[c].bytes.substr(0, cut), chunks[c].ts});
      split.push_back({chunks[c].dir, chunks[c].bytes.substr(cut), chunks[c].ts});
      split.insert(split.end(), chunks.begin() + c + 1, chunks.end());
      check(split, c, cut);
    }
  }
}

}  // namespace dbw_test
