// SPDX-License-Identifier: Apache-2.0
#include "sql/redact.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "sql/char_class.h"
#include "sql/normalize.h"

namespace dbwarden::sql {
namespace {

using chars::is_ident_cont;
using chars::is_space;

constexpr size_t kNone = static_cast<size_t>(-1);

// Eight ASCII bytes as one little-endian word, to compare with a folded load.
constexpr uint64_t word8(const char (&s)[9]) {
  uint64_t w = 0;
  for (int i = 7; i >= 0; --i) w = (w << 8) | static_cast<unsigned char>(s[i]);
  return w;
}
constexpr uint64_t kPassword = word8("password");
constexpr uint64_t kIdentifi = word8("identifi");

uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

// PASSWORD, MASTER_PASSWORD, sslpassword, user_password ... in any case.
bool ends_with_password(std::string_view w) {
  return w.size() >= 8 && chars::fold_lower8(load8(w.data() + w.size() - 8)) == kPassword;
}

bool is_identified(std::string_view w) {
  return w.size() == 10 && chars::fold_lower8(load8(w.data())) == kIdentifi &&
         (w[8] | 0x20) == 'e' && (w[9] | 0x20) == 'd';
}

bool is_value(TokenKind k) {
  return k == TokenKind::kString || k == TokenKind::kDollarString || k == TokenKind::kParam;
}

bool is_word(const Token& t, std::string_view text, std::string_view upper) {
  return t.kind == TokenKind::kWord && keyword_equals(t.text(text), upper);
}

// The bytes between a literal's (or quoted identifier's) delimiters: after
// the prefix and opening quote (E'..', U&'..', $tag$..), before the closing
// one unless the token ran to the end unterminated. `offset` is where they
// start inside the token.
std::string_view literal_content(std::string_view text, const Token& t, size_t* offset) {
  const std::string_view s = t.text(text);
  size_t open = 0, close = 1;
  if (t.kind == TokenKind::kDollarString) {
    const size_t second = s.find('$', 1);
    open = second == std::string_view::npos ? s.size() : second + 1;
    close = open;
  } else {
    while (open < s.size() && s[open] != '\'' && s[open] != '"' && s[open] != '`') ++open;
    open = std::min(open + 1, s.size());
  }
  size_t end = s.size();
  if (!t.unterminated) end = end >= open + close ? end - close : open;
  *offset = open;
  return s.substr(open, end - open);
}

// Byte classes of a literal's content, for literal_may_hold().
enum : uint8_t { kPlainByte, kEqualsByte, kColonByte, kQuoteByte };
constexpr std::array<uint8_t, 256> kLiteralBytes = [] {
  std::array<uint8_t, 256> t{};
  t['='] = kEqualsByte;
  t[':'] = kColonByte;
  t['\''] = t['"'] = t['\\'] = kQuoteByte;
  return t;
}();

// PASSWORD (any word ending in it) or IDENTIFIED anywhere in `s`, any case.
bool has_secret_word(std::string_view s) {
  for (size_t i = 0; i + 8 <= s.size(); ++i) {
    const char c = static_cast<char>(s[i] | 0x20);
    if (c != 'p' && c != 'i') continue;
    const uint64_t w = chars::fold_lower8(load8(s.data() + i));
    if (w == kPassword) return true;
    if (w == kIdentifi && i + 10 <= s.size() && (s[i + 8] | 0x20) == 'e' &&
        (s[i + 9] | 0x20) == 'd') {
      return true;
    }
  }
  return false;
}

// A literal's content that may hold a connection string ('='), a URI ("://")
// or SQL with a quoted secret (a quote and PASSWORD or IDENTIFIED).
bool literal_may_hold(std::string_view s) {
  bool quote = false;
  for (size_t i = 0; i < s.size(); ++i) {
    switch (kLiteralBytes[static_cast<unsigned char>(s[i])]) {
      case kEqualsByte:
        return true;
      case kColonByte:
        if (i + 2 < s.size() && s[i + 1] == '/' && s[i + 2] == '/') return true;
        break;
      case kQuoteByte:
        quote = true;
        break;
      default:
        break;
    }
  }
  return quote && has_secret_word(s);
}

// One look per token: nothing here means nothing for scan() to find.
bool may_hold(std::string_view text, const std::vector<Token>& tokens) {
  for (const Token& t : tokens) {
    switch (t.kind) {
      case TokenKind::kWord: {
        const std::string_view w = t.text(text);
        if (ends_with_password(w) || is_identified(w)) return true;
        break;
      }
      case TokenKind::kQuotedIdent:
        // Up to the closing quote: "password", `password`.
        if (t.end - t.begin > 9 && ends_with_password(text.substr(t.begin, t.end - t.begin - 1))) {
          return true;
        }
        break;
      case TokenKind::kString:
        // Between the first and last byte: the quotes themselves are no
        // quote inside (a prefix like E' only costs the secret-word look).
        if (t.end - t.begin > 2 &&
            literal_may_hold(text.substr(t.begin + 1, t.end - t.begin - 2))) {
          return true;
        }
        break;
      case TokenKind::kDollarString:
        return true;  // a body: look inside
      default:
        break;
    }
  }
  return false;
}

struct Range {
  size_t begin, end;
};

// Where find_in_literal() looks.
enum class Source : uint8_t {
  kLiteral,  // a quoted literal's content, still in its SQL quoting
  kRaw,      // a bound value or a server message
  kBody,     // a dollar-quoted body: raw text, but SQL around the values
};

// Credentials inside `s`: the ranges to replace with kRedactedValue are
// appended to `ranges`. A quoted connection-string password (password='a b')
// runs to its closing quote in raw text; inside a literal its quotes are the
// SQL's escapes too, so there the function returns false instead: all of `s`
// must go. In a body an unquoted value also ends at a quote, ')' or ';' (the
// SQL around it; a literal there is also read on its own, whole).
bool find_in_literal(std::string_view s, std::vector<Range>& ranges, Source source) {
  const size_t n = s.size();
  // libpq key=value (https://www.postgresql.org/docs/current/libpq-connect.html
  // #LIBPQ-CONNSTRING-KEYWORD-VALUE): spaces may surround '='; a URI query
  // (?password=..&..) ends the value at '&' or '#' too.
  for (size_t eq = s.find('='); eq != std::string_view::npos; eq = s.find('=', eq + 1)) {
    size_t k = eq;
    while (k > 0 && is_space(static_cast<unsigned char>(s[k - 1]))) --k;
    if (!ends_with_password(s.substr(0, k))) continue;
    size_t key = k - 8;
    while (key > 0 && is_ident_cont(static_cast<unsigned char>(s[key - 1]))) --key;
    const bool query = key > 0 && (s[key - 1] == '?' || s[key - 1] == '&');
    size_t v = eq + 1;
    while (v < n && is_space(static_cast<unsigned char>(s[v]))) ++v;
    const bool body = source == Source::kBody;
    size_t e = v;
    if (v < n && (s[v] == '\'' || s[v] == '"' || s[v] == '\\')) {
      if (source == Source::kLiteral) return false;
      e = v + 1;  // libpq: backslash escapes the next byte inside quotes
      while (e < n && s[e] != s[v]) e += s[e] == '\\' ? 2 : 1;
      e = std::min(e + 1, n);
      // In a body, what is glued to the closing quote goes too: the marker
      // then reads as an unquoted value, which a second pass ends alike.
      if (!body) {
        ranges.push_back({v, e});
        continue;
      }
    }
    while (e < n && !is_space(static_cast<unsigned char>(s[e])) &&
           !(query && (s[e] == '&' || s[e] == '#')) &&
           !(body && (s[e] == '\'' || s[e] == '"' || s[e] == ')' || s[e] == ';'))) {
      ++e;
    }
    if (e > v) ranges.push_back({v, e});
  }
  // scheme://user:password@host (RFC 3986 user information). The last '@'
  // before a space ends it, so a password with '@' or '/' in it goes whole;
  // a ':' after a '/' is in a path, not user information.
  for (size_t p = s.find("://"); p != std::string_view::npos; p = s.find("://", p + 3)) {
    const size_t a = p + 3;
    size_t stop = a;
    while (stop < n && !is_space(static_cast<unsigned char>(s[stop]))) ++stop;
    const std::string_view authority = s.substr(a, stop - a);
    const size_t at = authority.rfind('@');
    if (at == std::string_view::npos) continue;
    const size_t colon = authority.find(':');
    if (colon == std::string_view::npos || colon > at) continue;
    if (authority.substr(0, colon).find('/') != std::string_view::npos) continue;
    if (colon + 1 < at) ranges.push_back({a + colon + 1, a + at});
  }
  return true;
}

// Applies `ranges` (offsets in `s`, any order, may overlap) into `out`.
void apply_ranges(std::string_view s, std::vector<Range>& ranges, std::string& out) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  out.clear();
  size_t pos = 0;
  for (const Range& r : ranges) {
    if (r.end <= pos) continue;
    out.append(s.substr(pos, std::max(r.begin, pos) - pos));
    if (r.begin >= pos) out.append(kRedactedValue);
    pos = r.end;
  }
  out.append(s.substr(pos));
}

// A bound parameter's 0-based index: $n in PostgreSQL (kNone for $0 or an
// absurd n), the running count of '?' in MySQL.
size_t parameter_index(Dialect dialect, std::string_view token, uint32_t ordinal) {
  if (dialect == Dialect::kMysql) return ordinal;
  size_t n = 0;
  for (size_t i = 1; i < token.size(); ++i) {
    n = n * 10 + static_cast<size_t>(token[i] - '0');
    if (n > 65535) return kNone;
  }
  return n == 0 ? kNone : n - 1;
}

}  // namespace

