// SPDX-License-Identifier: Apache-2.0
//
// The policy file a bench measures: read whole, or the bench stops (a bench without its
// policy would measure nothing).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/read_file.h"

namespace dbwarden::bench {

inline std::string read_policy_file(const char* path) {
  std::string out = read_whole_file(path);
  if (out.empty()) {
    std::fprintf(stderr, "cannot read %s\n", path);
    std::exit(1);
  }
  return out;
}

}  // namespace dbwarden::bench
