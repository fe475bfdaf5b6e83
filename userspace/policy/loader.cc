// SPDX-License-Identifier: Apache-2.0
//
// Policy file -> Policy: walks the YAML tree (policy/yaml_tree.h) against the
// schema, compiles every condition, and collects every error with its line
// and column instead of stopping at the first.
#include <fcntl.h>
#include <re2/re2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/read_file.h"
#include "policy/approval_keys.h"
#include "policy/glob.h"
#include "policy/policy.h"
#include "policy/rule.h"
#include "policy/yaml_tree.h"

namespace dbwarden::policy {
namespace {

constexpr size_t kMaxErrors = 50;
constexpr size_t kMaxNameBytes = 128;
constexpr size_t kMaxMessageBytes = 1024;
constexpr size_t kMaxRegexBytes = 4096;
constexpr int64_t kMaxRegexMemory = 1 << 20;  // per pattern: bounds RE2's compiled program

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == ':';
}

std::string quoted(std::string_view s) {
  std::string out = "`";
  for (char c : s.substr(0, 80)) out.push_back(static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  if (s.size() > 80) out += "...";
  return out + "`";
}

}  // namespace

bool parse_duration(std::string_view s, uint64_t& out) {
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  const std::string_view unit(end, static_cast<size_t>(s.data() + s.size() - end));
  uint64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1;
  if (unit == "m") scale = 60;
  if (unit == "h") scale = 3600;
  if (unit == "d") scale = 86400;
  if (unit == "w") scale = 7 * 86400;
  if (s.empty() || ec != std::errc() || end == s.data() || scale == 0 || n == 0 ||
      n > (uint64_t{10} * 365 * 86400) / scale) {
    return false;
  }
  out = n * scale;
  return true;
}

class Loader {
 public:
  Loader(std::string_view name, std::string_view text) : name_(name), text_(text) {}

  Result<std::shared_ptr<const Policy>> load() {
    auto tree = parse_yaml(text_);
    if (!tree.ok()) return Status::Error(std::string(name_) + ":" + tree.status().message());
    std::shared_ptr<Policy> policy(new Policy());
    policy->name_ = std::string(name_);
    top_level(*tree, *policy);
    if (!errors_.empty()) {
      std::string all;
      for (size_t i = 0; i < errors_.size() && i < kMaxErrors; ++i) {
        if (i) all += '\n';
        all += errors_[i];
      }
      if (errors_.size() > kMaxErrors) {
        all += "\n" + std::string(name_) + ": " + std::to_string(errors_.size() - kMaxErrors) +
               " more errors";
      }
      return Status::Error(std::move(all));
    }
    return std::shared_ptr<const Policy>(std::move(policy));
  }

 private:
  using Node = YamlNode;
  using Kind = YamlNode::Kind;

  void error(const Node& at, const std::string& message) { error_at(at.line, at.column, message); }
  void error_at(int line, int column, const std::string& message) {
    errors_.push_back(std::string(name_) + ":" + std::to_string(line) + ":" +
                      std::to_string(column) + ": " + message);
  }

  // Calls f(key, value) for each entry of a map, refusing non-scalar and
  // duplicate keys.
  template <typename F>
  void each_entry(const Node& map, std::string_view what, F&& f) {
    std::vector<const Node*> seen;
    for (size_t i = 0; i + 1 < map.items.size(); i += 2) {
      const Node& key = map.items[i];
      if (key.kind != Kind::kScalar) {
        error(key, "a key of " + std::string(what) + " must be a plain word");
        continue;
      }
      bool duplicate = false;
      for (const Node* k : seen) {
        if (k->value == key.value) {
          error(key, "duplicate key " + quoted(key.value) + " in " + std::string(what) +
                         " (first at line " + std::to_string(k->line) + ")");
          duplicate = true;
          break;
        }
      }
      if (duplicate) continue;
      seen.push_back(&key);
      f(key, map.items[i + 1]);
    }
  }

  static std::string_view kind_name(const Node& n) {
    switch (n.kind) {
      case Kind::kNull:
        return "nothing";
      case Kind::kScalar:
        return "a scalar";
      case Kind::kSequence:
        return "a list";
      case Kind::kMap:
        return "a mapping";
    }
    return "?";
  }

