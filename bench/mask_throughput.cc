// SPDX-License-Identifier: Apache-2.0
//
// Result masking throughput, MB/s of result text per core (issue 13: target
// >= 500 MB/s): 100,000 rows x 10 text values of 20-60 bytes, 1 % of values
// holding a detectable item (e-mail, card, IBAN, phone, SSN, token, a user
// pattern in turn), all detectors on, style full. Each value goes through
// Masker::mask_content and is then written to an output buffer (the masked
// form, or the value itself when nothing was found), as a relay rebuilding
// DataRows would. The baseline, measured in the same run on the same values,
// is a plain memcpy of each value into the same buffer. Both engines run:
// Hyperscan (where built) and RE2::Set (the fallback).
//
// The text is not random noise, which no detector's first character would
// ever start: words, numbers, dates, '@' in handles, '+' and '-' in prose,
// capitals next to digits ("Q3"), so every detector's engine is exercised.
//
// Usage: bench_mask_throughput [--rows N] [--rounds R] [--builtins-only] [--digit-heavy]
//   --builtins-only: no user-defined detector (the default has one, EMP-[0-9]{6})
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "masking/masking.h"

namespace {

using namespace dbwarden::masking;

constexpr int kColumns = 10;

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Rng {
  uint64_t s = 0x9e3779b97f4a7c15ull;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<uint32_t>(s >> 11);
  }
  uint32_t below(uint32_t n) { return next() % n; }
};

const char* const kWords[] = {"order",   "shipped", "Berlin",  "note", "customer", "id",  "status",
                              "pending", "ok",      "the",     "and",  "with",     "ref", "invoice",
                              "Q3",      "@team",   "re-sent", "C++",  "x-ray",    "v2.1"};
const char* const kItems[] = {"alice@example.com", "4111 1111 1111 1111", "DE89370400440532013000",
                              "+14155552671",      "123-45-6789",         "AKIAIOSFODNN7EXAMPLE",
                              "EMP-004211"};

// Prose: 1 token in 10 a number of 1-6 digits, 1 in 20 a date. Digit-heavy
// (--digit-heavy): 1 in 5 a number of 1-12 digits, 1 in 5 a date, the worst
// case for the number detectors (cards, IBANs, SSNs, phones).
std::string filler(Rng& rng, size_t len, bool digit_heavy) {
  std::string v;
  while (v.size() < len) {
    if (!v.empty()) v.push_back(' ');
    const uint32_t pick = rng.below(20);
    const int kind = digit_heavy ? (pick < 4   ? 0
                                    : pick < 8 ? 1
                                               : 2)
                                 : (pick < 2   ? 0
                                    : pick < 3 ? 1
                                               : 2);
    switch (kind) {
      case 0: {  // a number
        const uint32_t n = 1 + rng.below(digit_heavy ? 12 : 6);
        for (uint32_t i = 0; i < n; ++i) v.push_back(static_cast<char>('0' + rng.below(10)));
        break;
      }
      case 1:
        v += "2026-" + std::to_string(1 + rng.below(12)) + "-" + std::to_string(1 + rng.below(28));
        break;
      default:
        v += kWords[rng.below(sizeof(kWords) / sizeof(kWords[0]))];
    }
  }
  v.resize(len);
  return v;
}

struct Run {
  double seconds = 0;
  size_t masked = 0;
  uint64_t check = 0;
};

// One pass over every value: mask (or not) and write to `out`.
Run pass(const Masker* m, const std::vector<std::string>& values, std::string& out) {
  const Column column{ValueType::kText, Encoding::kPgText, true};
  std::string masked;
  Run r;
  out.clear();
  const double t0 = cpu_seconds();
  size_t at = 0;
  for (const std::string& v : values) {
    std::string_view send = v;
    if (m != nullptr &&
        m->mask_content(column, Style::kFull, ~DetectorSet{0}, v, masked) == Outcome::kReplaced) {
      send = masked;
      ++r.masked;
    }
    std::memcpy(out.data() + at, send.data(), send.size());
    at += send.size();
  }
  r.seconds = cpu_seconds() - t0;
  r.check = at;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  size_t rows = 100000;
  int rounds = 5;
  bool custom = true, digit_heavy = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--builtins-only") == 0) custom = false;
    if (std::strcmp(argv[i], "--digit-heavy") == 0) digit_heavy = true;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--rows") == 0) rows = std::strtoul(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
  }
  Rng rng;
  std::vector<std::string> values;
  values.reserve(rows * kColumns);
  size_t bytes = 0, planted = 0;
  for (size_t i = 0; i < rows * kColumns; ++i) {
    const size_t len = 20 + rng.below(41);
    std::string v = filler(rng, len, digit_heavy);
    if (rng.below(100) == 0) {  // 1 %: an item in the middle of the text
      const std::string item = kItems[planted++ % (sizeof(kItems) / sizeof(kItems[0]))];
      const size_t at = rng.below(static_cast<uint32_t>(len - std::min(len, item.size()) + 1));
      v = v.substr(0, at) + " " + item + " " + v.substr(at);
      v.resize(std::max(len, at + item.size() + 2));  // never cut the item
    }
    bytes += v.size();
    values.push_back(std::move(v));
  }
  std::string out(bytes + values.size() * 64, '\0');

  std::vector<std::unique_ptr<const Masker>> maskers;
  for (bool re2_set : {false, true}) {
    MaskerOptions o;
    if (custom) o.custom.push_back({"employee_id", "EMP-[0-9]{6}"});
    o.hash_key = "bench-key-0123456789abcdef";
    o.use_re2_set = re2_set;
    auto m = Masker::create(std::move(o));
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().message().c_str());
      return 1;
    }
    if (!re2_set && m.value()->engine_name() != "hyperscan") continue;  // not built
    maskers.push_back(std::move(m.value()));
  }

  std::printf("%s text, %zu rows x %d values, %.1f MB, %zu values (%.2f %%) hold an item, %s\n",
              digit_heavy ? "digit-heavy" : "prose", rows, kColumns,
              static_cast<double>(bytes) / 1e6, planted,
              100.0 * static_cast<double>(planted) / static_cast<double>(values.size()),
              custom ? "built-in detectors and one user pattern" : "built-in detectors only");
  // Best of `rounds` per configuration, the configurations interleaved so that
  // load from elsewhere on the machine hits them alike.
  std::vector<double> best(1 + maskers.size(), 1e9);
  std::vector<size_t> masked(1 + maskers.size(), 0);
  for (int r = 0; r < rounds; ++r) {
    for (size_t c = 0; c <= maskers.size(); ++c) {
      const Run run = pass(c == 0 ? nullptr : maskers[c - 1].get(), values, out);
      best[c] = std::min(best[c], run.seconds);
      masked[c] = run.masked;
    }
  }
  const double base_mbs = static_cast<double>(bytes) / 1e6 / best[0];
  std::printf("%-28s %10.0f MB/s per core  (%.2f ns/value)\n", "memcpy (baseline)", base_mbs,
              best[0] * 1e9 / static_cast<double>(values.size()));
  for (size_t c = 1; c <= maskers.size(); ++c) {
    const double mbs = static_cast<double>(bytes) / 1e6 / best[c];
    std::printf(
        "%-28s %10.0f MB/s per core  (%.1f ns/value, %.1fx the baseline's time, "
        "%zu values masked)\n",
        (std::string("mask_content, ") + std::string(maskers[c - 1]->engine_name())).c_str(), mbs,
        best[c] * 1e9 / static_cast<double>(values.size()), best[c] / best[0], masked[c]);
  }
  return 0;
}
