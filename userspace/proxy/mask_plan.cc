// SPDX-License-Identifier: Apache-2.0
#include "proxy/mask_plan.h"

#include <algorithm>

#include "masking/detectors.h"

namespace dbwarden::proxy {

void MaskTally::count(size_t column, std::string_view rule, std::string_view detector,
                      uint32_t values) {
  if (values == 0) return;
  values_ += values;
  if (column >= column_seen_.size()) column_seen_.resize(column + 1, false);
  if (!column_seen_[column]) {
    column_seen_[column] = true;
    ++columns_;
  }
  for (MaskedCount& c : by_) {
    if (c.rule == rule && c.detector == detector) {
      c.values += values;
      return;
    }
  }
  by_.push_back(MaskedCount{std::string(rule), std::string(detector), values});
}

void MaskTally::add_to(Statement& statement) const {
  statement.masked_columns += columns_;
  statement.masked_values += values_;
  for (const MaskedCount& c : by_) statement.masked_by.push_back(c);
}

void MaskTally::clear() {
  columns_ = 0;
  values_ = 0;
  column_seen_.clear();
  by_.clear();
}

void MaskTallies::finish(std::string_view text, MaskTally& tally) {
  if (tally.empty()) return;
  if (count_ == kMax) {
    // Records not taken: the oldest goes (its record got no counts).
    std::rotate(entries_.begin(), entries_.begin() + 1, entries_.begin() + count_);
    --count_;
  }
  if (count_ == entries_.size()) entries_.emplace_back();
  Entry& e = entries_[count_++];
  e.text.assign(text);
  std::swap(e.tally, tally);
  tally.clear();
}

const MaskTally* MaskTallies::take(std::string_view text) {
  for (size_t i = 0; i < count_; ++i) {
    if (entries_[i].text != text) continue;
    std::swap(taken_, entries_[i]);
    // Drops the entries before it too.
    std::rotate(entries_.begin(), entries_.begin() + i + 1, entries_.begin() + count_);
    count_ -= i + 1;
    return &taken_.tally;
  }
  return nullptr;
}

bool MaskPlan::may_change(std::string_view row) const {
  size_t begin = 0, end = 0;
  return may_change(row, &begin, &end);
}

bool MaskPlan::may_change(std::string_view row, size_t* begin, size_t* end) const {
  *begin = 0;
  *end = row.size();
  if (any_whole_) return true;
  masking::DetectorSet wanted = 0;
  for (const ContentPass& p : content_) wanted |= p.detectors;
  // User patterns are unknown to the gate: a row is ruled out for built-in detectors only.
  if ((wanted & ~masking::kAllBuiltins) != 0) return true;
  return wanted != 0 && !row.empty() &&
         (masking::builtin_candidates_within(row, begin, end) & wanted) != 0;
}

masking::Outcome MaskPlan::apply(size_t column, const masking::Column& type, std::string_view in,
                                 std::string& out, MaskTally& tally) const {
  if (column < columns_.size() && columns_[column].on) {
    const WholeColumn& w = columns_[column];
    const masking::Outcome o = masker_->mask_value(type, w.style, in, out);
    if (o != masking::Outcome::kUnchanged)
      tally.count(column, rule_names_[w.rule], kColumnDetector, 1);
    return o;
  }
  // Content passes in rule order, each over what the one before left.
  masking::Outcome result = masking::Outcome::kUnchanged;
  for (const ContentPass& p : content_) {
    spans_.clear();
    const std::string_view current =
        result == masking::Outcome::kReplaced ? std::string_view(out) : in;
    const masking::Outcome o =
        masker_->mask_content(type, p.style, p.detectors, current, scratch_, &spans_);
    if (o != masking::Outcome::kReplaced) continue;
    out.swap(scratch_);
    result = masking::Outcome::kReplaced;
    for (const masking::Span& s : spans_) {
      tally.count(column, rule_names_[p.rule], masker_->detector_name(s.detector), 1);
    }
  }
  return result;
}

namespace {

bool covered_by(const policy::MaskRule& rule, const std::vector<SourceRef>& refs) {
  return std::any_of(refs.begin(), refs.end(),
                     [&](const SourceRef& r) { return rule.covers(r.schema, r.table, r.column); });
}

bool may_read_masked(const policy::MaskRule& rule, const StatementOrigins& origins) {
  if (rule.columns.empty()) return false;
  if (origins.reads_unknown) return true;
  return std::any_of(origins.may_read.begin(), origins.may_read.end(), [&](const SourceRef& r) {
    return rule.could_cover(r.schema, r.table, r.column);
  });
}

}  // namespace

namespace {

std::string_view unquoted(std::string_view part) {
  if (part.size() >= 2 && part.front() == '"' && part.back() == '"') {
    return part.substr(1, part.size() - 2);
  }
  return part;
}

}  // namespace

bool may_need_masking(std::span<const policy::MaskRule* const> rules,
                      std::span<const std::string> tables) {
  for (const policy::MaskRule* rule : rules) {
    if (rule->detectors != 0) return true;
    if (rule->columns.empty()) continue;
    if (tables.empty()) return true;
    for (const std::string& t : tables) {
      const std::string_view name(t);
      const size_t dot = name.rfind('.');
      const std::string_view schema = dot == std::string_view::npos ? "" : name.substr(0, dot);
      const std::string_view table = dot == std::string_view::npos ? name : name.substr(dot + 1);
      if (rule->could_cover(unquoted(schema), unquoted(table), "")) return true;
    }
  }
  return false;
}

StatementOrigins origins_from_tables(std::span<const std::string> tables) {
  StatementOrigins o;
  o.reads_unknown = tables.empty();
  for (const std::string& t : tables) {
    SourceRef& r = o.may_read.emplace_back();
    const std::string_view name(t);
    const size_t dot = name.rfind('.');
    // No schema: unknown, the search_path decides. Quoted names keep their case; unquoted
    // ones are folded by covers() anyway.
    if (dot != std::string_view::npos) r.schema = unquoted(name.substr(0, dot));
    r.table = unquoted(dot == std::string_view::npos ? name : name.substr(dot + 1));
  }
  return o;
}

MaskPlan build_mask_plan(std::span<const policy::MaskRule* const> rules,
                         const policy::Policy& policy, const StatementOrigins& origins,
                         size_t column_count) {
  MaskPlan plan;
  plan.masker_ = policy.masker();
  if (rules.empty() || plan.masker_ == nullptr) return plan;
  plan.columns_.resize(column_count);
  const auto refuse = [&](const std::string& rule, const std::string& why) {
    if (plan.block_) return;
    plan.block_ = true;
    plan.block_rule_ = rule;
    plan.block_message_ = "dbwarden: " + why + " (mask rule '" + rule + "')";
  };
  for (size_t r = 0; r < rules.size(); ++r) {
    const policy::MaskRule& rule = *rules[r];
    const std::string& name = policy.mask_rule_name(rule);
    plan.rule_names_.push_back(name);
    const auto index = static_cast<uint16_t>(r);
    if (rule.detectors != 0) plan.content_.push_back({rule.detectors, rule.style, index});
    if (rule.columns.empty()) continue;
    if (rule.predicates == policy::MaskRule::Predicates::kBlock &&
        covered_by(rule, origins.predicate_columns)) {
      refuse(name, "a masked column is used in a condition, sort or grouping");
    }
    const bool may_read = may_read_masked(rule, origins);
    for (size_t i = 0; i < column_count; ++i) {
      MaskPlan::WholeColumn& w = plan.columns_[i];
      if (w.on) continue;  // an earlier rule has it
      const ColumnOrigin* o = i < origins.columns.size() ? &origins.columns[i] : nullptr;
      bool derived = false;
      if (o == nullptr || o->kind == ColumnOrigin::Kind::kUnknown) {
        if (!may_read) continue;
        derived = true;  // cannot be followed: treated as derived from the masked column
      } else if (covered_by(rule, o->sources)) {
        derived = o->kind == ColumnOrigin::Kind::kDerived;
      } else {
        continue;
      }
      if (derived && rule.on_derived == policy::MaskRule::OnDerived::kBlock) {
        refuse(name, "a result column is derived from a masked column");
        continue;
      }
      w.on = true;
      w.style = rule.style;
      w.rule = index;
      plan.any_whole_ = true;
    }
  }
  return plan;
}

}  // namespace dbwarden::proxy
