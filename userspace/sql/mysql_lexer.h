// SPDX-License-Identifier: Apache-2.0
//
// A hand-written tokenizer for MySQL/MariaDB SQL text, producing the same
// Token kinds as the PostgreSQL Lexer (sql/lexer.h) so that normalisation and
// classification are shared. Like it, it never allocates and never reads past
// the input; anything unterminated runs to the end of the text and is flagged.
//
// Token rules (https://dev.mysql.com/doc/refman/8.0/en/lexical-structure.html,
// https://mariadb.com/kb/en/comment-syntax/):
//   'a\'b' "a""b"       strings; backslash escapes the next byte unless
//                       NO_BACKSLASH_ESCAPES; a doubled quote stands for itself.
//                       With ANSI_QUOTES "..." is an identifier instead.
//   `a``b`              quoted identifier
//   X'ff' B'01' N'x'    prefixed strings (_utf8mb4'x' is a word then a string)
//   # ...               comment to end of line
//   -- ...              comment only when "--" is followed by a space, a control
//                       character or the end of the text; otherwise two minus signs
//   /* ... */           comment; does NOT nest
//   /*+ ... */          optimizer hint: a comment for our purposes
//   /*!50001 ... */     version comment: the server executes its content, so the
//   /*M!100100 ... */   content is tokenised; the opening marker and the closing
//                       "*/" come out as kComment tokens
//   ?                   placeholder of a prepared statement (kParam)
//   @v @@global.v       user and system variables (kWord)
#pragma once

#include <cstddef>
#include <string_view>

#include "sql/dialect.h"
#include "sql/lexer.h"

namespace dbwarden::sql {

class MysqlLexer {
 public:
  explicit MysqlLexer(std::string_view sql, MysqlMode mode = {}) : sql_(sql), mode_(mode) {}

  // The next token including comments; whitespace is skipped. Returns kEnd
  // (repeatedly) once the text is exhausted.
  Token next();
  Token next_significant();

  std::string_view text() const { return sql_; }

 private:
  size_t scan_quoted(size_t from, char quote, bool backslash_escapes, bool* unterminated) const;
  size_t scan_block_comment(size_t from, bool* unterminated) const;
  size_t scan_number(size_t from) const;
  size_t scan_operator(size_t from) const;
  // "--" followed by a space, a control character or the end starts a comment.
  bool dash_comment_at(size_t i) const;

  std::string_view sql_;
  MysqlMode mode_;
  size_t pos_ = 0;
  bool in_version_comment_ = false;
};

}  // namespace dbwarden::sql
