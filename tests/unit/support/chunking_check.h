// SPDX-License-Identifier: Apache-2.0
//
// The check both decoders' golden tests make: the same records however the
// capture's bytes are chunked.
#pragma once

#include <catch2/catch.hpp>
#include <cstddef>
#include <string>
#include <vector>

#include "capture_chunks.h"

namespace dbw_test {

// `decode(chunks, max_piece)` returns one line per record (see
// DescribeStatement). Compares the whole-chunk run with 1- and 7-byte pieces
// and with every single cut of one chunk in two.
template <typename Direction, typename Decode>
void CheckSameRecordsHoweverChunked(const std::vector<Chunk<Direction>>& chunks, Decode&& decode) {
  const std::vector<std::string> whole = decode(chunks, 0);
  REQUIRE_FALSE(whole.empty());
  CHECK(decode(chunks, 1) == whole);
  CHECK(decode(chunks, 7) == whole);
  ForEachSingleCut(chunks, [&](const std::vector<Chunk<Direction>>& split, size_t c, size_t cut) {
    if (decode(split, 0) != whole) FAIL("differs when chunk " << c << " is cut at " << cut);
  });
}

}  // namespace dbw_test
