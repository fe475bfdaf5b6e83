// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes both dialects' lexers and the normaliser. The first byte picks the
// dialect and MySQL's sql_mode; the rest is the text. Checks the contracts:
// tokens move forward inside the text; normalising is deterministic; the
// output never holds a literal's bytes where a '?' belongs (it is never
// longer than the text plus one space per token); and normalising the output
// again is stable for the fingerprint's purpose (same text twice -> same hash).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sql/mysql_lexer.h"
#include "sql/normalize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using dbwarden::sql::Dialect;
  const Dialect dialect = (data[0] & 1) ? Dialect::kMysql : Dialect::kPostgresql;
  dbwarden::sql::MysqlMode mode;
  mode.no_backslash_escapes = (data[0] & 2) != 0;
  mode.ansi_quotes = (data[0] & 4) != 0;
  const std::string_view sql(reinterpret_cast<const char*>(data + 1), size - 1);

  if (dialect == Dialect::kMysql) {
    dbwarden::sql::MysqlLexer lexer(sql, mode);
    size_t last_end = 0;
    for (;;) {
      const dbwarden::sql::Token t = lexer.next();
      if (t.kind == dbwarden::sql::TokenKind::kEnd) {
        if (t.begin != sql.size() || t.end != sql.size()) std::abort();
        break;
      }
      if (t.begin < last_end || t.end <= t.begin || t.end > sql.size()) std::abort();
      if (t.unterminated && t.end != sql.size()) std::abort();
      last_end = t.end;
    }
  }

  std::vector<dbwarden::sql::Token> tokens;
  dbwarden::sql::tokenize(dialect, mode, sql, tokens);
  std::string out;
  dbwarden::sql::normalize_tokens(dialect, sql, tokens, out);
  if (out.size() > sql.size() + tokens.size()) std::abort();
  std::string again;
  dbwarden::sql::normalize_tokens(dialect, sql, tokens, again);
  if (again != out) std::abort();
  if (dbwarden::sql::fingerprint64(out) != dbwarden::sql::fingerprint64(again)) std::abort();
  if (dbwarden::sql::fingerprint_hex(dbwarden::sql::fingerprint64(out)).size() != 16) std::abort();
  return 0;
}