bool may_hold_credentials(std::string_view text, const std::vector<Token>& tokens) {
  return may_hold(text, tokens);
}

bool literal_may_hold_credentials(std::string_view content) { return literal_may_hold(content); }

bool Redactor::find(Dialect dialect, const MysqlMode& mode, std::string_view text,
                    const std::vector<Token>& tokens, Redaction& out) {
  out.clear();
  if (!find_once(dialect, mode, text, tokens, out) || !out.text_redacted) return out.any();
  // A cut can change how the rest of a literal reads: a URI's authority that
  // lost an '@' or a ':' to a connection-string password ends elsewhere. So
  // the text is redacted again until a pass changes nothing: what comes out
  // is a fixpoint, and redacting it again (a record replayed, a proxy's
  // redacted text observed) changes nothing. Most texts take one more pass.
  for (int pass = 1; pass < kMaxPasses; ++pass) {
    tokenize(dialect, mode, out.text, again_tokens_);
    again_.clear();
    find_once(dialect, mode, out.text, again_tokens_, again_);
    for (const uint32_t p : again_.secret_parameters) {
      if (std::find(out.secret_parameters.begin(), out.secret_parameters.end(), p) ==
          out.secret_parameters.end()) {
        out.secret_parameters.push_back(p);
      }
    }
    if (!again_.text_redacted || again_.text == out.text) break;
    // What a later pass removed, less the markers, for scrub_secrets(); a
    // piece under four bytes between markers would only shred messages.
    for (const std::string& s : again_.secrets) {
      size_t from = 0;
      while (from <= s.size()) {
        size_t marker = s.find(kRedactedValue, from);
        if (marker == std::string::npos) marker = s.size();
        std::string_view piece = std::string_view(s).substr(from, marker - from);
        while (!piece.empty() && piece.front() == '\'') piece.remove_prefix(1);
        while (!piece.empty() && piece.back() == '\'') piece.remove_suffix(1);
        if (piece.size() >= 4) out.secrets.emplace_back(piece);
        from = marker + kRedactedValue.size();
      }
    }
    out.text.swap(again_.text);
  }
  return true;
}

