// SPDX-License-Identifier: Apache-2.0
//
// PatternEngine on RE2::Set, for builds without Hyperscan: one automaton for
// all patterns, searched once per value (linear in the value's length).
#include <re2/set.h>

#include "masking/engine.h"

namespace dbwarden::masking {
namespace {

class Re2SetEngine final : public PatternEngine {
 public:
  explicit Re2SetEngine(std::unique_ptr<re2::RE2::Set> set) : set_(std::move(set)) {}

  DetectorSet scan(std::string_view text, DetectorSet wanted) const override {
    if (text.empty() || wanted == 0) return 0;
    // RE2::Set::Match is const and thread-safe; the index vector is per thread.
    thread_local std::vector<int> hits;
    hits.clear();
    re2::RE2::Set::ErrorInfo info{};
    if (!set_->Match(text, &hits, &info)) {
      // Out of DFA memory: let the exact per-detector search decide.
      return info.kind == re2::RE2::Set::kNoError ? 0 : wanted;
    }
    DetectorSet found = 0;
    for (int i : hits) found |= DetectorSet{1} << i;
    return found & wanted;
  }

 private:
  std::unique_ptr<re2::RE2::Set> set_;
};

}  // namespace

Result<std::unique_ptr<PatternEngine>> compile_re2_set(const std::vector<EnginePattern>& patterns) {
  re2::RE2::Options options;
  options.set_encoding(re2::RE2::Options::EncodingLatin1);
  options.set_dot_nl(true);
  options.set_log_errors(false);
  options.set_max_mem(64 << 20);
  auto set = std::make_unique<re2::RE2::Set>(options, re2::RE2::UNANCHORED);
  for (size_t i = 0; i < patterns.size(); ++i) {
    std::string error;
    if (set->Add(patterns[i].regex, &error) != static_cast<int>(i)) {
      return Status::Error("RE2 cannot compile detector pattern `" + patterns[i].regex +
                           "`: " + error);
    }
  }
  if (!set->Compile()) return Status::Error("RE2::Set: the detector patterns use too much memory");
  return std::unique_ptr<PatternEngine>(new Re2SetEngine(std::move(set)));
}

Result<std::unique_ptr<PatternEngine>> PatternEngine::compile(
    const std::vector<EnginePattern>& patterns, bool re2_set) {
#ifdef DBWARDEN_HAVE_HYPERSCAN
  if (!re2_set) return compile_hyperscan(patterns);
#endif
  (void)re2_set;
  return compile_re2_set(patterns);
}

}  // namespace dbwarden::masking
