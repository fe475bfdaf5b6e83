// SPDX-License-Identifier: Apache-2.0
//
// Statement classification for db.operation.name and metrics labels.
#pragma once

#include <string>
#include <string_view>

namespace dbwarden::sql {

// The operation a statement performs, as one upper-case keyword.
//
// Rule: skip whitespace, comments and opening parentheses; the first word is
// the operation, upper-cased and otherwise as written ("SELECT", "VALUES",
// "TABLE", "SHOW", "EXPLAIN", "CREATE", "BEGIN", ...). No two-word forms.
// The one exception is WITH: the operation is the main statement's verb
// after the CTE list (SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES or TABLE,
// found at parenthesis depth 0), or "WITH" if none is found (truncated text).
// Returns "" for empty text, or when the first token is not a plain ASCII word
// of at most 32 letters (a keyword never is): a quoted identifier, a string, a
// number, psql's backslash commands, garbage. Only the returned string is
// allocated, and every operation fits the small-string buffer.
std::string operation_name(std::string_view sql);

}  // namespace dbwarden::sql