bool Redactor::find_once(Dialect dialect, const MysqlMode& mode, std::string_view text,
                         const std::vector<Token>& tokens, Redaction& out) {
  if (!may_hold(text, tokens)) return false;
  edits_.clear();
  floor_ = 0;
  scan(dialect, mode, text, tokens, 0, 0, false, out);
  if (edits_.empty()) return out.any();
  // By position; of edits at one place the widest, and a literal's marker
  // before a value's, so that the one applied keeps the text's quoting.
  std::sort(edits_.begin(), edits_.end(), [](const Edit& a, const Edit& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end > b.end;
    return a.marker > b.marker;
  });
  out.text.reserve(text.size() + edits_.size() * (kRedactedLiteral.size() + 4));
  size_t pos = 0;
  for (const Edit& e : edits_) {
    if (e.end <= pos) continue;  // inside one already applied
    out.text.append(text.substr(pos, std::max(e.begin, pos) - pos));
    if (e.begin >= pos) {
      if (e.space_before) out.text.push_back(' ');
      switch (e.marker) {
        case Marker::kValue:
          out.text.append(kRedactedValue);
          break;
        case Marker::kLiteral:
          out.text.append(kRedactedLiteral);
          break;
        case Marker::kLiteralDoubled:
          out.text.append("''").append(kRedactedValue).append("''");
          break;
      }
      if (e.space_after) out.text.push_back(' ');
    }
    pos = e.end;
  }
  out.text.append(text.substr(pos));
  out.text_redacted = true;
  return true;
}

