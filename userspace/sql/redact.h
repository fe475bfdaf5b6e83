// SPDX-License-Identifier: Apache-2.0
//
// Credential redaction: passwords, password hashes and connection-string
// passwords are cut out of statement text, bound parameter values and server
// messages before any output (audit record, shipper, metrics label, log line,
// proxy decision or approval request) sees them. It works on the tokens of the
// dialect's own lexer (sql/lexer.h, sql/mysql_lexer.h), not on a grammar, so
// it also covers statements that fail, that do not parse, that are cut short,
// or that come several to a text.
//
// What counts as a secret (a "value" is a string or dollar-quoted literal or a
// bound parameter $n / ?; comments between tokens are skipped):
//   any word ending in PASSWORD (PASSWORD, MASTER_PASSWORD, SOURCE_PASSWORD,
//   OLD_PASSWORD, sslpassword, a column user_password...) or a quoted
//   identifier "password" followed by a value, by '=' or ':=' and a value, or
//   by '(' and a value:
//     CREATE|ALTER ROLE|USER|GROUP .. [ENCRYPTED] PASSWORD '..'   (PostgreSQL)
//     .. OPTIONS (user 'u', password '..')   (user mappings, servers)
//     PASSWORD('..')  OLD_PASSWORD('..')  SET PASSWORD = '..'
//     CHANGE MASTER TO MASTER_PASSWORD = '..', SOURCE_PASSWORD = '..'
//     START SLAVE|REPLICA .. PASSWORD = '..'
//     UPDATE users SET password = '..'   (a password column too)
//   In CREATE|ALTER ROLE|USER|GROUP (PostgreSQL) the token after PASSWORD is a
//   secret whatever its kind (an unquoted or double-quoted password is a
//   syntax error the server still receives), except NULL.
//   After IDENTIFIED (MySQL), up to the next ',' or ';': the value after BY,
//   AS or USING (an unquoted word too, except RANDOM and PASSWORD) and after
//   REPLACE: IDENTIFIED BY '..', IDENTIFIED WITH plugin BY|AS '..',
//   IDENTIFIED VIA plugin USING '..', GRANT .. IDENTIFIED BY '..'.
//   SET PASSWORD [FOR user] = '..' [REPLACE '..'] (MySQL): the value after the
//   statement's first '=' and after REPLACE.
//   Inside any string or dollar-quoted literal, and inside any bound value: a
//   libpq connection string's key ending in password (`password=..`,
//   `sslpassword=..`), and the password of a URI's user information
//   (`postgresql://user:pw@host`, `mysql://user:pw@host`, any scheme).
//   The body of a dollar-quoted literal (PostgreSQL: DO blocks, function
//   bodies) is redacted as SQL too, two levels deep, besides the connection
//   string look over all of its bytes (there an unquoted value also ends at a
//   quote, ')' or ';', the SQL around it), and so is a quoted
//   literal that holds a quote and PASSWORD or IDENTIFIED (EXECUTE 'ALTER ROLE
//   a PASSWORD ''x''' in a DO body, MySQL PREPARE s FROM '..'), one level
//   deep: there the marker is written with the literal's own escaping,
//   ''<redacted>''.
//
// What replaces it: a whole literal (or the token standing for one) becomes
// kRedactedLiteral, '<redacted>'; a password inside a connection string or
// URI becomes kRedactedValue, <redacted>, and the rest of the literal stays; a
// connection-string password that is itself quoted (password=''a b'') is
// found by reading the literal as SQL, else it takes the whole literal with
// it (in a bound value or message: just itself with its quotes). A secret
// bound parameter becomes kRedactedValue.
// Nothing else changes but a space where a marker would run into a
// neighbouring quote or word: the text keeps its tokens, so its normalised
// form and fingerprint are those of the original (sql/normalize.h: every
// literal is ?), except where the secret was not a literal (PASSWORD hunter2,
// a syntax error): then the marker makes it one, and another such password
// still gives the same fingerprint. `ALTER ROLE bob CONNECTION LIMIT 5` keeps
// its text.
//
// Not covered: secrets in comments, SQL in a quoted literal inside a quoted
// literal (only its connection strings are looked at), values computed by
// expressions (IDENTIFIED BY CONCAT(..), format('.. PASSWORD %L', ..)), user
// variables (IDENTIFIED BY @pw).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sql/dialect.h"
#include "sql/lexer.h"

namespace dbwarden::sql {

inline constexpr std::string_view kRedactedLiteral = "'<redacted>'";
inline constexpr std::string_view kRedactedValue = "<redacted>";

// What redaction found in one statement text.
struct Redaction {
  bool text_redacted = false;
  std::string text;  // the redacted text; meaningful only when text_redacted
  // Bound parameters (0-based: $1 and the first ? are 0) that sit where a
  // secret goes, e.g. PASSWORD($1), IDENTIFIED BY ?.
  std::vector<uint32_t> secret_parameters;
  // The removed bytes, as written, for scrub_secrets(); never output them.
  std::vector<std::string> secrets;

