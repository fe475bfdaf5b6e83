// SPDX-License-Identifier: Apache-2.0
//
// zstd (RFC 8878) for rotated audit files: compression of a finished file on
// a background thread, and a streaming decoder with bounded memory for
// verify-audit.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

struct ZSTD_DCtx_s;  // zstd's decoder handle, so this header needs no zstd.h

namespace dbwarden::audit {

inline constexpr std::string_view kZstdSuffix = ".zst";

// Compresses `src` into `src + ".zst"` (written as .tmp, fsynced, renamed,
// mode 0600), then removes `src`. On failure `src` is left as it was. The
// .zst holds one frame per 2 MiB of `src` (at least one), each with its
// checksum; decoded in order they give back `src`'s bytes exactly.
Status zstd_compress_file(const std::string& src, int level);

// Decodes a stream of zstd frames chunk by chunk. The window is capped so a
// hostile file cannot make it allocate much.
class ZstdDecoder {
 public:
  ZstdDecoder();
  ~ZstdDecoder();
  ZstdDecoder(const ZstdDecoder&) = delete;
  ZstdDecoder& operator=(const ZstdDecoder&) = delete;

  // Hands every decoded piece to `sink`; an error names what is wrong.
  Status feed(std::string_view input, const std::function<void(std::string_view)>& sink);
  // True when the input so far ended at a frame boundary.
  bool at_frame_end() const { return at_frame_end_; }

 private:
  ::ZSTD_DCtx_s* ctx_;
  std::unique_ptr<char[]> out_;
  size_t out_size_;
  bool at_frame_end_ = true;
};

}  // namespace dbwarden::audit
