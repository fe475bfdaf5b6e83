// SPDX-License-Identifier: Apache-2.0
//
// Feeds arbitrary bytes to the audit verifier as log files: plain, zstd
// (when the input starts with the zstd magic number) and as a state file. It
// must report, never crash, and keep memory bounded.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "audit/chain_state.h"
#include "audit/compress.h"
#include "audit/verify.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dbwarden::audit;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)parse_state(input);

  VerifyOptions options;
  options.max_line_bytes = 1 << 16;
  options.partial = size > 0 && (data[0] & 1);
  if (size > 1 && (data[1] & 1)) {
    ChainState state;
    state.next_seq = data[1] >> 1;
    options.state = state;
  }
  auto verifier = ChainVerifier::Create(options);
  if (!verifier.ok()) return 0;
  ChainVerifier& v = *verifier.value();
  v.begin_file("fuzz.jsonl");
  // Split the input at a data-dependent point: line assembly across feeds.
  const size_t split = size > 2 ? data[2] % size : 0;
  v.feed(input.substr(0, split));
  v.feed(input.substr(split));
  v.end_file();
  v.begin_file("fuzz.jsonl.20240101T000000.000000Z.zst");
  if (input.substr(0, 4) == std::string_view("\x28\xb5\x2f\xfd", 4)) {
    ZstdDecoder decoder;
    size_t produced = 0;
    const auto status = decoder.feed(input, [&](std::string_view piece) {
      produced += piece.size();
      if (produced < (1 << 22)) v.feed(piece);
    });
    v.end_file(status.ok() ? std::nullopt : std::optional<std::string>(status.message()));
  } else {
    v.end_file();
  }
  v.finish();
  return 0;
}
