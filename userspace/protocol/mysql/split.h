// SPDX-License-Identifier: Apache-2.0
//
// Splits a COM_QUERY string into its SQL statements the way the server's
// lexer sees them, without parsing SQL: top-level ';' separates statements;
// ';' inside '...' and "..." (doubled quotes, and backslash escapes unless the
// server runs with NO_BACKSLASH_ESCAPES), `identifiers` (doubled backticks),
// -- line comments (the dashes must be followed by a blank or control byte),
// # line comments and /* */ comments (which do not nest in MySQL) does not.
// Pieces with no SQL (only blanks/comments) are dropped: the server runs
// nothing for them. DELIMITER is a command of the mysql/mariadb client, never
// sent to the server, so it needs no handling here. Compound statements
// (BEGIN ... END bodies) are cut at their inner ';': the session gives the
// text the server did not confirm as separate statements back to the last
// confirmed one (see session.h).
// Lexical rules: https://mariadb.com/kb/en/string-literals/,
// https://mariadb.com/kb/en/comment-syntax/, https://mariadb.com/kb/en/identifier-names/
//
// The protocol layer must not depend on the SQL analyser, hence this small,
// separate splitter.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/sql_text.h"

namespace dbwarden::mysql {

using SqlPiece = dbwarden::SqlPiece;

// Replaces the contents of `out` (its capacity is reused).
void SplitStatements(std::string_view sql, bool backslash_escapes, std::vector<SqlPiece>* out);

// True when `piece` starts with the CALL keyword (a stored procedure call,
// which may answer with several result sets before its final OK).
bool IsCall(std::string_view piece);

// The schema a `USE db` / USE `d``b` statement switches to (backtick quotes
// undone), or nullopt when `piece` is not such a statement. Servers without
// session tracking report the new schema nowhere else.
std::optional<std::string> UseSchema(std::string_view piece);

}  // namespace dbwarden::mysql