  void top_level(const Node& root, Policy& policy) {
    if (root.kind != Kind::kMap) {
      error(root,
            "a policy is a mapping with a `rules:` list, not " + std::string(kind_name(root)));
      return;
    }
    const Node* rules = nullptr;
    const Node* masking = nullptr;
    const Node* learn = nullptr;
    const Node* groups = nullptr;
    bool on_unparsed_given = false;
    each_entry(root, "the policy", [&](const Node& key, const Node& value) {
      if (key.value == "rules") {
        rules = &value;
      } else if (key.value == "masking") {
        masking = &value;
      } else if (key.value == "learn") {
        learn = &value;
      } else if (key.value == "approver_groups") {
        groups = &value;
      } else if (key.value == "on_unparsed") {
        on_unparsed_given = true;
        if (value.kind == Kind::kScalar && value.value == "block") {
          policy.on_unparsed_ = OnUnparsed::kBlock;
        } else if (value.kind == Kind::kScalar && value.value == "allow") {
          policy.on_unparsed_ = OnUnparsed::kAllow;
        } else {
          error(value, "on_unparsed must be `block` or `allow`");
        }
      } else {
        error(key, "unknown key " + quoted(key.value) +
                       " at the top level (expected `rules`, `on_unparsed`, `masking`, `learn` or "
                       "`approver_groups`)");
      }
    });
    if (learn != nullptr) read_learn(*learn, policy);
    // Before the rules: they name its detectors.
    if (masking != nullptr) read_masking(*masking);
    const YamlError approval_error = [this](const Node& at, const std::string& m) { error(at, m); };
    if (groups != nullptr) read_approver_groups(*groups, policy.approver_groups_, approval_error);
    approval_groups_ = &policy.approver_groups_;
    if (rules == nullptr) {
      error(root, "missing `rules:` (a list of rules; `rules: []` allows everything)");
      return;
    }
    if (rules->kind != Kind::kSequence) {
      error(*rules, "`rules` must be a list of rules, not " + std::string(kind_name(*rules)));
      return;
    }
    std::vector<const Rule*> names;
    for (const Node& r : rules->items) {
      auto rule = read_rule(r);
      if (!rule) continue;
      for (const Rule* other : names) {
        if (other->name == rule->name) {
          error(*name_node_, "duplicate rule name " + quoted(rule->name) + " (first at line " +
                                 std::to_string(other->line) + ")");
          break;
        }
      }
      names.push_back(rule.get());
      (rule->mask ? policy.mask_rules_ : policy.rules_).push_back(std::move(rule));
    }
    if (!policy.mask_rules_.empty() && errors_.empty()) {
      masking::MaskerOptions options;
      options.custom = custom_;
      options.hash_key = hash_key_;
      auto masker = masking::Masker::create(std::move(options));
      if (masker.ok()) {
        policy.masker_ = std::move(masker.value());
      } else {
        error(masking != nullptr ? *masking : root, masker.status().message());
      }
    }
    // First match wins: nothing after a rule without conditions is ever tried.
    for (size_t i = 0; i + 1 < policy.rules_.size(); ++i) {
      const Rule& all = *policy.rules_[i];
      if (!all.matches_everything()) continue;
      for (size_t k = i + 1; k < policy.rules_.size(); ++k) {
        const Rule& r = *policy.rules_[k];
        policy.warnings_.push_back(std::string(name_) + ":" + std::to_string(r.line) + ":" +
                                   std::to_string(r.column) + ": warning: rule " + quoted(r.name) +
                                   " is never reached: rule " + quoted(all.name) + " (line " +
                                   std::to_string(all.line) +
                                   ") has no conditions and decides every statement first");
      }
      break;
    }
    // `rules: []` allows everything (the contract), statements the analyser cannot
    // parse included: on_unparsed defaults to block because rules cannot judge what they
    // cannot read, and with no rules there is nothing to judge. Given explicitly, it holds.
    if (!on_unparsed_given && rules->items.empty()) {
      policy.on_unparsed_ = OnUnparsed::kAllow;
    }
  }

