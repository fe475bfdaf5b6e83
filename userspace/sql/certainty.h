// SPDX-License-Identifier: Apache-2.0
//
// When PostgreSQL text may skip libpg_query. The grammar costs ~40-90 us per
// distinct statement shape (bench/README.md, "SQL analysis"), far too much for
// a host that sends thousands of new shapes a second; most of them are plain
// single-table DML, where the token classifier (sql/classify.h) gives the same
// answer. This gate says "the token answer is certain" only for a narrow,
// checkable subset, and everything else still goes to the grammar:
//
//   - one statement, fully terminated (no string/comment cut short);
//   - SELECT, INSERT, UPDATE or DELETE; or a command that names no table
//     (BEGIN, COMMIT, SET, SHOW, ...) for which the classifier found none;
//   - none of: WITH, set operations (UNION/INTERSECT/EXCEPT), LATERAL, ONLY,
//     TABLESAMPLE, ON CONFLICT, FOR other than a row lock, OF (FOR UPDATE OF
//     t, CURRENT OF c), SELECT ... INTO,
//     a parenthesised SELECT/WITH/VALUES/TABLE (a subquery), or any '(' in a
//     FROM, JOIN or USING list (derived tables, table functions, join
//     parentheses, alias column lists);
//   - DML does not end on a clause word (WHERE, AND, SET, ...), an operator,
//     '(' ',' or '.' (a statement cut short or malformed: the grammar's
//     verdict, usually a fallback, decides).
//
// tests/unit/sql/certainty_test.cc checks the promise: on every golden and on
// a corpus of everyday statements, whenever the gate says certain the token
// classification equals libpg_query's.
#pragma once

#include <string_view>
#include <vector>

#include "sql/analysis.h"
#include "sql/lexer.h"

namespace dbwarden::sql {

// `tokens` come from tokenize() on `text` (comments dropped); `a` is the
// token classification of them (classify_tokens) with `a.unterminated` set.
bool token_classification_certain(std::string_view text, const std::vector<Token>& tokens,
                                  const Analysis& a);

}  // namespace dbwarden::sql
