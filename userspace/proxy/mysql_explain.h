// SPDX-License-Identifier: Apache-2.0
//
// The EXPLAIN of a MySQL / MariaDB statement held for approval, on the held client's own
// session (its user and current database), for its blast radius (explain_estimate.h). The
// relay sends it like its catalog lookups (mysql_catalog.h): one COM_QUERY while the session
// is idle outside a transaction, its answer read by a MysqlResultMasker with this as the
// planner, and nothing of it reaches the client or the records.
//
//   MariaDB: SET STATEMENT max_statement_time=2, lock_wait_timeout=2 FOR EXPLAIN FORMAT=JSON
//   <statement> MySQL:   EXPLAIN FORMAT=JSON <statement>   (no time limit: MySQL has no SET
//   STATEMENT and
//            its max_execution_time covers SELECT only)
// SET STATEMENT restores both variables when the statement ends. Plain EXPLAIN plans and
// never executes. Only a text with no ';' at all is sent (trailing ones are cut), quoted or
// not: without one the server cannot find a second statement in it, whatever the client's
// CLIENT_MULTI_STATEMENTS and whatever the proxy's splitter thought, so nothing but the
// EXPLAIN runs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/explain_estimate.h"
#include "proxy/mysql_results.h"

namespace dbwarden::proxy {

// The text of the EXPLAIN of `text` (MariaDB's form when `mariadb`), into `sql`; false with
// `why` when it cannot be asked. Used on the client's session and the agent's own.
bool MysqlExplainSql(std::string_view text, bool mariadb, std::string& sql, std::string& why);

class MysqlExplainLookup final : public MysqlResultPlanner {
 public:
  static constexpr size_t kMaxStatementBytes = 256 * 1024;
  // The COM_QUERY packet of the EXPLAIN of `text` (MariaDB's form when `mariadb`), into
  // `packet`; false with `why` when it cannot be asked.
  bool query(std::string_view text, bool mariadb, std::vector<uint8_t>& packet, std::string& why);
  void column(size_t, const mysql::ColumnDefinition&) override {}
  Rows columns_done(size_t count, std::string& refusal) override;
  masking::Outcome value(size_t index, const masking::Column& type, std::string_view in,
                         std::string& out) override;
  // The answer ended: `sent` is what the masker gave for the client (dropped; an ERR in it
  // says why the EXPLAIN failed), `ok` whether it was read whole.
  BlastEstimate result(std::span<const uint8_t> sent, bool ok) const;

 private:
  bool shape_ok_ = false;
  bool too_large_ = false;
  std::string json_;
};

}  // namespace dbwarden::proxy
