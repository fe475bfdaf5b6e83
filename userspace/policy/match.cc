// SPDX-License-Identifier: Apache-2.0
//
// Judging one statement: rules in file order, each condition in order of
// cost (a rule fails at its first false condition, most at the first one), the
// first rule that holds decides. With a `why` string the same walk writes
// down, per rule, the condition that failed or every condition that held.
#include <re2/re2.h>

#include <span>
#include <string>
#include <vector>

#include "policy/glob.h"
#include "policy/inner_statement.h"
#include "policy/policy.h"
#include "policy/rule.h"
#include "sql/analyzer.h"

namespace dbwarden::policy {
namespace {

const sql::AnalyzerOptions kInnerAnalyzerOptions = [] {
  sql::AnalyzerOptions o;
  o.cache.max_entries = 64;
  o.cache.max_bytes = 256 << 10;
  return o;
}();

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += i + 1 == items.size() ? " or " : ", ";
    out += items[i];
  }
  return out;
}

template <typename T, typename F>
std::vector<std::string> texts(const std::vector<T>& items, F&& f) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const T& t : items) out.push_back(f(t));
  return out;
}

std::string shown(std::string_view s) {
  return s.empty() ? "(none)" : "\"" + std::string(s) + "\"";
}

std::string_view dialect_name(sql::Dialect d) {
  return d == sql::Dialect::kMysql ? "mysql" : "postgresql";
}

// Whether the statement's table `name` ("accounts", "public.accounts") fits
// `pattern` split at '.': the rightmost parts, as many as both have, each by glob.
bool collection_fits(const std::vector<std::string>& pattern, std::string_view name) {
  size_t k = pattern.size();
  size_t end = name.size();
  while (k > 0) {
    const size_t dot = name.rfind('.', end == 0 ? 0 : end - 1);
    const size_t begin = (dot == std::string_view::npos || end == 0) ? 0 : dot + 1;
    if (!glob_match(pattern[k - 1], name.substr(begin, end - begin), true)) return false;
    --k;
    if (begin == 0) break;  // the name has no more parts: an unqualified name fits any schema
    end = dot;
  }
  return true;
}

// Walks one rule's conditions; `why` (may be null) collects the reasons.
class Check {
 public:
  Check(const Rule& rule, const ConnectionInfo& who, const sql::Analysis& a, std::string* why)
      : r_(rule), who_(who), a_(a), why_(why) {}

