// SPDX-License-Identifier: Apache-2.0
#include "sql/analyzer.h"

#include "sql/certainty.h"
#include "sql/classify.h"
#include "sql/normalize.h"

namespace dbwarden::sql {
namespace {

// Keep "SELECT ?" of the two dialects, and cut-short texts, apart in the cache.
constexpr uint64_t kMysqlKeySalt = 0x9e3779b97f4a7c15ULL;
constexpr uint64_t kUnterminatedKeySalt = 0xc2b2ae3d27d4eb4fULL;

}  // namespace

Analyzer::Analyzer(const AnalyzerOptions& options) : options_(options), cache_(options.cache) {}

const Analysis& Analyzer::analyze(Dialect dialect, std::string_view text) {
  ++statements_;
  if (const Analysis* known = known_shape(dialect, text)) return *known;
  const bool unterminated = tokenize(dialect, options_.mysql, text, tokens_);
  return analyze_tokens(dialect, text, unterminated);
}

const Analysis& Analyzer::analyze(Dialect dialect, std::string_view text, Redaction& redaction) {
  ++statements_;
  if (const Analysis* known = known_shape(dialect, text)) {
    redaction.clear();  // the memo holds only shapes the redaction pass has nothing to look at
    return *known;
  }
  bool unterminated = tokenize(dialect, options_.mysql, text, tokens_);
  if (redactor_.find(dialect, options_.mysql, text, tokens_, redaction) &&
      redaction.text_redacted) {
    // Rare (a credential statement): tokenise the redacted text anew rather
    // than map the secrets' tokens onto it.
    text = redaction.text;
    unterminated = tokenize(dialect, options_.mysql, text, tokens_);
  }
  return analyze_tokens(dialect, text, unterminated);
}

const Analysis& Analyzer::analyze_tokens(Dialect dialect, std::string_view text,
                                         bool unterminated) {
  normalize_tokens(dialect, text, tokens_, normalized_);
  const uint64_t fp = fingerprint64(normalized_);
  uint64_t key = dialect == Dialect::kMysql ? fp ^ kMysqlKeySalt : fp;
  if (unterminated) key ^= kUnterminatedKeySalt;
  if (const Analysis* hit = cache_.find(key, dialect, unterminated, normalized_)) {
    // A shape is remembered at its second sighting: a text seen once is no
    // reason to keep a copy of it.
    if (dialect == Dialect::kPostgresql && options_.shape_memo) {
      shapes_.remember(text, tokens_, *hit);
    }
    return *hit;
  }

  scratch_.dialect = dialect;
  scratch_.unterminated = unterminated;
  scratch_.normalized = normalized_;
  scratch_.fingerprint_value = fp;
  scratch_.fingerprint = fingerprint_hex(fp);
  classify_miss(dialect, text);
  const Analysis* stored = cache_.insert(key, scratch_);
  return stored != nullptr ? *stored : scratch_;
}

void Analyzer::classify_miss(Dialect dialect, std::string_view text) {
  classify_tokens(dialect, text, tokens_, scratch_);
  scratch_.source = AnalysisSource::kLexer;
  if (dialect != Dialect::kPostgresql) return;
  if (token_classification_certain(text, tokens_, scratch_)) {
    ++parses_skipped_;  // plain DML or a table-less command: the grammar would agree
    return;
  }
  ++parses_;
  nul_text_.assign(text);
  if (!pg_parse(nul_text_, parsed_)) {
    ++parse_failures_;
    scratch_.source = AnalysisSource::kLexerFallback;
    return;
  }
  // The operation keeps the token rule (operation_name); the grammar decides
  // the tables and the WHERE question.
  scratch_.source = AnalysisSource::kParser;
  scratch_.collections = parsed_.collections;
  scratch_.unbounded_write = parsed_.unbounded_write;
  scratch_.has_where = parsed_.has_where;
  scratch_.statements = parsed_.statements;
  set_summary(scratch_);
}

AnalyzerCounters Analyzer::counters() const {
  const CacheCounters& c = cache_.counters();
  AnalyzerCounters out;
  out.statements = statements_;
  out.cache_hits = c.hits + shapes_.hits();
  out.shape_hits = shapes_.hits();
  out.cache_misses = c.misses;
  out.cache_evictions = c.evictions;
  out.cache_rejected = c.rejected;
  out.parses = parses_;
  out.parse_failures = parse_failures_;
  out.parses_skipped = parses_skipped_;
  return out;
}

}  // namespace dbwarden::sql