  std::unique_ptr<Rule> read_rule(const Node& n) {
    if (n.kind != Kind::kMap) {
      error(n, "a rule is a mapping with `name`, `match` and `action`, not " +
                   std::string(kind_name(n)));
      return nullptr;
    }
    auto rule = std::make_unique<Rule>();
    rule->line = n.line;
    rule->column = n.column;
    name_node_ = nullptr;
    const Node* action = nullptr;
    const Node* message = nullptr;
    const Node* sqlstate = nullptr;
    const Node* errno_node = nullptr;
    std::vector<std::pair<const Node*, const Node*>> mask_keys;  // key, value
    std::vector<std::pair<const Node*, const Node*>> approval_keys;
    const size_t errors_before = errors_.size();
    each_entry(n, "a rule", [&](const Node& key, const Node& value) {
      const std::string& k = key.value;
      if (k == "name") {
        name_node_ = &value;
        read_name(value, rule->name);
      } else if (k == "match") {
        read_match(value, *rule);
      } else if (k == "action") {
        action = &value;
      } else if (k == "message") {
        message = &value;
      } else if (k == "sqlstate") {
        sqlstate = &value;
      } else if (k == "mysql_errno") {
        errno_node = &value;
      } else if (k == "columns" || k == "detectors" || k == "style" || k == "on_derived" ||
                 k == "predicates") {
        mask_keys.emplace_back(&key, &value);
      } else if (is_approval_key(k)) {
        approval_keys.emplace_back(&key, &value);
      } else {
        error(key, "unknown key " + quoted(k) +
                       " in a rule (expected name, match, action, message, sqlstate, "
                       "mysql_errno; for action: mask columns, detectors, style, on_derived, "
                       "predicates; for action: require_approval approvers, approvals, timeout)");
      }
    });
    if (name_node_ == nullptr) error(n, "a rule needs a `name`");
    if (action == nullptr) {
      error(n, "a rule needs an `action` (allow, block, log, mask or require_approval)");
    } else {
      read_action(*action, rule->action);
    }
    if (rule->action == Action::kMask && action != nullptr) {
      rule->mask = read_mask(n, mask_keys);
    } else if (action != nullptr && errors_before == errors_.size()) {
      for (const auto& [key, value] : mask_keys) {
        error(*key, "`" + key->value + "` only applies to `action: mask`");
      }
    }
    if (rule->action == Action::kRequireApproval && action != nullptr) {
      const YamlError e = [this](const Node& at, const std::string& m) { error(at, m); };
      const Node* approvers = &n;
      for (const auto& [key, value] : approval_keys) {
        read_approval_key(*key, *value, rule->approval, e);
        if (key->value == "approvers") approvers = value;
      }
      if (errors_before == errors_.size()) {
        check_approval_rule(*approvers, rule->approval, *approval_groups_, e);
      }
    } else if (action != nullptr && errors_before == errors_.size()) {
      for (const auto& [key, value] : approval_keys) {
        error(*key, "`" + key->value + "` only applies to `action: require_approval`");
      }
    }
    const bool block = rule->action == Action::kBlock && action != nullptr;
    for (const Node* extra : {message, sqlstate, errno_node}) {
      if (extra != nullptr && !block && action != nullptr && errors_before == errors_.size()) {
        error(*extra, "`message`, `sqlstate` and `mysql_errno` only apply to `action: block`");
      }
    }
    if (message != nullptr) read_message(*message, rule->message);
    if (sqlstate != nullptr) read_sqlstate(*sqlstate, rule->sqlstate);
    if (errno_node != nullptr) read_errno(*errno_node, rule->mysql_errno);
    if (name_node_ == nullptr || errors_.size() != errors_before) return nullptr;
    return rule;
  }

  // `learn:` at the top level: learn mode's settings (policy.h, LearnSettings).
  void read_learn(const Node& n, Policy& policy) {
    if (n.kind != Kind::kMap) {
      error(n, "`learn` must be a mapping (mode, match, until or duration, action, ...), not " +
                   std::string(kind_name(n)));
      return;
    }
    auto l = std::make_unique<LearnSettings>();
    l->line = n.line;
    l->column = n.column;
    auto match = std::make_unique<Rule>();
    const Node* mode = nullptr;
    const Node* until = nullptr;
    const Node* duration = nullptr;
    const Node* action = nullptr;
    const Node* block_keys[3] = {nullptr, nullptr, nullptr};  // message, sqlstate, mysql_errno
    const size_t errors_before = errors_.size();
    each_entry(n, "`learn`", [&](const Node& key, const Node& v) {
      const std::string& k = key.value;
      if (k == "mode") {
        mode = &v;
      } else if (k == "match") {
        read_match(v, *match);
        learn_identity_only(v);
      } else if (k == "until") {
        until = &v;
      } else if (k == "duration") {
        duration = &v;
      } else if (k == "action") {
        action = &v;
      } else if (k == "message") {
        block_keys[0] = &v;
        read_message(v, l->message);
      } else if (k == "sqlstate") {
        block_keys[1] = &v;
        read_sqlstate(v, l->sqlstate);
      } else if (k == "mysql_errno") {
        block_keys[2] = &v;
        read_errno(v, l->mysql_errno);
      } else if (k == "max_fingerprints_per_identity" || k == "max_fingerprints") {
        if (auto m = read_uint(v, k)) {
          if (*m < 1 || *m > 10'000'000) {
            error(v, "`" + k + "` must be 1-10000000");
          } else {
            (k == "max_fingerprints" ? l->max_total : l->max_per_identity) = *m;
          }
        }
      } else {
        error(key, "unknown key " + quoted(k) +
                       " in `learn` (expected mode, match, until, duration, action, message, "
                       "sqlstate, mysql_errno, max_fingerprints_per_identity, max_fingerprints)");
      }
    });
    if (mode == nullptr) {
      error(n, "`learn` needs a `mode` (learn or protect)");
    } else if (mode->kind == Kind::kScalar && mode->value == "learn") {
      l->mode = LearnSettings::Mode::kLearn;
    } else if (mode->kind == Kind::kScalar && mode->value == "protect") {
      l->mode = LearnSettings::Mode::kProtect;
    } else {
      error(*mode, "`mode` must be learn or protect");
    }
    if (until != nullptr && duration != nullptr) {
      error(*duration, "give `until` or `duration`, not both");
    } else if (until != nullptr) {
      read_until(*until, l->until_s);
    } else if (duration != nullptr) {
      read_duration(*duration, l->duration_s);
    }
    if (action != nullptr) {
      if (action->kind == Kind::kScalar && action->value == "block") {
        l->action = Action::kBlock;
      } else if (action->kind == Kind::kScalar && action->value == "log") {
        l->action = Action::kLog;
      } else if (action->kind == Kind::kScalar && action->value == "require_approval") {
        error(*action,
              "learn action `require_approval` is not supported yet (reserved for approvals); "
              "use log or block");
      } else {
        error(*action, "learn `action` must be log or block");
      }
    }
    for (const Node* b : block_keys) {
      if (b != nullptr && l->action != Action::kBlock && errors_.size() == errors_before) {
        error(*b, "`message`, `sqlstate` and `mysql_errno` only apply to `action: block`");
      }
    }
    if (errors_.size() != errors_before) return;
    policy.learn_ = std::move(l);
    policy.learn_match_ = std::move(match);
  }

