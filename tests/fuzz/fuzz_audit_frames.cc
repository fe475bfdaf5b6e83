// SPDX-License-Identifier: Apache-2.0
//
// Feeds arbitrary bytes to the framed trail's verifier (frame.h,
// verify_frames.cc) as one file, and as two files split at a data-dependent
// point: frame splitting, seals, decompression (bounded by
// kMaxFrameContentBytes) and the records inside. It must report, never crash,
// and keep memory bounded.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/frame.h"
#include "audit/verify.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dbwarden::audit;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)parse_seal(input);
  (void)parse_record_seq(input);
  (void)starts_with_sealed_frame(input);

  VerifyOptions options;
  options.partial = size > 0 && (data[0] & 1);
  if (size > 1 && (data[1] & 1)) {
    ChainState state;
    state.next_seq = data[1] >> 1;
    options.state = state;
  }
  (void)verify_framed_buffers({{"fuzz.jsonl.zst", input}}, options);
  const size_t split = size > 2 ? data[2] % size : 0;
  (void)verify_framed_buffers({{"fuzz.jsonl.20240101T000000.000000Z.zst", input.substr(0, split)},
                               {"fuzz.jsonl.zst", input.substr(split)}},
                              options);
  return 0;
}
