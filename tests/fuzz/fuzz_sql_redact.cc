// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the credential redactor (sql/redact.h). The first byte picks the
// dialect (and MySQL's sql_mode); the rest is statement text, also used as a
// bound value and as a server message. Checks what redaction promises:
//   - a second pass changes nothing (redaction runs to a fixpoint);
//   - the redacted text has as many tokens as the original: only a secret's
//     own bytes are replaced, never a quote or a delimiter around them;
//   - the analyser with redaction returns the analysis of the redacted text;
//   - every bound parameter a secret's place names exists in the text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sql/analyzer.h"
#include "sql/normalize.h"
#include "sql/redact.h"

namespace {

using dbwarden::sql::Analyzer;
using dbwarden::sql::Dialect;
using dbwarden::sql::MysqlMode;
using dbwarden::sql::Redaction;
using dbwarden::sql::Token;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Dialect dialect = (data[0] & 1) ? Dialect::kMysql : Dialect::kPostgresql;
  MysqlMode mode;
  mode.no_backslash_escapes = (data[0] & 2) != 0;
  mode.ansi_quotes = (data[0] & 4) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  Redaction r;
  const bool any = dbwarden::sql::redact_credentials(dialect, text, r, mode);
  if (any != r.any()) std::abort();
  const std::string_view out = r.text_redacted ? std::string_view(r.text) : text;

  std::vector<Token> before, after, twice;
  dbwarden::sql::tokenize(dialect, mode, text, before);
  dbwarden::sql::tokenize(dialect, mode, out, after);
  if (before.size() != after.size()) std::abort();

  Redaction again;
  dbwarden::sql::redact_credentials(dialect, out, again, mode);
  if (again.text_redacted) {
    if (again.text != out) std::abort();
    dbwarden::sql::tokenize(dialect, mode, again.text, twice);
    if (twice.size() != after.size()) std::abort();
  }

  if (!r.secret_parameters.empty()) {
    size_t params = 0;
    for (const Token& t : before) params += t.kind == dbwarden::sql::TokenKind::kParam;
    if (params == 0) std::abort();
  }

  dbwarden::sql::AnalyzerOptions options;
  options.mysql = mode;
  Analyzer with(options), without(options);
  Redaction via_analyzer;
  const std::string fp = with.analyze(dialect, text, via_analyzer).fingerprint;
  if (via_analyzer.text_redacted != r.text_redacted ||
      (r.text_redacted && via_analyzer.text != r.text)) {
    std::abort();
  }
  if (fp != without.analyze(dialect, out).fingerprint) std::abort();

  std::vector<std::optional<std::string>> values = {std::string(text), std::nullopt,
                                                    std::string(text.substr(0, text.size() / 2))};
  dbwarden::sql::redact_parameters(r, values);
  std::string message(text);
  dbwarden::sql::scrub_secrets(r, message);
  return 0;
}
