// SPDX-License-Identifier: Apache-2.0
//
// A hand-written tokenizer for PostgreSQL's SQL dialect. It only splits text
// into tokens (no grammar), never allocates and never reads past the input, so
// it is safe on truncated or hostile statements: anything unterminated simply
// runs to the end of the text and is flagged. Normalisation, fingerprints and
// classification are built on top of it.
//
// Token rules follow PostgreSQL's scanner (src/backend/parser/scan.l,
// https://www.postgresql.org/docs/current/sql-syntax-lexical.html), assuming
// standard_conforming_strings = on (the default since 9.1):
//   'it''s'            string; '' is a quote inside it
//   E'a\'b'            escape string; backslash escapes the next byte ('' also works)
//   B'..' X'..' N'..' U&'..'  prefixed strings (U&"..": quoted identifier)
//   "a ""b"""          quoted identifier; "" is a quote inside it
//   $tag$ .. $tag$     dollar quote (tag may be empty: $$ .. $$)
//   $1                 positional parameter
//   -- ...             comment to end of line
//   /* /* */ */        block comment; these nest
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dbwarden::sql {

enum class TokenKind : uint8_t {
  kEnd,           // no more tokens; begin == end == text size
  kWord,          // keyword or unquoted identifier (may contain non-ASCII bytes and $)
  kQuotedIdent,   // "..." or U&"..."
  kString,        // '...', E'...', B'...', X'...', N'...', U&'...'
  kDollarString,  // $tag$...$tag$
  kNumber,        // 42, 3.14, .5, 1e-9, 0x1F, 1_000
  kParam,         // $1
  kOperator,      // + - * / < > = ~ ! @ # % ^ & | ` ? and runs of them
  kPunct,         // ( ) [ ] , ; . : :: (single characters, except ::)
  kComment,       // -- ... or /* ... */
  kOther,         // any other byte (e.g. a lone '$', '\', a stray control byte)
};

// One token: a [begin, end) byte span of the scanned text.
struct Token {
  TokenKind kind = TokenKind::kEnd;
  bool unterminated = false;  // string/identifier/comment that ran to the end of the text
  size_t begin = 0;
  size_t end = 0;

  std::string_view text(std::string_view sql) const { return sql.substr(begin, end - begin); }
  bool is_punct(std::string_view sql, char c) const {
    return kind == TokenKind::kPunct && end - begin == 1 && sql[begin] == c;
  }
};

class Lexer {
 public:
  explicit Lexer(std::string_view sql) : sql_(sql) {}

  // The next token including comments; whitespace is skipped. Returns kEnd
  // (repeatedly) once the text is exhausted.
  Token next();
  // The next token that is not a comment.
  Token next_significant();

  std::string_view text() const { return sql_; }
  size_t position() const { return pos_; }

 private:
  size_t scan_quoted(size_t from, char quote, bool backslash_escapes, bool* unterminated) const;
  size_t scan_block_comment(size_t from, bool* unterminated) const;
  size_t scan_number(size_t from) const;
  size_t scan_operator(size_t from) const;
  // Length of a $tag$ delimiter starting at `from`, or 0 if there is none.
  size_t dollar_delimiter_length(size_t from) const;

  std::string_view sql_;
  size_t pos_ = 0;
};

// ASCII case-insensitive comparison of a word with an upper-case keyword.
bool keyword_equals(std::string_view word, std::string_view upper_keyword);

}  // namespace dbwarden::sql
