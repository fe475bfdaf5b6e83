// SPDX-License-Identifier: Apache-2.0
#include "sql/normalize.h"

#include <cstring>

#include "sql/char_class.h"
#include "sql/keywords.h"
#include "sql/mysql_lexer.h"

namespace dbwarden::sql {
namespace {

// What the previous emitted token was, for spacing and sign folding.
enum class Prev : uint8_t {
  kStart,
  kKeyword,
  kIdent,
  kValue,
  kOpen,    // ( or [
  kJoiner,  // . or ::
  kClose,   // ) or ]
  kComma,
  kOperator,
  kOther,
};

enum class GroupKind : uint8_t { kPlain, kList, kValuesFirst, kValuesNext };

// Trivial on purpose (no member initialisers): the Normalizer holds kMaxGroups
// of them and is built per statement; open() writes each one before use, so
// the array is never cleared (that was 1.5 KB of stores per statement).
struct Group {
  size_t open;  // offset of the '(' or '[' in the output
  GroupKind kind;
  bool only_placeholders;
  bool any_placeholder;
};

// Deeper groups are still normalised, only not collapsed.
constexpr size_t kMaxGroups = 64;

bool value_expected(Prev p) {
  return p == Prev::kStart || p == Prev::kKeyword || p == Prev::kOpen || p == Prev::kComma ||
         p == Prev::kOperator;
}

bool is_value(TokenKind k) {
  return k == TokenKind::kString || k == TokenKind::kDollarString || k == TokenKind::kNumber ||
         k == TokenKind::kParam;
}

class Normalizer {
 public:
  // groups_ is left uninitialised on purpose (see Group).
  // cppcheck-suppress uninitMemberVar
  Normalizer(Dialect dialect, std::string_view text, std::string& out)
      : dialect_(dialect), text_(text), out_(out) {}

  void run(const std::vector<Token>& tokens) {
    size_t count = tokens.size();
    while (count > 0 && tokens[count - 1].is_punct(text_, ';')) --count;
    for (size_t i = 0; i < count; ++i) {
      const Token& t = tokens[i];
      const std::string_view sv = t.text(text_);
      if (t.kind == TokenKind::kOperator && sv.size() == 1 && (sv[0] == '-' || sv[0] == '+') &&
          i + 1 < count && tokens[i + 1].kind == TokenKind::kNumber && value_expected(prev_)) {
        continue;  // the sign belongs to the literal that follows
      }
      step_values_list(t);
      if (t.kind == TokenKind::kPunct && sv.size() == 1 && (sv[0] == '(' || sv[0] == '[')) {
        open(sv[0]);
      } else if (t.kind == TokenKind::kPunct && sv.size() == 1 && (sv[0] == ')' || sv[0] == ']')) {
        close(sv[0]);
      } else {
        other(t, sv);
      }
    }
  }

 private:
  void space_before(Prev cur) {
    if (prev_ == Prev::kStart || prev_ == Prev::kOpen || prev_ == Prev::kJoiner) return;
    if (cur == Prev::kComma || cur == Prev::kClose || cur == Prev::kJoiner) return;
    out_.push_back(' ');
  }

  // VALUES (..), (..): a ',' right after a tuple, then a '(' make a follow-up tuple.
  void step_values_list(const Token& t) {
    if (values_state_ == ValuesState::kNone || depth_ != values_depth_) return;
    if (values_state_ == ValuesState::kAfterTuple && t.is_punct(text_, ',')) {
      comma_pos_ = out_.size();
      values_state_ = ValuesState::kAfterComma;
    } else if (!(values_state_ == ValuesState::kAfterComma && t.is_punct(text_, '('))) {
      values_state_ = ValuesState::kNone;
    }
  }

  void open(char c) {
    Group g{0, GroupKind::kPlain, true, false};
    if (c == '(' && prev_ == Prev::kKeyword && last_keyword_is_in_) {
      g.kind = GroupKind::kList;
    } else if (c == '[' && prev_ == Prev::kKeyword && last_keyword_is_array_) {
      g.kind = GroupKind::kList;
    } else if (c == '(' && prev_ == Prev::kKeyword && last_keyword_is_values_) {
      g.kind = GroupKind::kValuesFirst;
    } else if (c == '(' && values_state_ == ValuesState::kAfterComma && depth_ == values_depth_) {
      g.kind = GroupKind::kValuesNext;
    }
    if (depth_ > 0 && depth_ <= kMaxGroups) groups_[depth_ - 1].only_placeholders = false;
    // No space before a call's or a column list's '(' nor before any '['.
    if (!(c == '[' || (c == '(' && prev_ == Prev::kIdent))) space_before(Prev::kOpen);
    g.open = out_.size();
    out_.push_back(c);
    if (depth_ < kMaxGroups) groups_[depth_] = g;
    ++depth_;
    prev_ = Prev::kOpen;
  }

  void close(char c) {
    space_before(Prev::kClose);
    out_.push_back(c);
    prev_ = Prev::kClose;
    if (depth_ == 0) return;  // unbalanced: nothing to collapse
    --depth_;
    if (depth_ >= kMaxGroups) return;
    const Group& g = groups_[depth_];
    switch (g.kind) {
      case GroupKind::kList:
        if (g.only_placeholders && g.any_placeholder) {
          out_.resize(g.open + 1);
          out_.push_back('?');
          out_.push_back(c);
        }
        break;
      case GroupKind::kValuesFirst:
        first_begin_ = g.open;
        first_end_ = out_.size();
        values_depth_ = depth_;
        values_state_ = ValuesState::kAfterTuple;
        break;
      case GroupKind::kValuesNext:
        if (out_.size() - g.open == first_end_ - first_begin_ &&
            out_.compare(g.open, first_end_ - first_begin_, out_, first_begin_,
                         first_end_ - first_begin_) == 0) {
          out_.resize(comma_pos_);
        }
        values_state_ = ValuesState::kAfterTuple;
        break;
      case GroupKind::kPlain:
        break;
    }
  }

