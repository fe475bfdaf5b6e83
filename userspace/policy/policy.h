// SPDX-License-Identifier: Apache-2.0
//
// Enforcement policy: an ordered list of rules read from YAML, judged per
// statement. The proxy asks decide() for every statement before it reaches the
// server; `dbwarden policy check|explain` load and query the same objects.
//
//   on_unparsed: block            # or allow; default block
//   rules:
//     - name: no-drop-table       # required, unique
//       match:                    # all keys optional and AND-ed; a list is any-of
//         operation: [DROP TABLE, TRUNCATE]
//         user: [app]
//       action: block             # allow | block | log
//       message: "tables are dropped by migrations only"
//       sqlstate: "42501"         # PostgreSQL, and MySQL's SQLSTATE
//       mysql_errno: 1142
//     - name: mask-pii            # action: mask: results, not the statement (below)
//       match: {user: [analyst]}
//       action: mask
//       columns: [crm.customers.email, "*.*.ssn"]
//       detectors: [email, payment_card, employee_id]
//       style: partial            # full | partial | format | hash | null
//       on_derived: mask          # mask | block
//       predicates: block         # allow | block
//     - name: big-deletes         # held until approved (README "Approvals")
//       match: {operation: [DELETE]}
//       action: require_approval
//       approvers: [dba]          # approver group names (required)
//       approvals: 2              # distinct approvers needed, default 1
//       timeout: 10m              # s, m or h; default 5m; then denied
//   approver_groups:              # group -> user names (the approvers' login names)
//     dba: [alice, bob]
//   learn:                        # optional: learn mode (README "Learn mode")
//     mode: protect               # learn | protect
//     match: {user: [etl]}        # identity keys only; omit: every identity
//     duration: 7d                # or until: "2027-01-31T00:00:00Z" (learn -> protect)
//     action: block               # log | block (for a fingerprint never learned)
//   masking:                      # optional: the mask rules' shared settings
//     hash_key_file: /etc/dbwarden/mask.key
//     detectors: [{name: employee_id, regex: 'EMP-[0-9]{6}'}]
//
// The first allow/block/log rule whose match holds decides; no match allows
// (rule ""). Mask rules take no part in that: every mask rule whose match
// holds applies to the statement's results (mask_rules_for()). The
// file format, every match key and its semantics: README "Enforcement ->
// Policy". Loading validates everything and reports each error as
// file:line:column: message (YAML is untrusted input: sizes and nesting are
// bounded, aliases refused).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "masking/masking.h"
#include "protocol/statement.h"
#include "sql/analysis.h"

namespace dbwarden::policy {

enum class Action : uint8_t {
  kAllow,
  kBlock,
  kLog,              // let it through; the audit record names the rule
  kMask,             // a mask rule: never a Decision's action (see MaskRule)
  kRequireApproval,  // hold the statement until approved (approvals/broker.h)
};

// What a require_approval rule asks: approvals from `approvals` distinct members of the
// named approver groups within `timeout_ms`, else the statement is denied.
struct ApprovalRule {
  std::vector<std::string> groups;  // approver group names, as written
  uint32_t approvals = 1;
  uint64_t timeout_ms = 5 * 60 * 1000;
};

// `approver_groups:` of the file: group name -> user names (sorted, unique).
struct ApproverGroup {
  std::string name;
  std::vector<std::string> users;
};

// "allow", "block", "log", "mask", "require_approval".
std::string_view action_name(Action action);

// What to do with a statement the analyser could not parse (see decide()).
enum class OnUnparsed : uint8_t { kBlock, kAllow };

struct Decision {
  Action action = Action::kAllow;
  std::string rule;  // the deciding rule's name; "" = no rule matched (default allow)
  // For kBlock: what the client gets in its error response. sqlstate and
  // mysql_errno are already the ones for the statement's dialect.
  std::string message;
  std::string sqlstate;
  uint16_t mysql_errno = 0;
  // For kRequireApproval: the deciding rule's approval settings (owned by the policy,
  // which outlives the decision while the caller holds its shared_ptr).
  const ApprovalRule* approval = nullptr;
  // Why this decision, rule by rule, for people: filled by explain() only, so
  // that decide() allocates nothing for a statement no rule matches.
  std::string why;
};

// The rule name a Decision carries when on_unparsed blocked the statement.
inline constexpr std::string_view kOnUnparsedRule = "on_unparsed";

struct Rule;  // policy/rule.h

// The rule name a Decision carries when learn mode (protect) met a fingerprint the
// statement's identity never ran while learning.
inline constexpr std::string_view kNovelFingerprintRule = "learn:novel_fingerprint";

// The file's `learn:` section. Learning itself (the store of what each identity ran, and
// the decision) lives in userspace/learn; the policy only says when and for whom.
struct LearnSettings {
  enum class Mode : uint8_t { kLearn, kProtect };
  Mode mode = Mode::kLearn;
  // The learning window's end, Unix seconds; 0: none. `until` is absolute; `duration` counts
  // from the learned set's creation (the store's first start), so a restart does not extend
  // the window.
  int64_t until_s = 0;
  uint64_t duration_s = 0;
  // What a novel fingerprint gets in protect mode: kLog or kBlock (kRequireApproval is the
  // seam for approvals: refused by the loader until they exist).
  Action action = Action::kBlock;
  std::string message;
  std::string sqlstate;
  std::optional<uint16_t> mysql_errno;
  // Bounds on what is kept: past them nothing new is learned (and each refusal is counted).
  uint64_t max_per_identity = 10000;
  uint64_t max_total = 200000;
  int line = 0, column = 0;