// A token standing for a whole secret. A bound parameter is only noted: its
// value is redacted by redact_parameters().
void Redactor::mark_token(std::string_view text, const Token& t, size_t base, Redaction& out) {
  if (edits_.size() > floor_ && edits_.back().end > base + t.begin) return;  // marked already
  const bool before =
      t.begin > 0 && text[t.begin] != '\'' &&
      (text[t.begin - 1] == '\'' || is_ident_cont(static_cast<unsigned char>(text[t.begin - 1])));
  const bool after = t.end < text.size() && text[t.end] == '\'';
  edits_.push_back({base + t.begin, base + t.end, Marker::kLiteral, before, after});
  std::string_view secret = t.text(text);
  if (t.kind == TokenKind::kString || t.kind == TokenKind::kDollarString ||
      t.kind == TokenKind::kQuotedIdent) {
    size_t offset = 0;
    secret = literal_content(text, t, &offset);
  }
  if (!secret.empty()) out.secrets.emplace_back(secret);
}

void Redactor::scan_literal(Dialect dialect, const MysqlMode& mode, std::string_view text,
                            const Token& t, size_t base, int depth, bool in_string,
                            Redaction& out) {
  size_t offset = 0;
  const std::string_view content = literal_content(text, t, &offset);
  if (!literal_may_hold(content)) return;
  const size_t at = base + t.begin + offset;
  // Both looks, always: read as SQL (when it holds a quoted secret), and as
  // a connection string. Where the SQL look found something, it decides
  // what it covers: a connection-string range over it, or the whole literal
  // for a quoted value, would cut the SQL around a secret already cut.
  const size_t before = edits_.size();
  const bool nested = !in_string && depth < kMaxDepth &&
                      scan_nested_string(dialect, mode, text, t, offset, at, depth, out);
  const size_t nested_end = edits_.size();
  thread_local std::vector<Range> ranges;
  ranges.clear();
  if (!find_in_literal(content, ranges, Source::kLiteral) && !nested) {
    mark_token(text, t, base, out);
    return;
  }
  for (const Range& r : ranges) {
    bool over = false;
    for (size_t k = before; k < nested_end && !over; ++k) {
      over = edits_[k].begin < at + r.end && at + r.begin < edits_[k].end;
    }
    if (over) continue;
    edits_.push_back({at + r.begin, at + r.end, Marker::kValue, false, false});
    out.secrets.emplace_back(content.substr(r.begin, r.end - r.begin));
  }
}

