// SPDX-License-Identifier: Apache-2.0
#include "proxy/mysql_mask_planner.h"

#include <algorithm>

#include "proxy/mysql_statement_scan.h"

namespace dbwarden::proxy {

namespace {

// Views over views over ...: deeper than this, the view may read anything.
constexpr int kMaxViewDepth = 8;
// Predicate references kept: names after FROM x tables the statement reads.
constexpr size_t kMaxPredicates = 4096;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::string MysqlMaskPlanner::prepare(std::span<const JudgedStatement> statements,
                                      std::shared_ptr<const policy::Policy> policy,
                                      std::string_view database, bool backslash_escapes,
                                      const MysqlCatalog& catalog, std::string& rule) {
  policy_ = std::move(policy);
  catalog_ = &catalog;
  rules_.clear();
  texts_.clear();
  tables_.clear();
  ctes_.clear();
  unknown_.clear();
  origins_ = {};
  result_ = 0;
  tally_.clear();
  bool into_file = false;
  std::vector<std::string> predicate_names;  // of every statement
  MysqlStatementScan scan;
  for (const JudgedStatement& s : statements) {
    texts_.push_back(s.text);
    if (s.masks.empty()) continue;
    for (const policy::MaskRule* r : s.masks) {
      if (std::find(rules_.begin(), rules_.end(), r) == rules_.end()) rules_.push_back(r);
    }
    for (const std::string& t : s.tables) {
      MysqlTableName name;
      if (!SplitMysqlTableName(t, database, name)) {
        origins_.reads_unknown = true;
        continue;
      }
      if (std::find(tables_.begin(), tables_.end(), name) == tables_.end()) tables_.push_back(name);
    }
    ScanMysqlStatement(s.text, backslash_escapes, scan);
    into_file |= scan.into_file;
    for (std::string& c : scan.cte_names) ctes_.push_back(std::move(c));
    for (std::string& n : scan.predicate_names) predicate_names.push_back(std::move(n));
    if (scan.runs_other || scan.user_variables) origins_.reads_unknown = true;
  }
  needs_results_ = false;
  if (rules_.empty() || !policy_) return {};
  for (const MysqlTableName& t : tables_) add_reads(t, 0);
  for (const policy::MaskRule* r : rules_) {
    if (r->detectors != 0) needs_results_ = true;
    if (r->columns.empty()) continue;
    if (origins_.reads_unknown) needs_results_ = true;
    for (const SourceRef& m : origins_.may_read) {
      if (r->could_cover(m.schema, m.table, m.column)) needs_results_ = true;
    }
  }
  // Every table read, views expanded to theirs: a view's column named like its table's.
  for (const std::string& n : predicate_names) {
    for (const SourceRef& t : origins_.may_read) {
      if (origins_.predicate_columns.size() >= kMaxPredicates) break;
      origins_.predicate_columns.push_back({t.schema, t.table, n});
    }
  }
  if (into_file) {
    rule = policy_->mask_rule_name(*rules_.front());
    return "dbwarden: SELECT ... INTO OUTFILE/DUMPFILE cannot be masked and is refused (mask "
           "rule '" +
           rule + "')";
  }
  // What the text decides already (predicates: block): before any byte reaches the server.
  const MaskPlan early = build_mask_plan(rules_, *policy_, origins_, 0);
  if (early.blocked()) {
    rule = early.block_rule();
    return early.block_message();
  }
  return {};
}

void MysqlMaskPlanner::add_reads(const MysqlTableName& t, int depth) {
  if (std::find(ctes_.begin(), ctes_.end(), t.table) != ctes_.end()) return;  // its own reads
  const MysqlCatalog::Entry* e = catalog_->find(t);
  if (e == nullptr || e->opaque) {
    const bool ask = e == nullptr && !catalog_->schema_known(t.schema);
    if (ask && std::find(unknown_.begin(), unknown_.end(), t) == unknown_.end()) {
      unknown_.push_back(t);
    }
    origins_.may_read.push_back({t.schema, t.table, ""});
    origins_.reads_unknown = true;  // a view over anything, as far as the proxy knows
    return;
  }
  if (!e->view) {
    origins_.may_read.push_back({t.schema, t.table, ""});
    return;
  }
  if (depth >= kMaxViewDepth) {
    origins_.reads_unknown = true;
    return;
  }
  for (const MysqlTableName& r : e->reads) add_reads(r, depth + 1);
}

void MysqlMaskPlanner::column(size_t index, const mysql::ColumnDefinition& def) {
  if (index == 0) origins_.columns.clear();
  ColumnOrigin o;
  const MysqlTableName t{Lower(def.schema), Lower(def.org_table)};
  const bool cte = std::find(ctes_.begin(), ctes_.end(), t.table) != ctes_.end();
  const MysqlCatalog::Entry* e = catalog_ ? catalog_->find(t) : nullptr;
  if (!def.org_name.empty() && !t.table.empty() && !cte && e != nullptr && !e->view) {
    o.kind = ColumnOrigin::Kind::kCopy;
    o.sources.push_back({t.schema, t.table, Lower(def.org_name)});
  }
  origins_.columns.push_back(std::move(o));
}

MysqlResultPlanner::Rows MysqlMaskPlanner::columns_done(size_t count, std::string& refusal) {
  plan_ = build_mask_plan(rules_, *policy_, origins_, count);
  if (plan_.blocked()) {
    refusal = plan_.block_message();
    return Rows::kRefuse;
  }
  return plan_.empty() ? Rows::kPass : Rows::kMask;
}

masking::Outcome MysqlMaskPlanner::value(size_t index, const masking::Column& type,
                                         std::string_view in, std::string& out) {
  return plan_.apply(index, type, in, out, tally_);
}

void MysqlMaskPlanner::result_done() {
  if (texts_.empty()) return;
  tallies_.finish(texts_[std::min(result_, texts_.size() - 1)], tally_);
  ++result_;
}

}  // namespace dbwarden::proxy