  // Learn or protect at `now_s` for a store created at `created_s`: a learn window past its
  // end protects.
  Mode mode_at(int64_t now_s, int64_t created_s) const {
    if (mode == Mode::kProtect) return mode;
    if (until_s != 0 && now_s >= until_s) return Mode::kProtect;
    if (duration_s != 0 && now_s >= created_s + static_cast<int64_t>(duration_s)) {
      return Mode::kProtect;
    }
    return Mode::kLearn;
  }
};

// What a mask rule asks of a statement's results. The proxy's result relays
// trace each result column to `columns` (whole values: Masker::mask_value)
// and run `detectors` over every text value (Masker::mask_content).
struct MaskRule {
  enum class OnDerived : uint8_t { kMask, kBlock };
  enum class Predicates : uint8_t { kAllow, kBlock };
  // `schema.table.column` globs split at '.': always three parts.
  std::vector<std::vector<std::string>> columns;
  std::vector<std::string> column_texts;  // as written
  masking::DetectorSet detectors = 0;
  std::vector<std::string> detector_names;  // as written
  masking::Style style = masking::Style::kFull;
  OnDerived on_derived = OnDerived::kMask;
  Predicates predicates = Predicates::kBlock;

  // Does `schema.table.column` fall under `columns`? Each part by glob,
  // case-insensitively (unquoted SQL names).
  bool covers(std::string_view schema, std::string_view table, std::string_view column) const;
  // As covers(), where an empty part is unknown and could be anything: whether a column
  // the caller cannot name exactly may fall under `columns` (failing closed).
  bool could_cover(std::string_view schema, std::string_view table, std::string_view column) const;
};

// A column of a live database, as `policy check --postgres/--mysql` reads it from the
// server's catalog (agent/catalog_columns.h).
struct DbColumn {
  std::string schema, table, column;
  std::string type;   // as the server names it: "integer", "character varying(40)", "int(11)"
  bool text = false;  // the masker treats its values as text (masking::is_text_type)
  bool not_null = false;
};

// What check_column_types() found, each as "path:line:column: message" at the mask rule.
struct ColumnTypeReport {
  std::vector<std::string> errors;    // a style that cannot apply to a column it names
  std::vector<std::string> warnings;  // a `columns` entry that names no column
  size_t columns_checked = 0;         // columns some entry names
};

class Policy {
 public:
  // Immutable after load; shared as std::shared_ptr<const Policy> (decide()
  // and explain() are const and safe from any number of threads: RE2 matching
  // is thread-safe), so a reload swaps the pointer. Errors name
  // every problem found, one per line, as "path:line:column: message".
  static Result<std::shared_ptr<const Policy>> load_file(const std::string& path);
  static Result<std::shared_ptr<const Policy>> load_string(std::string_view yaml,
                                                           std::string_view name);

