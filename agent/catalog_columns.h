// SPDX-License-Identifier: Apache-2.0
//
// The columns of a live server's tables and views, with their types and NOT NULL, for
// `dbwarden policy check FILE --postgres ... / --mysql ...` (policy::DbColumn). No stored
// credentials: it connects over the server's unix socket as the invoking OS user, so the
// server's peer (PostgreSQL) or unix_socket (MariaDB) authentication admits it; a server that
// asks for a password is an error that says so. The wire is spoken with the project's own
// protocol code (protocol/pgsql, protocol/mysql), one query each:
// - PostgreSQL: pg_attribute of every relation outside pg_catalog, information_schema and
//   the toast and temporary schemas, of the one database named (default: the user's name,
//   as libpq does);
// - MySQL/MariaDB: information_schema.COLUMNS outside the system schemas, every database.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "policy/policy.h"

namespace dbwarden::agent {

// `target`: a socket directory (port 5432), a socket file (`.s.PGSQL.N`), or libpq-style
// `key=value` words: host (a socket directory), port, dbname, user.
Result<std::vector<policy::DbColumn>> read_pg_columns(const std::string& target);
// `socket`: the server's unix socket (e.g. /run/mysqld/mysqld.sock).
Result<std::vector<policy::DbColumn>> read_mysql_columns(const std::string& socket);

}  // namespace dbwarden::agent
