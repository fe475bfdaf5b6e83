// SPDX-License-Identifier: Apache-2.0
//
// What a masked MySQL/MariaDB statement's text says that its result's column definitions do
// not, read with the project's MySQL lexer (sql/mysql_lexer.h), conservatively: a name that
// might be a column counts as one.
//   - names used in WHERE, JOIN ... ON / USING, GROUP BY, ORDER BY, HAVING (sub-queries in
//     them included): for `predicates: block` (the inference attack `WHERE ssn LIKE '1%'`)
//   - common table expression names (WITH name [(columns)] AS (...)): a column definition
//     whose org_table is one of them is no base table's column
//   - SELECT ... INTO OUTFILE / INTO DUMPFILE: results written on the server's host, where
//     the proxy cannot mask them
//   - EXECUTE, CALL and user variables: what they read is not in the text
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dbwarden::proxy {

struct MysqlStatementScan {
  std::vector<std::string> predicate_names;  // lower-cased, unquoted, each once (bounded)
  std::vector<std::string> cte_names;        // lower-cased
  bool into_file = false;
  // The statement reads what its text does not name: EXECUTE of an SQL-level prepared
  // statement, CALL, user variables (@v, set by an earlier statement).
  bool runs_other = false;
  bool user_variables = false;
};

void ScanMysqlStatement(std::string_view sql, bool backslash_escapes, MysqlStatementScan& out);

// CREATE, ALTER, DROP or RENAME: what the catalog (mysql_catalog.h) knows may change.
bool IsMysqlDdl(std::string_view sql, bool backslash_escapes);

// KILL [HARD | SOFT] [CONNECTION | QUERY] <thread id> [;], alone in its text: the statement
// a client's cancel sends (the mariadb and mysql clients' Ctrl-C send `KILL QUERY <id>` on a
// connection of their own). `KILL QUERY ID <query id>` and `KILL USER <name>` name no
// thread: not matched.
struct MysqlKill {
  uint32_t thread_id = 0;
  bool connection = true;  // KILL [CONNECTION] ends the connection; KILL QUERY its statement
};
bool ParseMysqlKill(std::string_view sql, bool backslash_escapes, MysqlKill* out);

}  // namespace dbwarden::proxy