  // One statement: `who` is its connection, `analysis` what sql::Analyzer said
  // of its text (the proxy splits multi-statement messages first). `text` is
  // the statement as sent; rules read the analysis (its normalised text). A
  // statement that runs others (EXPLAIN ANALYZE x, MariaDB's ANALYZE x, the
  // INSERT/UPDATE/DELETE parts of a PostgreSQL WITH: policy/inner_statement.h)
  // is blocked when one of them is, else judged itself.
  //
  // An empty statement (no tokens: "", a comment) is allowed without a rule.
  // A statement the analyser could not parse (PostgreSQL text libpg_query
  // rejects, text cut short, or no operation word) is blocked with rule
  // "on_unparsed" under on_unparsed: block; under allow it goes through the
  // rules on what the token classifier made of it.
  Decision decide(const ConnectionInfo& who, const sql::Analysis& analysis,
                  std::string_view text) const;
  // The same decision with `why` filled: each rule up to the deciding one and
  // the first condition that failed, or every condition that held.
  Decision explain(const ConnectionInfo& who, const sql::Analysis& analysis,
                   std::string_view text) const;

  // The mask rules whose `match` holds for this statement, in file order
  // (appended to `out`). Their name is rule_name(*r).
  void mask_rules_for(const ConnectionInfo& who, const sql::Analysis& analysis,
                      std::vector<const MaskRule*>& out) const;
  // Each mask rule, whether it applies to this statement and what it masks,
  // for people (`policy explain`).
  std::string explain_masks(const ConnectionInfo& who, const sql::Analysis& analysis) const;
  const std::string& mask_rule_name(const MaskRule& rule) const;
  // Every mask rule, whatever its match (the audit trail's scrub: agent/content_scrub.h).
  void all_mask_rules(std::vector<const MaskRule*>& out) const;
  // Each mask rule's `columns` against a database's columns (`policy check --postgres`):
  // `partial`, `format` and `hash` on a column that is not text, and `null` on a NOT NULL
  // column, are errors (the column would get its type's fixed substitute, not what the
  // style says); an entry that matches no column is a warning (policy/column_types.cc).
  ColumnTypeReport check_column_types(std::span<const DbColumn> columns) const;
  size_t mask_rule_count() const { return mask_rules_.size(); }
  // The engine the mask rules run on: the file's user-defined detectors and
  // hash key. Null when the file has no mask rule.
  const masking::Masker* masker() const { return masker_.get(); }

  // The `learn:` section, or null.
  const LearnSettings* learn() const { return learn_.get(); }
  // Does the learn section's `match` cover this connection (its identity keys only)?
  // `why` (optional) receives the conditions that held or the one that failed.
  bool learn_covers(const ConnectionInfo& who, const sql::Analysis& analysis,
                    std::string* why = nullptr) const;
  // The user names allowed to approve under `rule` (the union of its groups, sorted).
  std::vector<std::string> approvers_of(const ApprovalRule& rule) const;
  const std::vector<ApproverGroup>& approver_groups() const { return approver_groups_; }

  OnUnparsed on_unparsed() const { return on_unparsed_; }
  // Every rule, mask rules included.
  size_t rule_count() const { return rules_.size() + mask_rules_.size(); }
  const std::string& name() const { return name_; }
  // Things that load but are almost certainly mistakes, as "path:line:column:
  // warning: ..." (a rule no statement can reach).
  const std::vector<std::string>& warnings() const { return warnings_; }

  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;
  ~Policy();

 private:
  Policy();
  friend class Loader;
  Decision judge(const ConnectionInfo& who, const sql::Analysis& analysis, std::string_view text,
                 std::string* why) const;
  Decision judge_one(const ConnectionInfo& who, const sql::Analysis& analysis,
                     std::string* why) const;
  Decision judge_running(const ConnectionInfo& who, const sql::Analysis& analysis,
                         std::span<const std::string_view> inner, std::string_view runs,
                         std::string* why) const;

  std::string name_;
  OnUnparsed on_unparsed_ = OnUnparsed::kBlock;
  std::vector<std::unique_ptr<Rule>> rules_;       // allow, block, log: first match decides
  std::vector<std::unique_ptr<Rule>> mask_rules_;  // mask: each that matches applies
  std::unique_ptr<const masking::Masker> masker_;
  std::unique_ptr<LearnSettings> learn_;
  std::unique_ptr<Rule> learn_match_;  // identity conditions only
  std::vector<std::string> warnings_;
  std::vector<ApproverGroup> approver_groups_;
};

// "90m", "12h", "7d", "2w" or plain seconds -> seconds; false for anything else, zero, or
// more than 10 years. The `learn: duration` key and `policy learned prune --older-than`.
bool parse_duration(std::string_view text, uint64_t& seconds);

// The statement counts as unparsed for on_unparsed (see Policy::decide).
bool is_unparsed(const sql::Analysis& analysis);

}  // namespace dbwarden::policy
