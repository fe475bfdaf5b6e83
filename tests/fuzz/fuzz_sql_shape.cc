// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the shape memo (sql/shape_memo.h) against the full path it stands
// in for. The input is split at 0xff bytes: the first piece is a PostgreSQL
// text to remember, each later piece is tried as a text of its own and, more
// to the point, spliced in place of each of the remembered text's literals.
// Whenever the memo answers, the candidate's own tokens must normalise to the
// remembered analysis's text, must not be cut short, and the redaction pass
// must find nothing in it: the memo may never answer a text it does not stand
// for.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sql/analyzer.h"
#include "sql/normalize.h"
#include "sql/redact.h"
#include "sql/shape_memo.h"

namespace {

using namespace dbwarden::sql;

void check(ShapeMemo& memo, const std::string& candidate) {
  const Analysis* a = memo.find(candidate);
  if (a == nullptr) return;
  std::vector<Token> tokens;
  if (tokenize(Dialect::kPostgresql, {}, candidate, tokens)) std::abort();  // unterminated
  std::string normalized;
  normalize_tokens(Dialect::kPostgresql, candidate, tokens, normalized);
  if (normalized != a->normalized) std::abort();
  if (fingerprint_hex(fingerprint64(normalized)) != a->fingerprint) std::abort();
  Redactor redactor;
  Redaction redaction;
  if (redactor.find(Dialect::kPostgresql, {}, candidate, tokens, redaction)) std::abort();
  std::string redacted;
  if (redact_credentials(Dialect::kPostgresql, candidate, redacted)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> pieces;
  size_t begin = 0;
  while (begin <= all.size() && pieces.size() < 16) {
    size_t end = all.find('\xff', begin);
    if (end == std::string_view::npos) end = all.size();
    pieces.push_back(all.substr(begin, end - begin));
    begin = end + 1;
  }
  const std::string remembered(pieces[0]);
  std::vector<Token> tokens;
  tokenize(Dialect::kPostgresql, {}, remembered, tokens);
  AnalyzerOptions off;
  off.shape_memo = false;
  Analyzer analyzer(off);
  ShapeMemo memo;
  memo.remember(remembered, tokens, analyzer.analyze(Dialect::kPostgresql, remembered));
  check(memo, remembered);
  for (size_t i = 1; i < pieces.size(); ++i) {
    check(memo, std::string(pieces[i]));
    for (const Token& t : tokens) {
      if (t.kind != TokenKind::kNumber && t.kind != TokenKind::kString) continue;
      std::string spliced = remembered;
      spliced.replace(t.begin, t.end - t.begin, pieces[i]);
      check(memo, spliced);
    }
  }
  return 0;
}
