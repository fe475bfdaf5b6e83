// SPDX-License-Identifier: Apache-2.0
//
// Token-based classification: the whole classifier for MySQL, and PostgreSQL's
// fallback when libpg_query rejects a text. No grammar: it looks for the
// clauses that name tables and reads the names after them.
//
//   operation  first word after '(' and comments, upper-cased; after WITH the
//              main verb at the CTE list's depth (same rule as operation_name)
//   tables     after FROM, JOIN, USING and UPDATE (list with aliases), INTO,
//              TABLE/TABLES (after CREATE/ALTER/DROP/TRUNCATE/LOCK/RENAME...,
//              IF [NOT] EXISTS skipped), TRUNCATE; a name followed by '(' after
//              FROM/JOIN is a function, not a table; FROM inside a call's
//              parentheses (EXTRACT(x FROM y)) is ignored; CTE names are not
//              tables; schema.table and db.schema.table are kept whole
//   main table the first table named at the main verb's depth after it
//              (INSERT INTO t SELECT .. FROM s -> t; SELECT (SELECT .. FROM b)
//              FROM a -> a), else the first table named
//   unbounded  an UPDATE or DELETE statement with no WHERE at its own depth
//              (LIMIT does not count); any statement of a multi-statement text
//   statements split at ';' outside parentheses; operation and summary come
//              from the first statement that has an operation
#pragma once

#include <string_view>
#include <vector>

#include "sql/analysis.h"
#include "sql/lexer.h"

namespace dbwarden::sql {

// Fills operation, collections, unbounded_write, statements and summary of
// `out` (other fields untouched). `tokens` come from tokenize() on `text`.
void classify_tokens(Dialect dialect, std::string_view text, const std::vector<Token>& tokens,
                     Analysis& out);

// summary = operation [+ ' ' + collections.front()].
void set_summary(Analysis& a);

// An identifier as a name: quotes removed and doubled quotes undone; an
// unquoted PostgreSQL word is folded to lower case.
void append_identifier(Dialect dialect, const Token& t, std::string_view text, std::string& out);

}  // namespace dbwarden::sql