// A quoted literal's content as SQL. Its quote escapes ('' and, where
// backslashes escape, \') are undone into a view, each view byte mapped back
// to its content offset; the view is scanned like a statement; its edits are
// mapped back to the text, a literal marker with its quotes doubled (map
// entries never split an escape). Returns whether it found any.
bool Redactor::scan_nested_string(Dialect dialect, const MysqlMode& mode, std::string_view text,
                                  const Token& t, size_t offset, size_t at, int depth,
                                  Redaction& out) {
  const std::string_view token = t.text(text);
  if (offset == 0 || offset > 2) return false;  // U&'..'
  const char quote = token[offset - 1];
  const char prefix = static_cast<char>(offset == 2 ? token[0] | 0x20 : 0);
  if (prefix == 'b' || prefix == 'x') return false;  // bits, hex
  const bool backslashes = dialect == Dialect::kMysql ? !mode.no_backslash_escapes : prefix == 'e';
  size_t unused = 0;
  const std::string_view content = literal_content(text, t, &unused);
  // A quoted secret inside needs a quote inside.
  if (content.find_first_of("'\"\\") == std::string_view::npos || !has_secret_word(content)) {
    return false;
  }
  std::string& view = views_[depth];
  std::vector<uint32_t>& map = maps_[depth];
  view.clear();
  map.clear();
  const size_t n = content.size();
  for (size_t i = 0; i < n;) {
    map.push_back(static_cast<uint32_t>(i));
    const bool escape = backslashes && content[i] == '\\' && i + 1 < n;
    if ((content[i] == quote && i + 1 < n && content[i + 1] == quote) ||
        (escape && content[i + 1] == quote)) {
      view.push_back(quote);
      i += 2;
    } else if (escape) {  // \x stays two bytes, each mapped
      view.push_back('\\');
      map.push_back(static_cast<uint32_t>(i + 1));
      view.push_back(content[i + 1]);
      i += 2;
    } else {
      view.push_back(content[i]);
      ++i;
    }
  }
  map.push_back(static_cast<uint32_t>(n));
  std::vector<Token>& inner = nested_[depth];
  tokenize(dialect, mode, view, inner);
  if (!may_hold(view, inner)) return false;
  const size_t before = edits_.size();
  const size_t floor = floor_;
  floor_ = before;
  scan(dialect, mode, view, inner, 0, depth + 1, true, out);
  floor_ = floor;
  for (size_t k = before; k < edits_.size(); ++k) {
    Edit& e = edits_[k];
    e.begin = at + map[e.begin];
    e.end = at + map[e.end];
    if (e.marker == Marker::kLiteral && quote == '\'') e.marker = Marker::kLiteralDoubled;
  }
  return edits_.size() > before;
}

