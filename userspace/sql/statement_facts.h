// SPDX-License-Identifier: Apache-2.0
//
// Facts about a statement that enforcement policies ask (userspace/policy) and
// that the table classifier does not give: what a CREATE/ALTER/DROP acts on,
// and the dangerous forms of ALTER TABLE, GRANT and COPY. Read from the
// significant tokens of one statement, no grammar:
//
//   object_type      CREATE/ALTER/DROP/RENAME: the object-type words after the
//                    verb, upper-cased, modifiers skipped (OR REPLACE, TEMP,
//                    TEMPORARY, GLOBAL, LOCAL, UNLOGGED, UNIQUE, RECURSIVE,
//                    ONLINE, IGNORE, MySQL's DEFINER = user, ALGORITHM = x,
//                    SQL SECURITY x): "TABLE", "ROLE", "USER", "INDEX",
//                    "MATERIALIZED VIEW", "USER MAPPING", "DEFAULT PRIVILEGES",
//                    ...; MySQL's TABLES reads as "TABLE"; TRUNCATE: "TABLE";
//                    otherwise "".
//   alter_table_drop ALTER TABLE whose action list (after the table name and
//                    after each ',' outside parentheses) has an action that
//                    starts with DROP: DROP [COLUMN] c, DROP CONSTRAINT,
//                    DROP INDEX/KEY/PRIMARY KEY/FOREIGN KEY/CHECK/PARTITION.
//                    ALTER COLUMN c DROP DEFAULT / DROP NOT NULL do not count:
//                    that action starts with ALTER.
//   grant_to_public  GRANT (also ALTER DEFAULT PRIVILEGES ... GRANT) whose
//                    grantee list after TO names PUBLIC (unquoted, any case;
//                    PostgreSQL also reads "public" quoted as PUBLIC).
//   copy_program     COPY ... TO PROGRAM or FROM PROGRAM: the server runs a
//                    shell command (COPY TO STDOUT, FROM STDIN and files do not
//                    count).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "sql/analysis.h"
#include "sql/lexer.h"

namespace dbwarden::sql {

// Adds the facts of the statement tokens[begin, end) (one statement, no ';'
// outside parentheses) to `out`: the booleans are OR-ed in, object_type is set
// only when it is still empty (the first statement's wins).
void add_statement_facts(Dialect dialect, std::string_view text, const std::vector<Token>& tokens,
                         size_t begin, size_t end, Analysis& out);

}  // namespace dbwarden::sql