  // The learn section picks identities, not statements: statement keys there would make
  // "what this identity runs" depend on what it runs.
  void learn_identity_only(const Node& m) {
    if (m.kind != Kind::kMap) return;  // read_match said so
    static constexpr std::string_view kStatementKeys[] = {
        "operation",       "collections",  "has_where",   "alter_table_drop",
        "grant_to_public", "copy_program", "fingerprint", "regex"};
    for (size_t i = 0; i + 1 < m.items.size(); i += 2) {
      const Node& key = m.items[i];
      for (std::string_view s : kStatementKeys) {
        if (key.value == s) {
          error(key, "`" + key.value +
                         "` is a statement condition: learn `match` takes identity keys only "
                         "(user, database, application_name, client_cidr, uid, login_uid, "
                         "executable, unit, container, dialect)");
        }
      }
    }
  }

  // "2027-01-31T00:00:00Z": UTC only, so that the file means the same on every host.
  void read_until(const Node& v, int64_t& out) {
    const std::string& s = v.value;
    tm t{};
    const char* end =
        v.kind == Kind::kScalar ? strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &t) : nullptr;
    if (end == nullptr || *end != '\0') {
      error(v, "`until` must be a UTC time as YYYY-MM-DDTHH:MM:SSZ, e.g. \"2027-01-31T00:00:00Z\"");
      return;
    }
    out = static_cast<int64_t>(timegm(&t));
  }

  void read_duration(const Node& v, uint64_t& out) {
    if (v.kind != Kind::kScalar || !parse_duration(v.value, out)) {
      error(v,
            "`duration` must be a positive number with s, m, h, d or w (e.g. 7d), at most "
            "10 years");
    }
  }

  // `masking:` at the top level: the hash key file and user-defined detectors.
  void read_masking(const Node& m) {
    if (m.kind != Kind::kMap) {
      error(m, "`masking` must be a mapping (hash_key_file, detectors), not " +
                   std::string(kind_name(m)));
      return;
    }
    each_entry(m, "`masking`", [&](const Node& key, const Node& v) {
      if (key.value == "hash_key_file") {
        hash_key_node_ = &v;
        if (v.kind != Kind::kScalar || v.value.empty() || v.value[0] != '/') {
          error(v, "`hash_key_file` must be an absolute path");
          return;
        }
        auto k = masking::load_hash_key(v.value);
        if (k.ok()) {
          hash_key_ = std::move(k.value());
        } else {
          error(v, k.status().message());
        }
      } else if (key.value == "detectors") {
        read_custom_detectors(v);
      } else {
        error(key, "unknown key " + quoted(key.value) +
                       " in `masking` (expected hash_key_file, detectors)");
      }
    });
  }

  void read_custom_detectors(const Node& list) {
    if (list.kind != Kind::kSequence) {
      error(list,
            "`detectors` must be a list of {name, regex}, not " + std::string(kind_name(list)));
      return;
    }
    for (const Node& d : list.items) {
      if (d.kind != Kind::kMap) {
        error(d,
              "a detector is a mapping with `name` and `regex`, not " + std::string(kind_name(d)));
        continue;
      }
      const Node* name = nullptr;
      const Node* regex = nullptr;
      each_entry(d, "a detector", [&](const Node& key, const Node& v) {
        if (key.value == "name") {
          name = &v;
        } else if (key.value == "regex") {
          regex = &v;
        } else {
          error(key, "unknown key " + quoted(key.value) + " in a detector (expected name, regex)");
        }
      });
      if (name == nullptr || regex == nullptr) {
        error(d, "a detector needs a `name` and a `regex`");
        continue;
      }
      std::string n;
      const size_t before = errors_.size();
      read_name(*name, n);
      if (errors_.size() != before) continue;
      if (masking::builtin_detector_id(n) >= 0) {
        error(*name, "detector name " + quoted(n) + " is a built-in detector's");
        continue;
      }
      bool dup = false;
      for (const auto& c : custom_) dup = dup || c.name == n;
      if (dup) {
        error(*name, "duplicate detector name " + quoted(n));
        continue;
      }
      std::vector<std::unique_ptr<re2::RE2>> compiled;
      read_regex(*regex, compiled);
      if (compiled.empty()) continue;
      if (re2::RE2::PartialMatch("", *compiled[0])) {
        error(*regex, "detector " + quoted(n) +
                          ": the regex matches the empty string (it would match everywhere)");
        continue;
      }
      if (custom_.size() >= masking::kMaxCustomDetectors) {
        error(d, "at most " + std::to_string(masking::kMaxCustomDetectors) +
                     " user-defined detectors");
        return;
      }
      custom_.push_back({n, regex->value});
    }
  }

