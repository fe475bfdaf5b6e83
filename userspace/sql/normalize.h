// SPDX-License-Identifier: Apache-2.0
//
// Normalisation and fingerprints: the text of a statement with every literal
// replaced by `?`, comments dropped and whitespace collapsed, so that two
// executions of "the same statement" with different values read the same.
//
//   SELECT * FROM t WHERE id IN (1, 2, 3) -- x    ->  SELECT * FROM t WHERE id IN (?)
//   INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y') ->  INSERT INTO t(a, b) VALUES (?, ?)
//
// Rules:
//   - strings (every quoting style), dollar quotes, numbers and parameters
//     ($1, ?) become `?`; a sign right before a number where a value is
//     expected (after an operator, '(' ',' or a keyword) goes with it;
//   - keywords (sql/keywords.h) are upper-cased; other PostgreSQL words are
//     lower-cased (the server folds unquoted identifiers), MySQL words are kept
//     as written (table names may be case-sensitive there); quoted identifiers
//     are kept as written;
//   - tokens are separated by one space, except after ( [ . :: and before
//     , ) ] . :: ; and before the '(' of a call or column list (after a
//     non-keyword word);
//   - IN (?, ?, ...) and ARRAY[?, ...] of placeholders only become (?) / [?];
//     VALUES tuples that normalise alike collapse into the first;
//   - trailing ';' are dropped.
//
// The fingerprint is a 64-bit hash of the normalised text (not cryptographic;
// its only job is a stable short key), printed as 16 lower-case hex digits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sql/dialect.h"
#include "sql/lexer.h"

namespace dbwarden::sql {

// The significant tokens of `text` (comments dropped) into `out`, which is
// cleared first and keeps its capacity across calls. Returns true when a
// string, identifier or comment (dropped or not) ran to the end of the text
// unterminated: truncated text, which never parses.
bool tokenize(Dialect dialect, const MysqlMode& mode, std::string_view text,
              std::vector<Token>& out);

// The normalised form of `tokens` (from tokenize on `text`) into `out`, which
// is cleared first and keeps its capacity across calls.
void normalize_tokens(Dialect dialect, std::string_view text, const std::vector<Token>& tokens,
                      std::string& out);

// Convenience for tests and tools: tokenize + normalize_tokens.
std::string normalize(Dialect dialect, std::string_view text, const MysqlMode& mode = {});

uint64_t fingerprint64(std::string_view normalized);
// 16 lower-case hex digits.
std::string fingerprint_hex(uint64_t fingerprint);

}  // namespace dbwarden::sql
