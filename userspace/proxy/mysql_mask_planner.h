// SPDX-License-Identifier: Apache-2.0
//
// The mask plan (mask_plan.h) of one MySQL/MariaDB command whose statements have mask
// rules, and the origin of each result column, from its column definition:
//   - schema / org_table / org_name of a base table: that column (kCopy);
//   - org_name or org_table empty (an expression, a UNION), org_table naming a derived
//     table, a common table expression or a view, or a table the catalog (mysql_catalog.h)
//     does not know as a base table: unknown, which fails closed in the plan (the rule's
//     on_derived applies when the statement may read a masked column).
// What the statement may read is its tables (sql::Analysis::collections), a view's by its
// definition's tables; any table the catalog cannot place may read anything.
// Before the command goes to the server, prepare() refuses what the text alone decides:
// SELECT ... INTO OUTFILE / DUMPFILE under a mask rule, a masked column named after FROM
// under `predicates: block`.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "proxy/judge.h"
#include "proxy/mask_plan.h"
#include "proxy/mysql_catalog.h"
#include "proxy/mysql_results.h"

namespace dbwarden::proxy {

class MysqlMaskPlanner final : public MysqlResultPlanner {
 public:
  // The command's statements as judged (their texts are what records carry) under
  // `policy`; `database` the session's default schema. Returns the refusal message when
  // the command must not reach the server ("" to send it), and `rule` the rule that
  // refused it.
  std::string prepare(std::span<const JudgedStatement> statements,
                      std::shared_ptr<const policy::Policy> policy, std::string_view database,
                      bool backslash_escapes, const MysqlCatalog& catalog, std::string& rule);
  // Whether the prepared command's results must be read: a rule has detectors, or its
  // columns may be among what the statement reads (false: they stream through untouched).
  bool needs_results() const { return needs_results_; }
  // Tables the catalog should know before the results come (not yet known).
  const std::vector<MysqlTableName>& unknown_tables() const { return unknown_; }

  void column(size_t index, const mysql::ColumnDefinition& def) override;
  Rows columns_done(size_t count, std::string& refusal) override;
  masking::Outcome value(size_t index, const masking::Column& type, std::string_view in,
                         std::string& out) override;
  void result_done() override;

  // Counts of the results finished so far, by statement text, for the records.
  MaskTallies& tallies() { return tallies_; }

 private:
  void add_reads(const MysqlTableName& t, int depth);

  std::shared_ptr<const policy::Policy> policy_;
  const MysqlCatalog* catalog_ = nullptr;
  std::vector<const policy::MaskRule*> rules_;
  std::vector<std::string> texts_;  // one per statement: result k counts for texts_[k]
  size_t result_ = 0;
  bool needs_results_ = false;
  std::vector<MysqlTableName> tables_;
  std::vector<std::string> ctes_;
  std::vector<MysqlTableName> unknown_;
  StatementOrigins origins_;  // columns refilled per result
  MaskPlan plan_;
  MaskTally tally_;
  MaskTallies tallies_;
};

}  // namespace dbwarden::proxy
