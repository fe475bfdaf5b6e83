// SPDX-License-Identifier: Apache-2.0
//
// The one multi-pattern engine every text value goes through: it answers, in
// one pass, which detectors' patterns occur somewhere in the value. Only for
// those (about 1 value in 100 in a real result) are the items then located
// and validated one detector at a time (detectors.h). Two implementations
// with one contract, chosen at build time: Hyperscan (engine_hyperscan.cc)
// and RE2::Set (engine_re2set.cc, always built: the fallback, and what
// tests compare Hyperscan with).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "masking/masking.h"

namespace dbwarden::masking {

struct EnginePattern {
  std::string regex;    // byte semantics (Latin-1 / no UTF-8 flag) in both engines
  bool custom = false;  // a user's pattern: Hyperscan may approximate it (prefilter mode)
};

class PatternEngine {
 public:
  // Pattern i reports as bit i. At most kMaxDetectors patterns. Hyperscan
  // where the build has it, unless `re2_set`.
  static Result<std::unique_ptr<PatternEngine>> compile(const std::vector<EnginePattern>& patterns,
                                                        bool re2_set);
  virtual ~PatternEngine() = default;
  // Bits of the patterns that may match in `text` (a superset is allowed:
  // callers confirm with the exact pattern), restricted to `wanted`.
  virtual DetectorSet scan(std::string_view text, DetectorSet wanted) const = 0;
};

Result<std::unique_ptr<PatternEngine>> compile_re2_set(const std::vector<EnginePattern>& patterns);
#ifdef DBWARDEN_HAVE_HYPERSCAN
Result<std::unique_ptr<PatternEngine>> compile_hyperscan(
    const std::vector<EnginePattern>& patterns);
#endif

}  // namespace dbwarden::masking