void Redactor::scan(Dialect dialect, const MysqlMode& mode, std::string_view text,
                    const std::vector<Token>& tokens, size_t base, int depth, bool in_string,
                    Redaction& out) {
  const size_t n = tokens.size();
  bool at_start = true;
  bool role = false;          // PostgreSQL CREATE|ALTER ROLE|USER|GROUP
  bool set_password = false;  // MySQL SET PASSWORD
  bool set_password_eq = false;
  bool identified = false;  // after IDENTIFIED, up to ',' or ';'
  int parens = 0;
  uint32_t ordinal = 0;  // '?' seen so far (MySQL)
  size_t marked = kNone;

  // The value a secret keyword introduces at `j`: bound parameters are
  // statement parameters only at the top level (in a function body $1 is an
  // argument).
  auto mark = [&](size_t j) {
    const Token& v = tokens[j];
    if (v.kind == TokenKind::kParam) {
      if (depth > 0) return;
      const size_t index = parameter_index(dialect, v.text(text), ordinal);
      if (index != kNone) out.secret_parameters.push_back(static_cast<uint32_t>(index));
      return;
    }
    mark_token(text, v, base, out);
    marked = j;
  };

  for (size_t i = 0; i < n; ++i) {
    const Token& t = tokens[i];
    if (at_start) {
      at_start = false;
      const bool verb = is_word(t, text, "CREATE") || is_word(t, text, "ALTER");
      role = dialect == Dialect::kPostgresql && verb && i + 1 < n &&
             (is_word(tokens[i + 1], text, "ROLE") || is_word(tokens[i + 1], text, "GROUP") ||
              (is_word(tokens[i + 1], text, "USER") &&
               !(i + 2 < n && is_word(tokens[i + 2], text, "MAPPING"))));
      set_password = dialect == Dialect::kMysql && is_word(t, text, "SET") && i + 1 < n &&
                     tokens[i + 1].kind == TokenKind::kWord &&
                     keyword_equals(tokens[i + 1].text(text), "PASSWORD");
      set_password_eq = false;
      identified = false;
      parens = 0;
    }
    switch (t.kind) {
      case TokenKind::kPunct: {
        const std::string_view p = t.text(text);
        if (p == ";") {
          at_start = true;
        } else if (p == "(") {
          ++parens;
        } else if (p == ")") {
          parens = parens > 0 ? parens - 1 : 0;
        } else if (p == "," && parens == 0) {
          identified = false;  // the next user of CREATE USER a .., b ..
        }
        break;
      }
      case TokenKind::kOperator:
        if (set_password && !set_password_eq && parens == 0 && t.text(text) == "=") {
          set_password_eq = true;
          if (i + 1 < n && is_value(tokens[i + 1].kind)) mark(i + 1);
        }
        break;
      case TokenKind::kParam:
        if (dialect == Dialect::kMysql) ++ordinal;
        break;
      case TokenKind::kWord:
      case TokenKind::kQuotedIdent: {
        std::string_view w = t.text(text);
        if (t.kind == TokenKind::kQuotedIdent) {
          size_t offset = 0;
          w = literal_content(text, t, &offset);
        }
        if (ends_with_password(w)) {
          size_t j = i + 1;
          if (j < n && tokens[j].kind == TokenKind::kOperator &&
              (tokens[j].text(text) == "=" || tokens[j].text(text) == ":=")) {
            ++j;
          }
          if (j < n && tokens[j].is_punct(text, '(')) ++j;
          if (j >= n) break;
          const Token& v = tokens[j];
          if (is_value(v.kind)) {
            mark(j);
          } else if (role && j == i + 1 && t.kind == TokenKind::kWord && w.size() == 8 &&
                     (v.kind == TokenKind::kQuotedIdent || v.kind == TokenKind::kNumber ||
                      (v.kind == TokenKind::kWord && !keyword_equals(v.text(text), "NULL")))) {
            mark(j);  // PASSWORD secret / PASSWORD "secret": a syntax error, still a secret
          }
          break;
        }
        if (t.kind != TokenKind::kWord || i + 1 >= n) break;
        if (is_identified(w)) {
          identified = true;
        } else if (identified && (keyword_equals(w, "BY") || keyword_equals(w, "AS") ||
                                  keyword_equals(w, "USING"))) {
          const Token& v = tokens[i + 1];
          if (is_value(v.kind) || v.kind == TokenKind::kQuotedIdent ||
              v.kind == TokenKind::kNumber ||
              (v.kind == TokenKind::kWord && !keyword_equals(v.text(text), "RANDOM") &&
               !keyword_equals(v.text(text), "PASSWORD"))) {
            mark(i + 1);
          }
        } else if ((identified || set_password) && keyword_equals(w, "REPLACE") &&
                   is_value(tokens[i + 1].kind)) {
          mark(i + 1);  // ALTER USER .. IDENTIFIED BY 'new' REPLACE 'current'
        }
        break;
      }
      case TokenKind::kString:
        if (i != marked) scan_literal(dialect, mode, text, t, base, depth, in_string, out);
        break;
      case TokenKind::kDollarString: {
        if (i == marked) break;
        // A DO block or function body is SQL; it may also be a connection
        // string ($$host=.. password=..$$) or hold one outside any literal
        // (a comment). Both looks, always: which one finds a secret must not
        // depend on what the other already redacted (a second pass over the
        // redacted text changes nothing).
        size_t offset = 0;
        const std::string_view body = literal_content(text, t, &offset);
        const size_t at = base + t.begin + offset;
        if (dialect == Dialect::kPostgresql && depth < kMaxDepth) {
          std::vector<Token>& inner = nested_[depth];
          tokenize(dialect, mode, body, inner);
          if (may_hold(body, inner))
            scan(dialect, mode, body, inner, at, depth + 1, in_string, out);
        }
        if (literal_may_hold(body)) {
          thread_local std::vector<Range> ranges;
          ranges.clear();
          find_in_literal(body, ranges, Source::kBody);
          for (const Range& r : ranges) {
            edits_.push_back({at + r.begin, at + r.end, Marker::kValue, false, false});
            out.secrets.emplace_back(body.substr(r.begin, r.end - r.begin));
          }
        }
        break;
      }
      default:
        break;
    }
  }
}

