// SPDX-License-Identifier: Apache-2.0
//
// Statements that run other statements as part of themselves, so that a
// policy must judge those too: PostgreSQL and MySQL `EXPLAIN ANALYZE x` (also
// `EXPLAIN (ANALYZE [true|on|1], ...) x`), MariaDB `ANALYZE [FORMAT=...] x`,
// and PostgreSQL's data-modifying WITH: `WITH d AS (DELETE FROM t RETURNING *)
// SELECT count(*) FROM d` is a SELECT that deletes every row. `EXPLAIN ANALYZE
// DELETE FROM t` deletes every row while it shows the plan: the classic way to
// lose a table while "only looking".
#pragma once

#include <string_view>
#include <vector>

#include "sql/dialect.h"

namespace dbwarden::policy {

// The statement `text` executes inside itself (a suffix of `text`), or an
// empty view when it runs none (plain EXPLAIN, EXPLAIN (ANALYZE false),
// ANALYZE TABLE, any other statement).
std::string_view executed_statement(sql::Dialect dialect, std::string_view text);

// PostgreSQL: the bodies of the WITH list's INSERT/UPDATE/DELETE/MERGE
// parts (`name AS [NOT] [MATERIALIZED] (body)`), appended to `out`. Only the
// outermost WITH list is read.
void modifying_ctes(std::string_view text, std::vector<std::string_view>& out);

// A cheap test on the normalised text before modifying_ctes tokenises: a
// WITH statement with "(DELETE ", "(UPDATE ", "(INSERT " or "(MERGE " in it.
bool may_have_modifying_cte(std::string_view normalized);

}  // namespace dbwarden::policy
