// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the Analyzer end to end: lexers, normaliser, token classifier,
// libpg_query and the cache. The first byte picks the dialect; the input is
// then split at 0xff bytes into several statements analysed by one Analyzer
// with a tiny cache, so that hits, misses and evictions all happen. Checks
// that a cached answer equals a fresh one and that the cache stays bounded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sql/analyzer.h"

namespace {

using dbwarden::sql::Analysis;
using dbwarden::sql::Analyzer;
using dbwarden::sql::AnalyzerOptions;
using dbwarden::sql::Dialect;

// A cached answer may come from another text with the same normalised form;
// the token-level facts must match, the parser's only when both parsed alike
// (e.g. E'\400' and E'x' normalise alike, only one is valid).
bool same(const Analysis& a, const Analysis& b) {
  if (a.normalized != b.normalized || a.fingerprint != b.fingerprint ||
      a.operation != b.operation || a.unterminated != b.unterminated ||
      a.object_type != b.object_type || a.alter_table_drop != b.alter_table_drop ||
      a.grant_to_public != b.grant_to_public || a.copy_program != b.copy_program) {
    return false;
  }
  if (a.source != b.source) return true;
  return a.summary == b.summary && a.collections == b.collections &&
         a.unbounded_write == b.unbounded_write && a.has_where == b.has_where;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Dialect dialect = (data[0] & 1) ? Dialect::kMysql : Dialect::kPostgresql;
  AnalyzerOptions options;
  options.cache.max_entries = 3;
  options.cache.max_bytes = 4096;
  Analyzer cached(options);
  const std::string_view all(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t begin = 0;
  while (begin <= all.size()) {
    size_t end = all.find('\xff', begin);
    if (end == std::string_view::npos) end = all.size();
    const std::string_view sql = all.substr(begin, end - begin);
    const Analysis first = cached.analyze(dialect, sql);
    const Analysis& second = cached.analyze(dialect, sql);
    if (!same(first, second)) std::abort();
    Analyzer fresh(options);
    if (!same(first, fresh.analyze(dialect, sql))) std::abort();
    if (first.fingerprint.size() != 16) std::abort();
    if (!first.collections.empty() &&
        first.summary.find(first.collections.front()) == std::string::npos &&
        !first.operation.empty()) {
      std::abort();
    }
    if (cached.cache_entries() > 3 || cached.cache_bytes() > 4096) std::abort();
    begin = end + 1;
  }
  return 0;
}