  bool holds() {
    if (!r_.dialects.empty() &&
        !cond(any_of(r_.dialects, [&](sql::Dialect d) { return d == a_.dialect; }), [&] {
          return "dialect " + std::string(dialect_name(a_.dialect)) +
                 vs(texts(r_.dialects,
                          [](sql::Dialect d) { return std::string(dialect_name(d)); }));
        })) {
      return false;
    }
    if (!r_.operations.empty() &&
        !cond(any_of(r_.operations,
                     [&](const OperationPattern& p) {
                       return p.verb == a_.operation &&
                              (p.object.empty() || p.object == a_.object_type);
                     }),
              [&] {
                std::string op = a_.operation.empty() ? "(none)" : a_.operation;
                if (!a_.object_type.empty()) op += " " + a_.object_type;
                return "operation " + op +
                       vs(texts(r_.operations, [](const OperationPattern& p) { return p.text; }));
              })) {
      return false;
    }
    if (!flag(r_.has_where, a_.has_where, "has_where")) return false;
    if (!flag(r_.alter_table_drop, a_.alter_table_drop, "alter_table_drop")) return false;
    if (!flag(r_.grant_to_public, a_.grant_to_public, "grant_to_public")) return false;
    if (!flag(r_.copy_program, a_.copy_program, "copy_program")) return false;
    if (!exact(r_.users, who_.user, "user")) return false;
    if (!exact(r_.databases, who_.database, "database")) return false;
    if (!exact(r_.application_names, who_.application_name, "application_name")) return false;
    if (!r_.client_cidrs.empty()) {
      const auto addr = parse_address(who_.client_address);
      const bool in =
          addr && any_of(r_.client_cidrs, [&](const Cidr& c) { return cidr_contains(c, *addr); });
      if (!cond(in, [&] {
            return "client address " +
                   (who_.client_address.empty() ? std::string("(none: unix socket)")
                                                : who_.client_address) +
                   (in ? " is in " : " is not in ") +
                   join(texts(r_.client_cidrs, [](const Cidr& c) { return c.text; }));
          })) {
        return false;
      }
    }
    const bool local = who_.peer.pid != 0;
    if (!r_.uids.empty()) {
      const bool in = local && any_of(r_.uids, [&](uint32_t u) { return u == who_.peer.uid; });
      if (!cond(in, [&] {
            return "uid " + (local ? std::to_string(who_.peer.uid) : "(no local peer)") +
                   vs(texts(r_.uids, [](uint32_t u) { return std::to_string(u); }));
          })) {
        return false;
      }
    }
    if (!r_.login_uids.empty()) {
      const bool known = local && who_.peer.login_uid.has_value();
      const bool in =
          known && any_of(r_.login_uids, [&](uint32_t u) { return u == *who_.peer.login_uid; });
      if (!cond(in, [&] {
            return "login_uid " + (known ? std::to_string(*who_.peer.login_uid) : "(unset)") +
                   vs(texts(r_.login_uids, [](uint32_t u) { return std::to_string(u); }));
          })) {
        return false;
      }
    }
    if (!glob(r_.executables, local, who_.peer.executable, "executable")) return false;
    if (!glob(r_.units, local, who_.peer.systemd_unit, "unit")) return false;
    if (!glob(r_.containers, local, who_.peer.container_id, "container")) return false;
    if (!r_.collections.empty()) {
      const bool in = any_of(a_.collections, [&](const std::string& name) {
        return any_of(r_.collections,
                      [&](const std::vector<std::string>& p) { return collection_fits(p, name); });
      });
      if (!cond(in, [&] {
            return "collections " + (a_.collections.empty() ? "(none)" : join(a_.collections)) +
                   (in ? " match " : " do not match ") + join(r_.collection_texts);
          })) {
        return false;
      }
    }
    if (!r_.fingerprints.empty() &&
        !cond(any_of(r_.fingerprints, [&](uint64_t f) { return f == a_.fingerprint_value; }),
              [&] { return "fingerprint " + a_.fingerprint + vs(r_.fingerprint_texts); })) {
      return false;
    }
    if (!r_.regexes.empty()) {
      const re2::RE2* hit = nullptr;
      for (const auto& re : r_.regexes) {
        if (re2::RE2::PartialMatch(a_.normalized, *re)) {
          hit = re.get();
          break;
        }
      }
      if (!cond(hit != nullptr, [&] {
            return hit != nullptr
                       ? "normalised text matches regex " + hit->pattern()
                       : "normalised text matches no regex of " +
                             join(texts(r_.regexes, [](const auto& re) { return re->pattern(); }));
          })) {
        return false;
      }
    }
    return true;
  }

  // The conditions that held, "; "-separated (with a `why` string only).
  const std::string& reasons() const { return reasons_; }

 private:
  template <typename T, typename F>
  static bool any_of(const std::vector<T>& items, F&& f) {
    for (const T& t : items) {
      if (f(t)) return true;
    }
    return false;
  }

  // " is X" when the last condition held, ", not X" when it failed.
  std::string vs(const std::vector<std::string>& allowed) const {
    return (last_ ? " is " : ", not ") + join(allowed);
  }

  template <typename Describe>
  bool cond(bool held, Describe&& describe) {
    last_ = held;
    if (why_ == nullptr) return held;
    if (held) {
      if (!reasons_.empty()) reasons_ += "; ";
      reasons_ += describe();
    } else {
      *why_ += "no: " + describe();
    }
    return held;
  }

  bool flag(const std::optional<bool>& want, bool have, std::string_view key) {
    if (!want) return true;
    return cond(*want == have, [&] {
      return std::string(key) + " is " + (have ? "true" : "false") +
             (*want == have ? "" : std::string(", not ") + (*want ? "true" : "false"));
    });
  }

  bool exact(const std::vector<std::string>& allowed, const std::string& have,
             std::string_view key) {
    if (allowed.empty()) return true;
    const bool in =
        !have.empty() && any_of(allowed, [&](const std::string& s) { return s == have; });
    return cond(in, [&] { return std::string(key) + " " + shown(have) + vs(allowed); });
  }

  bool glob(const std::vector<std::string>& patterns, bool local, const std::string& have,
            std::string_view key) {
    if (patterns.empty()) return true;
    const bool in = local && !have.empty() && any_of(patterns, [&](const std::string& p) {
                      return glob_match(p, have, false);
                    });
    return cond(in, [&] {
      return std::string(key) + " " + (local ? shown(have) : "(no local peer)") +
             (in ? " matches " : " does not match ") + join(patterns);
    });
  }

  const Rule& r_;
  const ConnectionInfo& who_;
  const sql::Analysis& a_;
  std::string* why_;
  std::string reasons_;
  bool last_ = false;
};