  // The mask keys of a rule with action: mask.
  std::unique_ptr<MaskRule> read_mask(
      const Node& rule, const std::vector<std::pair<const Node*, const Node*>>& keys) {
    auto m = std::make_unique<MaskRule>();
    const Node* columns = nullptr;
    const Node* detectors = nullptr;
    const Node* style = nullptr;
    const Node* derived = nullptr;
    const Node* predicates = nullptr;
    Node null_at;  // `style`, placed at its word
    for (const auto& [key, v] : keys) {
      const std::string& k = key->value;
      if (k == "columns") {
        columns = v;
        for (const Node* s : scalars(*v, k)) read_column(*s, *m);
      } else if (k == "detectors") {
        detectors = v;
        for (const Node* s : scalars(*v, k)) read_detector(*s, *m);
      } else if (k == "style") {
        style = v;
        // YAML reads a plain `null` as no value (the tree points just after
        // the key): take the word as the style it names, unlike an empty value.
        bool null_word = false;
        null_at = *v;
        style = &null_at;
        if (v->kind == Kind::kNull && v->offset < text_.size()) {
          const size_t at = text_.find_first_not_of(' ', v->offset);
          null_word = at != std::string_view::npos && text_.substr(at, 4) == "null";
          // Errors about it point at the word.
          if (null_word) null_at.column += static_cast<int>(at - v->offset);
        }
        if (null_word) {
          m->style = masking::Style::kNull;
        } else if (v->kind != Kind::kScalar || !masking::parse_style(v->value, m->style)) {
          error(*v, "`style` must be full, partial, format, hash or null");
        }
      } else if (k == "on_derived") {
        derived = v;
        if (v->kind == Kind::kScalar && v->value == "mask") {
          m->on_derived = MaskRule::OnDerived::kMask;
        } else if (v->kind == Kind::kScalar && v->value == "block") {
          m->on_derived = MaskRule::OnDerived::kBlock;
        } else {
          error(*v, "`on_derived` must be mask or block");
        }
      } else {
        predicates = v;
        if (v->kind == Kind::kScalar && v->value == "allow") {
          m->predicates = MaskRule::Predicates::kAllow;
        } else if (v->kind == Kind::kScalar && v->value == "block") {
          m->predicates = MaskRule::Predicates::kBlock;
        } else {
          error(*v, "`predicates` must be allow or block");
        }
      }
    }
    if (columns == nullptr && detectors == nullptr) {
      error(rule, "a mask rule needs `columns` (schema.table.column globs), `detectors`, or both");
      return m;
    }
    // Styles that cannot apply to what the rule names.
    if (style != nullptr && m->style == masking::Style::kNull && detectors != nullptr) {
      error(*style,
            "`style: null` replaces whole values, but `detectors` mask items inside a text "
            "value: use full, partial, format or hash (or a separate rule for the columns)");
    }
    if (style != nullptr && m->style == masking::Style::kHash && hash_key_node_ == nullptr) {
      error(*style,
            "`style: hash` needs `masking: {hash_key_file: ...}`: without a fixed key the "
            "hashes would change at every restart and joins on them would break");
    }
    if (columns == nullptr) {
      for (const Node* only : {derived, predicates}) {
        if (only != nullptr) {
          error(*only,
                "`on_derived` and `predicates` apply to `columns`; this rule has only "
                "`detectors`");
        }
      }
    }
    return m;
  }

  void read_column(const Node& s, MaskRule& m) {
    std::vector<std::string> parts(1);
    for (char c : s.value) {
      if (c == '.') {
        parts.emplace_back();
      } else {
        parts.back().push_back(c);
      }
    }
    bool ok = parts.size() == 3;
    for (const std::string& p : parts) ok = ok && !p.empty();
    if (!ok) {
      error(s, "`columns` entry " + quoted(s.value) +
                   " must be schema.table.column (each part a glob, e.g. `*.users.email`)");
      return;
    }
    for (const std::string& p : parts) {
      if (std::string why = glob_error(p); !why.empty()) {
        error(s, "`columns` entry " + quoted(s.value) + ": " + quoted(p) + " " + why);
        return;
      }
    }
    m.columns.push_back(std::move(parts));
    m.column_texts.push_back(s.value);
  }

