// SPDX-License-Identifier: Apache-2.0
//
// The one entry point of SQL analysis: statement text in, Analysis out
// (normalised text, fingerprint, operation, tables, summary, unbounded
// write). Per statement it tokenises and normalises the text (allocation-free
// once its buffers have grown), then looks the normalised text up in a
// bounded LRU cache; only a miss classifies, so a repeated statement is never
// re-parsed. Before any of that, a PostgreSQL text of a shape seen before (the
// same bytes but for its literals, sql/shape_memo.h) is answered by the shape
// memo without tokenising. MySQL uses the token classifier (sql/classify.h).
// PostgreSQL misses use it too when sql/certainty.h says the grammar would agree (plain
// DML, table-less commands); the rest go through libpg_query (sql/pg_parse.h),
// falling back to the token classifier when it rejects the text.
//
// Not thread-safe: one Analyzer per thread (the agent's decode thread).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sql/analysis.h"
#include "sql/analysis_cache.h"
#include "sql/dialect.h"
#include "sql/lexer.h"
#include "sql/pg_parse.h"
#include "sql/redact.h"
#include "sql/shape_memo.h"

namespace dbwarden::sql {

struct AnalyzerOptions {
  CacheLimits cache;
  MysqlMode mysql;         // the server's sql_mode as far as tokenising goes
  bool shape_memo = true;  // sql/shape_memo.h; off only to compare against it
};

struct AnalyzerCounters {
  uint64_t statements = 0;
  uint64_t cache_hits = 0;  // shape_hits included: answered without classifying
  uint64_t cache_misses = 0;
  uint64_t cache_evictions = 0;
  uint64_t cache_rejected = 0;
  uint64_t parses = 0;          // libpg_query runs
  uint64_t parse_failures = 0;  // of which rejected: classified by tokens instead
  uint64_t parses_skipped = 0;  // PostgreSQL misses the token classifier was certain of
  uint64_t shape_hits = 0;      // answered by the shape memo, not even tokenised
};

class Analyzer {
 public:
  explicit Analyzer(const AnalyzerOptions& options = {});

  // The analysis of `text`; valid until the next call.
  const Analysis& analyze(Dialect dialect, std::string_view text);
  // The same, with credentials looked for in the same token pass
  // (sql/redact.h) and their findings put in `redaction`. When the text had
  // any, the analysis is that of redaction.text: nothing derived from the
  // secrets (normalised text, tables, summary) is ever cached or returned.
  const Analysis& analyze(Dialect dialect, std::string_view text, Redaction& redaction);

  AnalyzerCounters counters() const;
  size_t cache_entries() const { return cache_.entries(); }
  size_t cache_bytes() const { return cache_.bytes(); }

 private:
  const Analysis& analyze_tokens(Dialect dialect, std::string_view text, bool unterminated);
  // The shape memo's answer for `text`, or nullptr.
  const Analysis* known_shape(Dialect dialect, std::string_view text) {
    return dialect == Dialect::kPostgresql && options_.shape_memo ? shapes_.find(text) : nullptr;
  }
  void classify_miss(Dialect dialect, std::string_view text);

  AnalyzerOptions options_;
  AnalysisCache cache_;
  ShapeMemo shapes_;
  std::vector<Token> tokens_;
  Redactor redactor_;
  std::string normalized_;
  Analysis scratch_;      // a miss is built here, then copied into the cache
  std::string nul_text_;  // libpg_query wants a NUL-terminated copy
  ParsedStatement parsed_;
  uint64_t statements_ = 0;
  uint64_t parses_ = 0;
  uint64_t parse_failures_ = 0;
  uint64_t parses_skipped_ = 0;
};

}  // namespace dbwarden::sql
