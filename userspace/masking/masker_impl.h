// SPDX-License-Identifier: Apache-2.0
//
// Masker's insides, shared by its source files (scan.cc, masker.cc).
#pragma once

#include <re2/re2.h>

#include <memory>
#include <string>
#include <vector>

#include "masking/engine.h"
#include "masking/masking.h"

namespace dbwarden::masking {

struct Masker::Impl {
  // Built-in patterns (bit = detector id) and user patterns (bit = id -
  // kFirstCustom; null when there are none): apart, so that the cheap gate
  // (builtin_candidates) can spare most values the built-in scan while user
  // patterns, which it knows nothing of, still see every value.
  std::unique_ptr<PatternEngine> builtin;
  std::unique_ptr<PatternEngine> custom;
  // Exact patterns by detector id, to locate items once the engine says a
  // detector fired.
  std::vector<std::unique_ptr<re2::RE2>> exact;
  std::vector<std::string> names;
  std::string key;  // HMAC key (kHash, kFormat)
  DetectorSet all = 0;
  std::string_view engine_name;
};

}  // namespace dbwarden::masking