  void other(const Token& t, std::string_view sv) {
    Prev cur = Prev::kOther;
    bool keyword = false;
    std::string_view upper;  // a keyword as the list writes it
    if (is_value(t.kind)) {
      cur = Prev::kValue;
    } else if (t.kind == TokenKind::kWord) {
      upper = keyword_upper(sv);
      keyword = !upper.empty();
      cur = keyword ? Prev::kKeyword : Prev::kIdent;
    } else if (t.kind == TokenKind::kQuotedIdent) {
      cur = Prev::kIdent;
    } else if (t.kind == TokenKind::kOperator) {
      cur = Prev::kOperator;
    } else if (t.kind == TokenKind::kPunct) {
      if (sv == ",") {
        cur = Prev::kComma;
      } else if (sv == "." || sv == "::") {
        cur = Prev::kJoiner;
      } else if (sv == ";") {
        cur = Prev::kClose;  // no space before it
      }
    }
    if (depth_ > 0 && depth_ <= kMaxGroups) {
      Group& g = groups_[depth_ - 1];
      if (cur == Prev::kValue) {
        g.any_placeholder = true;
      } else if (cur != Prev::kComma) {
        g.only_placeholders = false;
      }
    }
    space_before(cur);
    if (cur == Prev::kValue) {
      out_.push_back('?');
    } else if (keyword) {
      out_.append(upper);  // already upper case: no byte to fold
      last_keyword_is_in_ = upper == "IN";
      last_keyword_is_values_ = upper == "VALUES";
      last_keyword_is_array_ = upper == "ARRAY";
    } else if (t.kind == TokenKind::kWord && dialect_ == Dialect::kPostgresql) {
      append_lower(sv);
    } else {
      out_.append(sv);
    }
    if (cur == Prev::kClose) cur = Prev::kOther;  // ';' between statements
    prev_ = cur;
  }

  // One append, then the case change in place, eight bytes at a time
  // (chars::fold_lower8); the last word overlaps the one before when the
  // length is not a multiple of eight (folding twice changes nothing), and
  // only words under eight bytes go byte by byte.
  void append_lower(std::string_view sv) {
    const size_t at = out_.size();
    out_.append(sv);
    char* p = out_.data() + at;
    const size_t n = sv.size();
    if (n < 8) {
      for (size_t i = 0; i < n; ++i) {
        p[i] = static_cast<char>(chars::to_lower(static_cast<unsigned char>(p[i])));
      }
      return;
    }
    for (size_t i = 0;; i += 8) {
      if (i + 8 > n) i = n - 8;
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      w = chars::fold_lower8(w);
      std::memcpy(p + i, &w, 8);
      if (i + 8 == n) return;
    }
  }

  enum class ValuesState : uint8_t { kNone, kAfterTuple, kAfterComma };

  Dialect dialect_;
  std::string_view text_;
  std::string& out_;
  Prev prev_ = Prev::kStart;
  bool last_keyword_is_in_ = false;
  bool last_keyword_is_values_ = false;
  bool last_keyword_is_array_ = false;
  Group groups_[kMaxGroups];
  size_t depth_ = 0;
  ValuesState values_state_ = ValuesState::kNone;
  size_t values_depth_ = 0;
  size_t first_begin_ = 0;
  size_t first_end_ = 0;
  size_t comma_pos_ = 0;
};

template <typename L>
bool collect(L& lexer, std::vector<Token>& out) {
  bool unterminated = false;
  for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
    unterminated = unterminated || t.unterminated;
    if (t.kind != TokenKind::kComment) out.push_back(t);
  }
  return unterminated;
}

uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace

bool tokenize(Dialect dialect, const MysqlMode& mode, std::string_view text,
              std::vector<Token>& out) {
  out.clear();
  if (dialect == Dialect::kMysql) {
    MysqlLexer lexer(text, mode);
    return collect(lexer, out);
  }
  Lexer lexer(text);
  return collect(lexer, out);
}

void normalize_tokens(Dialect dialect, std::string_view text, const std::vector<Token>& tokens,
                      std::string& out) {
  out.clear();
  Normalizer(dialect, text, out).run(tokens);
}

std::string normalize(Dialect dialect, std::string_view text, const MysqlMode& mode) {
  std::vector<Token> tokens;
  tokenize(dialect, mode, text, tokens);
  std::string out;
  normalize_tokens(dialect, text, tokens, out);
  return out;
}

// Eight bytes at a time, multiply-rotate, then the murmur3 finaliser. Fixed
// constants and little-endian reads: the same text hashes the same everywhere.
uint64_t fingerprint64(std::string_view s) {
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ULL;
  uint64_t h = 0x6a09e667f3bcc909ULL ^ (s.size() * kMul);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w = 0;
    for (size_t b = 0; b < 8; ++b) w |= uint64_t{static_cast<unsigned char>(s[i + b])} << (8 * b);
    h = (h ^ mix(w)) * kMul;
    h = (h << 27) | (h >> 37);
  }
  uint64_t w = 0;
  for (size_t b = 0; i + b < s.size(); ++b) {
    w |= uint64_t{static_cast<unsigned char>(s[i + b])} << (8 * b);
  }
  h = (h ^ mix(w)) * kMul;
  return mix(h);
}

std::string fingerprint_hex(uint64_t fingerprint) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[fingerprint & 0xf];
    fingerprint >>= 4;
  }
  return out;
}

}  // namespace dbwarden::sql
