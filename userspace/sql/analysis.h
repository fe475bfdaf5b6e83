// SPDX-License-Identifier: Apache-2.0
//
// What the analyser knows about one statement text: its normalised form and
// fingerprint (sql/normalize.h), and its classification.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sql/dialect.h"

namespace dbwarden::sql {

enum class AnalysisSource : uint8_t {
  kLexer,          // the project's own classifier: MySQL, and PostgreSQL where certain
  kParser,         // PostgreSQL: libpg_query's grammar
  kLexerFallback,  // PostgreSQL text libpg_query rejected (truncated, psql meta, ...)
};

struct Analysis {
  Dialect dialect = Dialect::kPostgresql;
  std::string normalized;
  uint64_t fingerprint_value = 0;
  std::string fingerprint;  // 16 lower-case hex digits
  // db.operation.name: sql/operation.h's rule (first word, or the main verb after WITH).
  std::string operation;
  // db.query.summary: operation, a space and the main table ("SELECT accounts"),
  // or the operation alone.
  std::string summary;
  // Tables touched, main table first, each once, schema-qualified where
  // written; quotes removed (PostgreSQL unquoted names folded to lower case).
  std::vector<std::string> collections;
  bool unbounded_write = false;  // an UPDATE or DELETE without WHERE
  // Every statement in the text has a WHERE clause at its own level (not only
  // in a subquery); false for a text with no statement.
  bool has_where = false;
  // For policies (sql/statement_facts.h): what a CREATE/ALTER/DROP/RENAME acts
  // on ("TABLE", "ROLE", "MATERIALIZED VIEW"; TRUNCATE: "TABLE"; else ""), and
  // the dangerous forms of ALTER TABLE, GRANT and COPY.
  std::string object_type;
  bool alter_table_drop = false;  // ALTER TABLE ... DROP <column|constraint|index|...>
  bool grant_to_public = false;   // GRANT ... TO PUBLIC
  bool copy_program = false;      // COPY ... TO PROGRAM / FROM PROGRAM
  uint32_t statements = 0;       // ';'-separated statements in the text
  // A string, identifier or comment ran to the end: the text is cut short.
  // Part of the cache key: "SELECT 'a" and "SELECT 'a'" normalise alike but
  // only the second one parses.
  bool unterminated = false;
  AnalysisSource source = AnalysisSource::kLexer;
};

}  // namespace dbwarden::sql
