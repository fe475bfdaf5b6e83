// SPDX-License-Identifier: Apache-2.0
//
// Statements of one shape: texts that are the same bytes but for their
// number and plain string literals ("... WHERE aid = 48213" and "... WHERE
// aid = 7"). A workload sends few shapes many times, and every text of a
// shape has the same tokens but for those literals, so the same normalised
// text, fingerprint and analysis. The memo recognises a remembered shape by
// comparing bytes and re-reading only the literals with the lexer's own rule,
// and then skips tokenising, the redaction pass, normalising, hashing and the
// cache lookup (sql/analyzer.h), which were most of the analyser's work per
// statement (bench/README.md, "Decode thread: texts of a known shape").
//
// Why a match is exact (PostgreSQL's lexer, sql/lexer.h, which carries no
// state from one token to the next): a text matches a remembered one when
//   - the bytes before the first literal, between two literals and after the
//     last one are equal to the remembered text's;
//   - at each literal's place the lexer reads one token of the same kind
//     (a number starting with a digit; a string starting with a quote, no
//     prefix), terminated, and the fixed bytes go on right where it ends.
// The token before a literal ended at a digit or a quote in the remembered
// text; it ends there in the new text too, since its end depends only on
// that byte's class, which is the same. From a literal's end on, the lexer
// sees the same bytes as in the remembered text up to the next literal. So
// the token kinds are the same, every token but the literals has the same
// bytes, and the normaliser (which writes each literal as '?') gives the same
// normalised text.
//
// Credentials (sql/redact.h): only a text the redaction pass would not even
// look into is remembered (no word ending in PASSWORD, no IDENTIFIED, no
// dollar-quoted body, no literal that may hold a connection string or SQL);
// those are all fixed bytes but for the string literals, and a new string
// literal is accepted only when the same look finds nothing in it either.
//
// Bounded: kBuckets x kWays remembered texts of at most kMaxTextBytes and
// kMaxLiterals literals each. Not thread-safe: one per Analyzer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sql/analysis.h"
#include "sql/lexer.h"

namespace dbwarden::sql {

class ShapeMemo {
 public:
  static constexpr size_t kBuckets = 64;  // a power of two
  static constexpr size_t kWays = 2;
  static constexpr size_t kMaxTextBytes = 2048;
  static constexpr size_t kMaxLiterals = 32;
  static constexpr size_t kMaxAnalysisBytes = 4096;  // AnalysisCache::cost

  ShapeMemo();

  // The analysis of a remembered text of `text`'s shape (PostgreSQL), or
  // nullptr. Valid until the next remember().
  const Analysis* find(std::string_view text);
  // Remembers `text` (PostgreSQL; `tokens` are its tokenize() without
  // comments) with its analysis, if it qualifies: terminated, within the
  // bounds, and nothing for the redaction pass to look at.
  void remember(std::string_view text, const std::vector<Token>& tokens, const Analysis& a);

  uint64_t hits() const { return hits_; }

 private:
  struct Literal {
    uint32_t begin, end;  // in the remembered text
    bool string;          // '...' (else a number)
  };
  struct Slot {
    bool filled = false;
    std::string text;
    std::vector<Literal> literals;
    Analysis analysis;
  };

  static size_t bucket_of(std::string_view text);
  static bool matches(const Slot& slot, std::string_view text);

  std::unique_ptr<Slot[]> slots_;  // kBuckets x kWays, most recently used way first
  uint64_t hits_ = 0;
};

}  // namespace dbwarden::sql
