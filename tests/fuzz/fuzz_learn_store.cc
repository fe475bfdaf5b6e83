// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes learn mode's store reader (learn/learn.h): learned.log lives in the state
// directory, and a damaged or hand-edited file must load as far as it is readable, never
// crash, and never make the agent misread what it learned. The bytes become the file; a
// store that opens is asked for its list, learns one more fingerprint, flushes, and is
// opened again: the second store must hold exactly what the first one listed.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "learn/learn.h"

namespace {

using dbwarden::learn::Limits;
using dbwarden::learn::Store;

const std::string& dir() {
  static const std::string d = [] {
    char tmpl[] = "/tmp/dbw-fuzz-learn-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    return std::string(tmpl);
  }();
  return d;
}

bool same(const Store& a, const Store& b) {
  const auto x = a.list(), y = b.list();
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i].identity == y[i].identity) || x[i].entries.size() != y[i].entries.size()) {
      return false;
    }
    for (size_t k = 0; k < x[i].entries.size(); ++k) {
      const auto &e = x[i].entries[k], &f = y[i].entries[k];
      if (e.fingerprint != f.fingerprint || e.count != f.count || e.first_s != f.first_s ||
          e.last_s != f.last_s) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dir() + "/learned.log";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size != 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  Limits limits;
  limits.max_per_identity = 64;
  limits.max_total = 256;
  auto first = Store::Open(dir(), limits, 1000);
  if (first.ok()) {
    Store& s = *first.value();
    (void)s.list();
    const std::string key = Store::to_key({"fuzz", "/bin/fuzz", 7});
    (void)s.observe(key, 0x1234, 2000, true);
    if (s.flush(true).ok()) {
      auto second = Store::Open(dir(), limits, 3000);
      if (!second.ok() || !same(s, *second.value())) std::abort();
    }
  }
  ::unlink(path.c_str());
  return 0;
}
