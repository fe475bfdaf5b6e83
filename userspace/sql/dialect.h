// SPDX-License-Identifier: Apache-2.0
//
// The SQL dialects the analyser knows, and the server settings that change how
// a dialect's text is tokenised.
#pragma once

#include <cstdint>
#include <string_view>

namespace dbwarden::sql {

enum class Dialect : uint8_t { kPostgresql, kMysql };

// MySQL/MariaDB sql_mode flags that change tokenisation
// (https://dev.mysql.com/doc/refman/8.0/en/sql-mode.html).
struct MysqlMode {
  bool no_backslash_escapes = false;  // NO_BACKSLASH_ESCAPES: '\' is an ordinary character
  bool ansi_quotes = false;           // ANSI_QUOTES: "x" is an identifier, not a string
};

// The dialect named by ConnectionInfo::db_system ("postgresql", "mysql").
// Anything else is analysed as PostgreSQL, the stricter of the two lexers.
inline Dialect dialect_of(std::string_view db_system) {
  return db_system == "mysql" || db_system == "mariadb" ? Dialect::kMysql : Dialect::kPostgresql;
}

}  // namespace dbwarden::sql
