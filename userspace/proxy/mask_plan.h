// SPDX-License-Identifier: Apache-2.0
//
// What one statement's results must look like under the policy's mask rules, in a form
// both relays (pg_relay.h, mysql_relay.h) fill from their own result metadata and apply
// value by value: which result columns are masked whole (Masker::mask_value, by a rule's
// style), which content detectors run over every other text value (Masker::mask_content),
// and whether the statement is blocked instead (a rule's on_derived: block, or
// predicates: block). Protocol-neutral: the relay says where each result column comes
// from (ColumnOrigin), the plan says what to do with its values.
//
// Failing closed: a column whose origin is unknown, in a statement that may read a masked
// column (StatementOrigins::may_read), is treated as derived from it: the rule's on_derived
// applies (mask: the whole value by the rule's style; block: the statement is refused).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "masking/masking.h"
#include "policy/policy.h"
#include "protocol/statement.h"

namespace dbwarden::proxy {

// A base-table column as the catalog names it; an empty part is unknown (any).
struct SourceRef {
  std::string schema, table, column;
};

// Where one result column's values come from.
struct ColumnOrigin {
  enum class Kind : uint8_t {
    kUnknown,  // not traced: fail closed
    kCopy,     // the value is a source's value (column, alias, cast, pass-through)
    kDerived,  // computed from `sources` (function, operator, aggregate, whole-row)
  };
  Kind kind = Kind::kUnknown;
  std::vector<SourceRef> sources;  // empty with kCopy/kDerived: a constant
};

struct StatementOrigins {
  std::vector<ColumnOrigin> columns;  // one per result column, in order (may be short: unknown)
  // Columns read in WHERE, JOIN, ORDER BY, GROUP BY, ... (for `predicates: block`).
  std::vector<SourceRef> predicate_columns;
  // Everything the statement may read (tables with an empty column, or columns): decides
  // whether an unknown column may carry a masked value. Empty with `reads_unknown`: it may
  // read anything.
  std::vector<SourceRef> may_read;
  bool reads_unknown = false;
};

// Values masked per statement, by result column, rule and detector: the record's
// dbwarden.masked_columns / dbwarden.masked_values and the metrics' breakdown.
class MaskTally {
 public:
  void count(size_t column, std::string_view rule, std::string_view detector, uint32_t values);
  // Adds this tally's figures into a statement's fields.
  void add_to(Statement& statement) const;
  uint32_t columns() const { return columns_; }
  uint32_t values() const { return values_; }
  const std::vector<MaskedCount>& by() const { return by_; }
  bool empty() const { return values_ == 0; }
  void clear();

 private:
  uint32_t columns_ = 0;
  uint32_t values_ = 0;
  std::vector<bool> column_seen_;
  std::vector<MaskedCount> by_;
};

// The tallies of statements whose results are complete, until the decoder's records for
// them come out (a record may be held back until the next statement completes): keyed by
// the statement's text, oldest first, bounded.
class MaskTallies {
 public:
  static constexpr size_t kMax = 64;
  // The statement answered as `text` is complete: its tally (when not empty) waits for its
  // record; `tally` is cleared for the next one.
  void finish(std::string_view text, MaskTally& tally);
  // The tally for the record of `text`, or null: older ones (whose records carried no
  // text the relay saw) are dropped. Valid until the next call.
  const MaskTally* take(std::string_view text);
  void clear() { count_ = 0; }

 private:
  struct Entry {
    std::string text;
    MaskTally tally;
  };
  std::vector<Entry> entries_;  // [0, count_) in use, oldest first
  size_t count_ = 0;
  Entry taken_;
};

// The detector name a column rule's whole-value masks are counted under.
inline constexpr std::string_view kColumnDetector = "column";

class MaskPlan {
 public:
  struct WholeColumn {
    bool on = false;
    masking::Style style = masking::Style::kFull;
    uint16_t rule = 0;  // index into rule_names()
  };
  struct ContentPass {
    masking::DetectorSet detectors = 0;
    masking::Style style = masking::Style::kFull;
    uint16_t rule = 0;
  };

  // Nothing to mask: the relay passes the results through untouched.
  bool empty() const { return !block_ && content_.empty() && !any_whole_; }
  bool blocked() const { return block_; }
  const std::string& block_message() const { return block_message_; }
  const std::string& block_rule() const { return block_rule_; }
  size_t column_count() const { return columns_.size(); }
  const WholeColumn& column(size_t i) const { return columns_[i]; }
  bool has_content() const { return !content_.empty(); }
  const std::vector<std::string>& rule_names() const { return rule_names_; }

  // False when no value of a row whose bytes (values and framing together) are `row` can
  // change: no column is masked whole, and no content pass's detectors may occur anywhere
  // in it (masking::builtin_candidates_within; a user-defined detector keeps every row).
  // Most rows of a scanned result are ruled out this way at once, without a call per value.
  bool may_change(std::string_view row) const;
  // The same, and where: a value of the row that does not meet [*begin, *end) cannot change
  // (no item of the content passes can lie in it: builtin_candidates_within), so a row
  // holding one item has only the values around it scanned. The whole row where the plan
  // cannot say (a column masked whole, a user-defined detector).
  bool may_change(std::string_view row, size_t* begin, size_t* end) const;

  // One value of result column `column` (its type and wire encoding in `type`; `in` the
  // payload without the protocol's framing). kUnchanged: `out` untouched. Columns past
  // column_count() get the content passes only.
  masking::Outcome apply(size_t column, const masking::Column& type, std::string_view in,
                         std::string& out, MaskTally& tally) const;

 private:
  friend MaskPlan build_mask_plan(std::span<const policy::MaskRule* const> rules,
                                  const policy::Policy& policy, const StatementOrigins& origins,
                                  size_t column_count);
  const masking::Masker* masker_ = nullptr;
  std::vector<std::string> rule_names_;
  std::vector<WholeColumn> columns_;
  std::vector<ContentPass> content_;
  bool any_whole_ = false;
  bool block_ = false;
  std::string block_message_;
  std::string block_rule_;
  mutable std::string scratch_;  // between content passes
  mutable std::vector<masking::Span> spans_;
};

// Origins when nothing traces the statement's result columns: every column unknown, and
// the statement may read the tables it names (sql::Analysis::collections, "schema.table"
// or "table"); a statement naming none may read anything (a function, a cursor's FETCH).
StatementOrigins origins_from_tables(std::span<const std::string> tables);

// Whether `rules` can touch the results of a statement naming `tables` (as
// origins_from_tables reads them): a content rule always can, a column rule when one of
// the tables may hold a column it names or when there are none (it may read anything).
// Allocates nothing: the judge asks it of every statement before keeping any rule.
bool may_need_masking(std::span<const policy::MaskRule* const> rules,
                      std::span<const std::string> tables);

// The plan for a statement `rules` apply to (Policy::mask_rules_for, in file order; they
// belong to `policy`, whose masker() runs them), whose result has `column_count` columns
// traced as `origins` says. A column covered by several rules takes the first one's style.
MaskPlan build_mask_plan(std::span<const policy::MaskRule* const> rules,
                         const policy::Policy& policy, const StatementOrigins& origins,
                         size_t column_count);

}  // namespace dbwarden::proxy
