// SPDX-License-Identifier: Apache-2.0
//
// Splits a simple-Query string into its SQL statements, the way the server's
// lexer sees them, without parsing SQL: top-level ';' separates statements;
// ';' inside '...' (with '' escapes), E'...' (with backslash escapes),
// "identifiers", $tag$ dollar quotes $tag$, -- line comments, nested /* */
// comments, and the body of CREATE FUNCTION/PROCEDURE ... BEGIN ATOMIC ... END
// does not. Pieces with no SQL (only blanks/comments) are dropped, because the
// server does not run them. Lexical rules:
// https://www.postgresql.org/docs/15/sql-syntax-lexical.html
//
// The protocol layer must not depend on the SQL analyser, hence this small,
// separate splitter.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "protocol/sql_text.h"

namespace dbwarden::pgsql {

using SqlPiece = dbwarden::SqlPiece;

// Replaces the contents of `out` (its capacity is reused).
void SplitStatements(std::string_view sql, std::vector<SqlPiece>* out);

// The same without the fast paths for one-statement texts (always the
// byte-wise lexer): for tests that check the fast paths agree with it.
void SplitStatementsByLexer(std::string_view sql, std::vector<SqlPiece>* out);

}  // namespace dbwarden::pgsql