  void read_detector(const Node& s, MaskRule& m) {
    int id = masking::builtin_detector_id(s.value);
    for (size_t i = 0; id < 0 && i < custom_.size(); ++i) {
      if (custom_[i].name == s.value) id = static_cast<int>(masking::kFirstCustom + i);
    }
    if (id < 0) {
      std::string known = "email, payment_card, iban, phone, us_ssn, token";
      for (const auto& c : custom_) known += ", " + c.name;
      error(s, "unknown detector " + quoted(s.value) + " (known: " + known +
                   "; declare your own under `masking: detectors:`)");
      return;
    }
    m.detectors |= masking::DetectorSet{1} << id;
    m.detector_names.push_back(s.value);
  }

  void read_name(const Node& v, std::string& out) {
    if (v.kind != Kind::kScalar || v.value.empty()) {
      error(v, "`name` must be a non-empty string");
      return;
    }
    if (v.value.size() > kMaxNameBytes) {
      error(v, "`name` is longer than " + std::to_string(kMaxNameBytes) + " bytes");
      return;
    }
    for (char c : v.value) {
      if (!name_char(c)) {
        error(v, "`name` " + quoted(v.value) +
                     " may hold only letters, digits and - _ . : (it becomes a metrics label)");
        return;
      }
    }
    if (v.value == kOnUnparsedRule) {
      error(v, "`name: on_unparsed` is reserved for the on_unparsed decision");
      return;
    }
    if (v.value.starts_with("learn:")) {
      error(v, "rule names starting with `learn:` are reserved for learn mode's decisions");
      return;
    }
    out = v.value;
  }

  void read_action(const Node& v, Action& out) {
    if (v.kind == Kind::kScalar) {
      if (v.value == "allow") {
        out = Action::kAllow;
        return;
      }
      if (v.value == "block") {
        out = Action::kBlock;
        return;
      }
      if (v.value == "log") {
        out = Action::kLog;
        return;
      }
      if (v.value == "mask") {
        out = Action::kMask;
        return;
      }
      if (v.value == "require_approval") {
        out = Action::kRequireApproval;
        return;
      }
    }
    error(v, "`action` must be allow, block, log, mask or require_approval");
  }

