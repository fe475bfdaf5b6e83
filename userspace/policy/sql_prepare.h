// SPDX-License-Identifier: Apache-2.0
//
// SQL-level prepared statements, read so that a policy judges what they run: MySQL
// `PREPARE s FROM '<literal>'` / `EXECUTE s [USING ...]` / `{DEALLOCATE | DROP} PREPARE s`
// (and MariaDB's `EXECUTE IMMEDIATE '<literal>'`, which runs its literal at once)
// and PostgreSQL `PREPARE p [(types)] AS <statement>` / `EXECUTE p [(args)]` /
// `DEALLOCATE [PREPARE] {p | ALL}` / `DISCARD ALL`. Each of these is one COM_QUERY or one
// simple Query: judged by its own text, `PREPARE s FROM 'DELETE FROM t'` is a PREPARE and
// `EXECUTE s` an EXECUTE, and the DELETE they run would meet no rule on DELETE.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sql/dialect.h"

namespace dbwarden::policy {

enum class SqlPrepareKind : uint8_t {
  kNone,              // any other statement
  kPrepare,           // `name` prepared as `text` (or from text the proxy cannot read)
  kExecute,           // runs `name` (PostgreSQL: also CREATE TABLE ... AS EXECUTE name)
  kExecuteImmediate,  // MariaDB EXECUTE IMMEDIATE: runs `text` (no name)
  kDeallocate,        // forgets `name`
  kDeallocateAll,     // forgets every name (PostgreSQL DEALLOCATE ALL, DISCARD ALL)
};

struct SqlPrepare {
  SqlPrepareKind kind = SqlPrepareKind::kNone;
  // As the server keys it: PostgreSQL folds an unquoted name to lower case and keeps a
  // quoted one as written; MySQL names are case-insensitive (folded to lower case).
  std::string name;
  // kPrepare, kExecuteImmediate: the statement prepared (run), MySQL's literal unescaped as the
  // server reads it (adjacent literals concatenated); empty with `text_known` false when it comes
  // from a user variable (`FROM @v`) or a literal form not read here (a charset introducer, a
  // hexadecimal literal).
  std::string text;
  bool text_known = false;
};

// What `text` (one statement) does to the session's SQL prepared statements.
// `backslash_escapes`: MySQL's sql_mode has no NO_BACKSLASH_ESCAPES (ignored for
// PostgreSQL, whose PREPARE carries the statement as SQL, not in a literal).
SqlPrepare read_sql_prepare(sql::Dialect dialect, std::string_view text, bool backslash_escapes);

// A cheap test on the analyser's operation before read_sql_prepare tokenises: PREPARE,
// EXECUTE, DEALLOCATE, DROP, DISCARD or CREATE.
bool may_be_sql_prepare(std::string_view operation);

}  // namespace dbwarden::policy