  bool any() const { return text_redacted || !secret_parameters.empty(); }
  // Keeps the buffers' capacity.
  void clear() {
    text_redacted = false;
    text.clear();
    secret_parameters.clear();
    secrets.clear();
  }
};

// The redaction pass over tokens the analyser already has. A text without a
// word ending in PASSWORD, without IDENTIFIED, without a dollar-quoted body
// and without a literal holding '=', "://" or a quote and one of those words
// costs one look at each token (and at each literal's bytes) and no
// allocation. Not thread-safe: one per thread.
class Redactor {
 public:
  // `tokens` are tokenize(dialect, mode, text)'s. Fills `out` (cleared
  // first); returns out.any().
  bool find(Dialect dialect, const MysqlMode& mode, std::string_view text,
            const std::vector<Token>& tokens, Redaction& out);

 private:
  enum class Marker : uint8_t {
    kValue,           // kRedactedValue
    kLiteral,         // kRedactedLiteral
    kLiteralDoubled,  // kRedactedLiteral inside a '...' literal: ''<redacted>''
  };
  struct Edit {
    size_t begin, end;
    Marker marker;
    // A space keeps the marker from running into a neighbouring quote or
    // word where the secret did not ('u'"x" in MySQL, PASSWORD "x"'y').
    bool space_before, space_after;
  };
  static constexpr int kMaxDepth = 2;
  static constexpr int kMaxPasses = 8;  // find()'s passes to a fixpoint

  // One pass over `text`: edits found and applied into `out` (not cleared).
  bool find_once(Dialect dialect, const MysqlMode& mode, std::string_view text,
                 const std::vector<Token>& tokens, Redaction& out);

  void scan(Dialect dialect, const MysqlMode& mode, std::string_view text,
            const std::vector<Token>& tokens, size_t base, int depth, bool in_string,
            Redaction& out);
  void mark_token(std::string_view text, const Token& t, size_t base, Redaction& out);
  void scan_literal(Dialect dialect, const MysqlMode& mode, std::string_view text, const Token& t,
                    size_t base, int depth, bool in_string, Redaction& out);
  bool scan_nested_string(Dialect dialect, const MysqlMode& mode, std::string_view text,
                          const Token& t, size_t offset, size_t at, int depth, Redaction& out);

  std::vector<Edit> edits_;
  size_t floor_ = 0;  // edits_ below this index belong to an enclosing literal's text
  std::vector<Token> nested_[kMaxDepth];
  std::string views_[kMaxDepth];           // a quoted literal's content, quote escapes undone
  std::vector<uint32_t> maps_[kMaxDepth];  // view offset -> content offset
  std::vector<Token> again_tokens_;        // find(): the redacted text's, for the next pass
  Redaction again_;                        // find(): the next pass's result
};

// Redactor::find()'s first look, on its own: false when `text` (tokenised as
// `tokens`) holds nothing the pass would look into (see Redactor), so it has
// no credential. For sql/shape_memo.h, which must know that a text's bytes
// that vary (its literals) cannot turn one up.
bool may_hold_credentials(std::string_view text, const std::vector<Token>& tokens);
// The same look at one string literal's content (the bytes between its quotes).
bool literal_may_hold_credentials(std::string_view content);

// For callers without the analyser's tokens (the enforcement proxy): `in`
// with every credential redacted into `out`. Returns whether anything was
// redacted; `out` is then the text to use, else it is `in` unchanged.
// `parameters`, when given, receives the bound parameters in a secret's
// place (see Redaction::secret_parameters) for redact_parameters().
bool redact_credentials(Dialect dialect, std::string_view in, std::string& out,
                        const MysqlMode& mode = {});
bool redact_credentials(Dialect dialect, std::string_view in, Redaction& out,
                        const MysqlMode& mode = {});

// One bound parameter value on its own: a connection string or URI password in
// it is redacted (a quoted one up to its closing quote). Returns
// whether anything was; `out` then holds the value to use. `secrets`, when
// given, receives what was removed.
bool redact_parameter(std::string_view value, std::string& out,
                      std::vector<std::string>* secrets = nullptr);

// Bound values of the statement `redaction` was found in: those at
// secret_parameters become kRedactedValue, every other one goes through
// redact_parameter(). What was removed is added to redaction.secrets (for
// scrub_secrets). Returns whether any value changed.
bool redact_parameters(Redaction& redaction, std::vector<std::optional<std::string>>& values);

// A server message about the statement (error text, which may quote the
// statement: MySQL's "near '...'", PostgreSQL's "at or near \"...\""): every
// occurrence of a removed secret, and of its first four or more bytes (a
// server cuts quoted text short), becomes kRedactedValue, and a connection
// string or URI password in it is redacted as in a literal. Returns whether
// the message changed.
bool scrub_secrets(const Redaction& redaction, std::string& message);

}  // namespace dbwarden::sql
