// SPDX-License-Identifier: Apache-2.0
//
// PatternEngine on Hyperscan (https://github.com/intel/hyperscan, Debian
// libhyperscan-dev): all patterns in one block-mode database, each reporting
// at most once per scan (HS_FLAG_SINGLEMATCH), since the caller only needs to
// know which fired. A user's pattern that Hyperscan cannot run exactly is
// compiled in prefilter mode (a superset); RE2 confirms every item anyway.
#include <hs/hs.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "masking/engine.h"

namespace dbwarden::masking {
namespace {

// Scratch is per thread: hs_alloc_scratch() grows one scratch to fit every
// database it has been given, so a thread keeps one for all engines. Engines
// are known by a serial number, not their address, which a later engine may
// reuse; the list is bounded (a long-lived thread sees a policy reload now and
// then: past the bound it starts over, and the next scans refit).
std::atomic<uint64_t> next_serial{1};

struct ThreadScratch {
  hs_scratch_t* scratch = nullptr;
  std::vector<uint64_t> fitted;
  ~ThreadScratch() {
    if (scratch != nullptr) hs_free_scratch(scratch);
  }
};
thread_local ThreadScratch tls_scratch;
constexpr size_t kMaxFitted = 32;

struct ScanState {
  DetectorSet wanted;
  DetectorSet found = 0;
};

int on_match(unsigned int id, unsigned long long /*from*/, unsigned long long /*to*/,
             unsigned int /*flags*/, void* ctx) {
  auto* st = static_cast<ScanState*>(ctx);
  st->found |= DetectorSet{1} << id;
  // Every wanted pattern seen: nothing more to learn from this value.
  return (st->found & st->wanted) == st->wanted ? 1 : 0;
}

class HyperscanEngine final : public PatternEngine {
 public:
  explicit HyperscanEngine(hs_database_t* db) : db_(db), serial_(next_serial++) {}
  ~HyperscanEngine() override { hs_free_database(db_); }

  DetectorSet scan(std::string_view text, DetectorSet wanted) const override {
    if (text.empty() || wanted == 0) return 0;
    auto& fitted = tls_scratch.fitted;
    if (std::find(fitted.begin(), fitted.end(), serial_) == fitted.end()) {
      if (fitted.size() >= kMaxFitted) {
        hs_free_scratch(tls_scratch.scratch);
        tls_scratch.scratch = nullptr;
        fitted.clear();
      }
      if (hs_alloc_scratch(db_, &tls_scratch.scratch) != HS_SUCCESS) {
        // Out of memory: report every wanted pattern, so the exact
        // per-detector search decides (slower, never weaker).
        return wanted;
      }
      fitted.push_back(serial_);
    }
    ScanState st{wanted};
    const hs_error_t rc = hs_scan(db_, text.data(), static_cast<unsigned int>(text.size()), 0,
                                  tls_scratch.scratch, on_match, &st);
    if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED) return wanted;
    return st.found & wanted;
  }

 private:
  hs_database_t* db_;
  const uint64_t serial_;
};

}  // namespace

Result<std::unique_ptr<PatternEngine>> compile_hyperscan(
    const std::vector<EnginePattern>& patterns) {
  std::vector<const char*> exprs;
  std::vector<unsigned int> flags, ids;
  for (size_t i = 0; i < patterns.size(); ++i) {
    exprs.push_back(patterns[i].regex.c_str());
    unsigned int f = HS_FLAG_SINGLEMATCH | HS_FLAG_DOTALL;
    if (patterns[i].custom) f |= HS_FLAG_PREFILTER;
    flags.push_back(f);
    ids.push_back(static_cast<unsigned int>(i));
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_compile_multi(exprs.data(), flags.data(), ids.data(),
                       static_cast<unsigned int>(exprs.size()), HS_MODE_BLOCK, nullptr, &db,
                       &err) != HS_SUCCESS) {
    std::string message = "Hyperscan cannot compile the detector patterns";
    if (err != nullptr) {
      if (err->expression >= 0) {
        message = "Hyperscan cannot compile detector pattern " + std::to_string(err->expression) +
                  " `" + patterns[err->expression].regex + "`";
      }
      message += std::string(": ") + err->message;
      hs_free_compile_error(err);
    }
    return Status::Error(message);
  }
  return std::unique_ptr<PatternEngine>(new HyperscanEngine(db));
}

}  // namespace dbwarden::masking