void fill_block(Decision& d, const sql::Analysis& a, const std::string& message,
                const std::string& sqlstate, std::optional<uint16_t> mysql_errno) {
  d.message = message;
  if (!sqlstate.empty()) {
    d.sqlstate = sqlstate;
  } else {
    d.sqlstate = a.dialect == sql::Dialect::kMysql ? kDefaultMysqlSqlstate : kDefaultPgSqlstate;
  }
  d.mysql_errno = mysql_errno.value_or(kDefaultMysqlErrno);
}

}  // namespace

std::string_view action_name(Action action) {
  switch (action) {
    case Action::kAllow:
      return "allow";
    case Action::kBlock:
      return "block";
    case Action::kLog:
      return "log";
    case Action::kMask:
      return "mask";
    case Action::kRequireApproval:
      return "require_approval";
  }
  return "allow";
}

bool is_unparsed(const sql::Analysis& a) {
  return a.unterminated || a.source == sql::AnalysisSource::kLexerFallback || a.operation.empty();
}

Decision Policy::judge(const ConnectionInfo& who, const sql::Analysis& a, std::string_view text,
                       std::string* why) const {
  // One character first: most statements then skip the four compares.
  const char first = a.operation.empty() ? '\0' : a.operation[0];
  if ((first == 'E' || first == 'A' || first == 'D') &&
      (a.operation == "EXPLAIN" || a.operation == "ANALYZE" || a.operation == "DESCRIBE" ||
       a.operation == "DESC")) {
    if (const std::string_view inner = executed_statement(a.dialect, text); !inner.empty()) {
      return judge_running(who, a, {&inner, 1}, "runs the statement it analyses", why);
    }
  }
  if (first != 'E' && a.dialect == sql::Dialect::kPostgresql &&
      may_have_modifying_cte(a.normalized)) {
    std::vector<std::string_view> parts;
    modifying_ctes(text, parts);
    if (!parts.empty())
      return judge_running(who, a, parts, "runs the writes of its WITH list", why);
  }
  return judge_one(who, a, why);
}

// EXPLAIN ANALYZE x runs x, WITH d AS (DELETE ...) runs the DELETE: each
// must pass the policy too. Kept out of judge() so that the common path stays
// small.
Decision Policy::judge_running(const ConnectionInfo& who, const sql::Analysis& a,
                               std::span<const std::string_view> inner, std::string_view runs,
                               std::string* why) const {
  // The policy is shared and const; each thread analyses with its own small
  // Analyzer (rare statements: a few cached shapes are plenty). An inner
  // statement is judged by its rules alone (judge_one), so this never recurses.
  thread_local sql::Analyzer analyzer(kInnerAnalyzerOptions);
  for (const std::string_view part : inner) {
    std::string inner_why;
    Decision inner_d =
        judge_one(who, analyzer.analyze(a.dialect, part), why ? &inner_why : nullptr);
    if (why) {
      *why += "the " + a.operation + " " + std::string(runs) +
              ", judged first: " + std::string(part) + "\n" + inner_why;
    }
    if (inner_d.action == Action::kBlock || inner_d.action == Action::kRequireApproval) {
      return inner_d;
    }
  }
  std::string outer_why;
  Decision d = judge_one(who, a, why ? &outer_why : nullptr);
  if (why) *why += "then the " + a.operation + " itself:\n" + outer_why;
  return d;
}

Decision Policy::judge_one(const ConnectionInfo& who, const sql::Analysis& a,
                           std::string* why) const {
  Decision d;
  if (a.normalized.empty()) {
    if (why) *why = "an empty statement (no SQL, only whitespace or comments): allowed, no rule\n";
    return d;
  }
  if (is_unparsed(a)) {
    if (on_unparsed_ == OnUnparsed::kBlock) {
      d.action = Action::kBlock;
      d.rule = kOnUnparsedRule;
      fill_block(d, a,
                 "dbwarden: statement blocked: it could not be parsed, and the policy blocks "
                 "statements it cannot judge (on_unparsed: block)",
                 "", std::nullopt);
      if (why) {
        *why = "the analyser could not parse the statement (" +
               std::string(a.unterminated        ? "text cut short"
                           : a.operation.empty() ? "no statement keyword"
                                                 : "the grammar rejects it") +
               "), and on_unparsed is block: blocked before any rule\n";
      }
      return d;
    }
    if (why) {
      *why =
          "the analyser could not parse the statement; on_unparsed is allow, so the rules "
          "judge what the token classifier made of it\n";
    }
  }
  for (const auto& rule : rules_) {
    if (why) *why += "rule \"" + rule->name + "\" (line " + std::to_string(rule->line) + "): ";
    Check check(*rule, who, a, why);
    if (!check.holds()) {
      if (why) *why += "\n";
      continue;
    }
    if (why) {
      *why += "MATCH: " +
              (check.reasons().empty() ? std::string("no conditions, every statement")
                                       : check.reasons()) +
              "\n";
    }
    d.action = rule->action;
    d.rule = rule->name;
    if (rule->action == Action::kBlock) {
      fill_block(d, a,
                 rule->message.empty()
                     ? "dbwarden: statement blocked by policy rule \"" + rule->name + "\""
                     : rule->message,
                 rule->sqlstate, rule->mysql_errno);
    } else if (rule->action == Action::kRequireApproval) {
      d.approval = &rule->approval;
    }
    return d;
  }
  if (why) *why += "no rule matched: allowed by default\n";
  return d;
}

