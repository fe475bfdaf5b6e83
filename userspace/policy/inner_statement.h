// SPDX-License-Identifier: Apache-2.0
//
// Statements that run another statement as part of themselves, so that a
// policy must judge that one too: PostgreSQL and MySQL `EXPLAIN ANALYZE x`
// (also `EXPLAIN (ANALYZE [true|on|1], ...) x`), MariaDB `ANALYZE [FORMAT=...] x`.
// `EXPLAIN ANALYZE DELETE FROM t` deletes every row while it shows the plan:
// the classic way to lose a table while "only looking".
#pragma once

#include <string_view>

#include "sql/dialect.h"

namespace dbwarden::policy {

// The statement `text` executes inside itself (a suffix of `text`), or an
// empty view when it runs none (plain EXPLAIN, EXPLAIN (ANALYZE false),
// ANALYZE TABLE, any other statement).
std::string_view executed_statement(sql::Dialect dialect, std::string_view text);

}  // namespace dbwarden::policy