  void read_message(const Node& v, std::string& out) {
    if (v.kind != Kind::kScalar || v.value.empty()) {
      error(v, "`message` must be a non-empty string");
      return;
    }
    if (v.value.size() > kMaxMessageBytes) {
      error(v, "`message` is longer than " + std::to_string(kMaxMessageBytes) + " bytes");
      return;
    }
    for (char c : v.value) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        error(v, "`message` must be one line of text without control characters");
        return;
      }
    }
    out = v.value;
  }

  void read_sqlstate(const Node& v, std::string& out) {
    const std::string& s = v.value;
    bool ok = v.kind == Kind::kScalar && s.size() == 5;
    for (size_t i = 0; ok && i < s.size(); ++i) {
      ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z');
    }
    if (!ok) {
      error(v, "`sqlstate` must be 5 characters 0-9 A-Z (e.g. \"42501\"), got " +
                   (v.kind == Kind::kScalar ? quoted(s) : std::string(kind_name(v))));
      return;
    }
    const std::string_view cls = std::string_view(s).substr(0, 2);
    if (cls == "00" || cls == "01" || cls == "02") {
      error(v, "`sqlstate` " + quoted(s) + " is in class " + std::string(cls) +
                   " (success, warning or no data): a block needs an error class such as 42");
      return;
    }
    out = s;
  }

  void read_errno(const Node& v, std::optional<uint16_t>& out) {
    auto n = read_uint(v, "mysql_errno");
    if (!n) return;
    if (*n < 1 || *n > 65535) {
      error(v, "`mysql_errno` must be 1-65535 (MySQL's error codes are 16-bit)");
      return;
    }
    out = static_cast<uint16_t>(*n);
  }

  std::optional<uint64_t> read_uint(const Node& v, std::string_view key) {
    uint64_t n = 0;
    const std::string& s = v.value;
    if (v.kind == Kind::kScalar && v.plain && !s.empty()) {
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec == std::errc() && end == s.data() + s.size()) return n;
    }
    error(v, "`" + std::string(key) + "` must be a whole number, got " +
                 (v.kind == Kind::kScalar ? quoted(s) : std::string(kind_name(v))));
    return std::nullopt;
  }

  std::optional<bool> read_bool(const Node& v, std::string_view key) {
    if (v.kind == Kind::kScalar && v.plain) {
      if (v.value == "true" || v.value == "True" || v.value == "TRUE") return true;
      if (v.value == "false" || v.value == "False" || v.value == "FALSE") return false;
    }
    error(v, "`" + std::string(key) + "` must be true or false");
    return std::nullopt;
  }

  // A scalar or a non-empty list of scalars (any-of).
  std::vector<const Node*> scalars(const Node& v, std::string_view key) {
    std::vector<const Node*> out;
    if (v.kind == Kind::kScalar) {
      out.push_back(&v);
    } else if (v.kind == Kind::kSequence) {
      if (v.items.empty()) {
        error(v, "`" + std::string(key) +
                     ": []` never matches anything; remove the key to match any value");
      }
      for (const Node& item : v.items) {
        if (item.kind == Kind::kScalar) {
          out.push_back(&item);
        } else {
          error(item, "an element of `" + std::string(key) + "` must be a single value, not " +
                          std::string(kind_name(item)));
        }
      }
    } else {
      error(v, "`" + std::string(key) + "` needs a value or a list of values, not " +
                   std::string(kind_name(v)));
    }
    return out;
  }

  void strings(const Node& v, std::string_view key, std::vector<std::string>& out) {
    for (const Node* s : scalars(v, key)) {
      if (s->value.empty()) {
        error(*s, "an empty `" + std::string(key) + "` never matches");
        continue;
      }
      out.push_back(s->value);
    }
  }

  void globs(const Node& v, std::string_view key, std::vector<std::string>& out) {
    for (const Node* s : scalars(v, key)) {
      if (s->value.empty()) {
        error(*s, "an empty `" + std::string(key) + "` never matches");
      } else if (std::string why = glob_error(s->value); !why.empty()) {
        error(*s, "`" + std::string(key) + "` pattern " + quoted(s->value) + " " + why);
      } else {
        out.push_back(s->value);
      }
    }
  }

  void read_match(const Node& m, Rule& rule) {
    if (m.kind == Kind::kNull) return;  // `match:` with nothing: every statement
    if (m.kind != Kind::kMap) {
      error(m, "`match` must be a mapping of conditions, not " + std::string(kind_name(m)));
      return;
    }
    each_entry(m, "`match`", [&](const Node& key, const Node& v) {
      const std::string& k = key.value;
      if (k == "user") {
        strings(v, k, rule.users);
      } else if (k == "database") {
        strings(v, k, rule.databases);
      } else if (k == "application_name") {
        strings(v, k, rule.application_names);
      } else if (k == "client_cidr") {
        for (const Node* s : scalars(v, k)) {
          std::string why;
          if (auto c = parse_cidr(s->value, &why)) {
            rule.client_cidrs.push_back(std::move(*c));
          } else {
            error(*s, why);
          }
        }
      } else if (k == "uid" || k == "login_uid") {
        for (const Node* s : scalars(v, k)) {
          if (auto n = read_uint(*s, k)) {
            if (*n >= 4294967295u) {
              error(*s, "`" + k + "` must be below 4294967295 (that value means unset)");
              continue;
            }
            (k == "uid" ? rule.uids : rule.login_uids).push_back(static_cast<uint32_t>(*n));
          }
        }
      } else if (k == "executable") {
        globs(v, k, rule.executables);
      } else if (k == "unit") {
        globs(v, k, rule.units);
      } else if (k == "container") {
        globs(v, k, rule.containers);
      } else if (k == "dialect") {
        for (const Node* s : scalars(v, k)) {
          if (s->value == "postgresql") {
            rule.dialects.push_back(sql::Dialect::kPostgresql);
          } else if (s->value == "mysql" || s->value == "mariadb") {
            rule.dialects.push_back(sql::Dialect::kMysql);
          } else {
            error(*s, "`dialect` must be postgresql or mysql, got " + quoted(s->value));
          }
        }
      } else if (k == "operation") {
        for (const Node* s : scalars(v, k)) read_operation(*s, rule.operations);
      } else if (k == "collections") {
        globs(v, k, rule.collection_texts);
        for (const std::string& text : rule.collection_texts) {
          std::vector<std::string> parts(1);
          for (char c : text) {
            if (c == '.') {
              parts.emplace_back();
            } else {
              parts.back().push_back(c);
            }
          }
          rule.collections.push_back(std::move(parts));
        }
      } else if (k == "has_where") {
        rule.has_where = read_bool(v, k);
      } else if (k == "alter_table_drop") {
        rule.alter_table_drop = read_bool(v, k);
      } else if (k == "grant_to_public") {
        rule.grant_to_public = read_bool(v, k);
      } else if (k == "copy_program") {
        rule.copy_program = read_bool(v, k);
      } else if (k == "fingerprint") {
        for (const Node* s : scalars(v, k)) read_fingerprint(*s, rule);
      } else if (k == "regex") {
        for (const Node* s : scalars(v, k)) read_regex(*s, rule.regexes);
      } else {
        error(key, "unknown match key " + quoted(k) +
                       " (identity: user, database, application_name, client_cidr, uid, "
                       "login_uid, executable, unit, container; statement: operation, "
                       "collections, has_where, alter_table_drop, grant_to_public, "
                       "copy_program, fingerprint, regex, dialect)");
      }
    });
  }

  void read_operation(const Node& s, std::vector<OperationPattern>& out) {
    OperationPattern p;
    std::vector<std::string> words;
    std::string word;
    bool ok = true;
    for (size_t i = 0; i <= s.value.size(); ++i) {
      const char c = i < s.value.size() ? s.value[i] : ' ';
      if (c == ' ' || c == '\t') {
        if (!word.empty()) words.push_back(std::move(word));
        word.clear();
      } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
        word.push_back(static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c));
      } else {
        ok = false;
      }
    }
    if (!ok || words.empty() || words.size() > 4) {
      error(s, "`operation` " + quoted(s.value) +
                   " must be a statement keyword, optionally with its object type: DELETE, "
                   "DROP TABLE, CREATE ROLE");
      return;
    }
    p.verb = words[0];
    for (size_t i = 1; i < words.size(); ++i) {
      if (i > 1) p.object += ' ';
      p.object += words[i];
    }
    p.text = p.object.empty() ? p.verb : p.verb + " " + p.object;
    out.push_back(std::move(p));
  }

  void read_fingerprint(const Node& s, Rule& rule) {
    uint64_t v = 0;
    const std::string& t = s.value;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v, 16);
    if (t.size() != 16 || ec != std::errc() || end != t.data() + t.size()) {
      error(s,
            "`fingerprint` must be 16 hex digits as in the audit record's "
            "dbwarden.fingerprint, got " +
                quoted(t));
      return;
    }
    rule.fingerprints.push_back(v);
    std::string lower;
    for (char c : t) lower.push_back(static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c));
    rule.fingerprint_texts.push_back(std::move(lower));
  }

  void read_regex(const Node& s, std::vector<std::unique_ptr<re2::RE2>>& out) {
    if (s.value.empty() || s.value.size() > kMaxRegexBytes) {
      error(s, "`regex` must be 1-" + std::to_string(kMaxRegexBytes) + " bytes");
      return;
    }
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(kMaxRegexMemory);
    auto re = std::make_unique<re2::RE2>(s.value, options);
    if (re->ok()) {
      out.push_back(std::move(re));
      return;
    }
    // Point at the offending part when it can be found in the pattern and,
    // unescaped, in the file (a plain or quoted scalar on one line).
    int line = s.line, column = s.column;
    const std::string& arg = re->error_arg();
    std::string where;
    if (const size_t off = arg.empty() ? std::string::npos : s.value.find(arg);
        off != std::string::npos) {
      where = " at offset " + std::to_string(off) + " of the pattern";
      const size_t lead = s.plain ? 0 : 1;
      const std::string_view before = std::string_view(s.value).substr(0, off);
      if (before.find('\n') == std::string_view::npos &&
          text_.substr(std::min(text_.size(), s.offset + lead), off) == before) {
        column += static_cast<int>(lead + off);
      }
    }
    error_at(line, column, "invalid regex " + quoted(s.value) + where + ": " + re->error());
  }

  std::string_view name_;
  std::string_view text_;
  std::vector<std::string> errors_;
  const Node* name_node_ = nullptr;
  const std::vector<ApproverGroup>* approval_groups_ = nullptr;
  // From `masking:`.
  std::vector<masking::CustomDetector> custom_;
  std::string hash_key_;
  const Node* hash_key_node_ = nullptr;
};

Policy::Policy() = default;
Policy::~Policy() = default;

std::vector<std::string> Policy::approvers_of(const ApprovalRule& rule) const {
  std::vector<std::string> users;
  for (const ApproverGroup& g : approver_groups_) {
    if (std::find(rule.groups.begin(), rule.groups.end(), g.name) == rule.groups.end()) continue;
    users.insert(users.end(), g.users.begin(), g.users.end());
  }
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  return users;
}

Result<std::shared_ptr<const Policy>> Policy::load_string(std::string_view yaml,
                                                          std::string_view name) {
  return Loader(name, yaml).load();
}

Result<std::shared_ptr<const Policy>> Policy::load_file(const std::string& path) {
  // read_whole_file says nothing of why a read failed; a user needs to know.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  ::close(fd);
  if (!regular) return Status::Error(path + ": not a regular file");
  const size_t limit = YamlLimits{}.max_bytes;
  const std::string text = read_whole_file(path, limit + 1);
  if (text.size() != static_cast<size_t>(st.st_size) && text.size() <= limit) {
    return Status::Error(path + ": could not read the whole file");
  }
  return load_string(text, path);
}

}  // namespace dbwarden::policy