Decision Policy::decide(const ConnectionInfo& who, const sql::Analysis& analysis,
                        std::string_view text) const {
  return judge(who, analysis, text, nullptr);
}

Decision Policy::explain(const ConnectionInfo& who, const sql::Analysis& analysis,
                         std::string_view text) const {
  Decision d;
  std::string why;
  d = judge(who, analysis, text, &why);
  d.why = std::move(why);
  return d;
}

}  // namespace dbwarden::policy

namespace dbwarden::policy {

bool MaskRule::covers(std::string_view schema, std::string_view table,
                      std::string_view column) const {
  for (const auto& p : columns) {
    if (glob_match(p[0], schema, true) && glob_match(p[1], table, true) &&
        glob_match(p[2], column, true)) {
      return true;
    }
  }
  return false;
}

bool MaskRule::could_cover(std::string_view schema, std::string_view table,
                           std::string_view column) const {
  const auto part = [](const std::string& pattern, std::string_view name) {
    return name.empty() || glob_match(pattern, name, true);
  };
  for (const auto& p : columns) {
    if (part(p[0], schema) && part(p[1], table) && part(p[2], column)) return true;
  }
  return false;
}

void Policy::mask_rules_for(const ConnectionInfo& who, const sql::Analysis& a,
                            std::vector<const MaskRule*>& out) const {
  for (const auto& rule : mask_rules_) {
    if (Check(*rule, who, a, nullptr).holds()) out.push_back(rule->mask.get());
  }
}

const std::string& Policy::mask_rule_name(const MaskRule& m) const {
  static const std::string kNone;
  for (const auto& rule : mask_rules_) {
    if (rule->mask.get() == &m) return rule->name;
  }
  return kNone;
}

std::string Policy::explain_masks(const ConnectionInfo& who, const sql::Analysis& a) const {
  std::string out;
  for (const auto& rule : mask_rules_) {
    std::string why;
    Check check(*rule, who, a, &why);
    out += "mask rule \"" + rule->name + "\" (line " + std::to_string(rule->line) + "): ";
    if (!check.holds()) {
      out += "does not apply, " + why + "\n";
      continue;
    }
    out += "APPLIES: " +
           (check.reasons().empty() ? std::string("no conditions, every statement")
                                    : check.reasons()) +
           "\n";
    const MaskRule& m = *rule->mask;
    out += "  style " + std::string(masking::style_name(m.style));
    if (!m.column_texts.empty()) {
      out += "; columns " + join(m.column_texts) +
             " (on_derived: " + (m.on_derived == MaskRule::OnDerived::kMask ? "mask" : "block") +
             ", predicates: " + (m.predicates == MaskRule::Predicates::kAllow ? "allow" : "block") +
             ")";
    }
    if (!m.detector_names.empty()) {
      out += "; detectors " + join(m.detector_names) + " over every text value";
    }
    out += "\n";
  }
  return out;
}

}  // namespace dbwarden::policy

namespace dbwarden::policy {

void Policy::all_mask_rules(std::vector<const MaskRule*>& out) const {
  for (const auto& r : mask_rules_) out.push_back(r->mask.get());
}

bool Policy::learn_covers(const ConnectionInfo& who, const sql::Analysis& a,
                          std::string* why) const {
  if (!learn_) return false;
  if (!learn_match_ || learn_match_->matches_everything()) {
    if (why) *why += "every identity (no `match`)";
    return true;
  }
  Check check(*learn_match_, who, a, why);
  const bool held = check.holds();
  if (held && why) *why += check.reasons();
  return held;
}

}  // namespace dbwarden::policy