bool redact_credentials(Dialect dialect, std::string_view in, Redaction& out,
                        const MysqlMode& mode) {
  thread_local std::vector<Token> tokens;
  thread_local Redactor redactor;
  tokenize(dialect, mode, in, tokens);
  return redactor.find(dialect, mode, in, tokens, out);
}

bool redact_credentials(Dialect dialect, std::string_view in, std::string& out,
                        const MysqlMode& mode) {
  thread_local Redaction r;
  if (!redact_credentials(dialect, in, r, mode) || !r.text_redacted) {
    out.assign(in);
    return false;
  }
  out.swap(r.text);
  return true;
}

bool redact_parameter(std::string_view value, std::string& out, std::vector<std::string>* secrets) {
  if (!literal_may_hold(value)) return false;
  std::vector<Range> ranges;
  find_in_literal(value, ranges, Source::kRaw);
  if (ranges.empty()) return false;
  if (secrets != nullptr) {
    for (const Range& r : ranges) secrets->emplace_back(value.substr(r.begin, r.end - r.begin));
  }
  apply_ranges(value, ranges, out);
  return true;
}

bool redact_parameters(Redaction& redaction, std::vector<std::optional<std::string>>& values) {
  bool changed = false;
  std::string redacted;
  for (size_t i = 0; i < values.size(); ++i) {
    std::optional<std::string>& v = values[i];
    if (!v.has_value()) continue;
    const bool secret =
        std::find(redaction.secret_parameters.begin(), redaction.secret_parameters.end(), i) !=
        redaction.secret_parameters.end();
    if (secret) {
      if (!v->empty()) redaction.secrets.push_back(*v);
      v->assign(kRedactedValue);
      changed = true;
    } else if (redact_parameter(*v, redacted, &redaction.secrets)) {
      v->swap(redacted);
      changed = true;
    }
  }
  return changed;
}

bool scrub_secrets(const Redaction& redaction, std::string& message) {
  if (message.empty()) return false;
  bool changed = false;
  for (const std::string& s : redaction.secrets) {
    if (s.empty()) continue;
    const size_t head = std::min<size_t>(s.size(), 4);
    size_t pos = 0;
    while ((pos = message.find(s.data(), pos, head)) != std::string::npos) {
      size_t length = head;
      while (length < s.size() && pos + length < message.size() &&
             message[pos + length] == s[length]) {
        ++length;
      }
      message.replace(pos, length, kRedactedValue);
      pos += kRedactedValue.size();
      changed = true;
    }
  }
  std::string redacted;
  if (redact_parameter(message, redacted)) {
    message.swap(redacted);
    changed = true;
  }
  return changed;
}

}  // namespace dbwarden::sql
