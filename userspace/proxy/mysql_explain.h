// SPDX-License-Identifier: Apache-2.0
//
// The EXPLAIN of a MySQL / MariaDB statement held for approval, on the held client's own
// session (its user and current database), for its blast radius (explain_estimate.h). The
// relay sends it like its catalog lookups (mysql_catalog.h), while the session is idle
// outside a transaction, its answer read by a MysqlResultMasker with this as the planner,
// and nothing of it reaches the client or the records.
//
//   MariaDB: SET STATEMENT max_statement_time=2, lock_wait_timeout=2 FOR EXPLAIN FORMAT=JSON
//            <statement>
//   MySQL:   EXPLAIN FORMAT=JSON <statement>   (no time limit: MySQL has no SET STATEMENT
//            and its max_execution_time covers SELECT only)
// SET STATEMENT restores both variables when the statement ends. Plain EXPLAIN plans and
// never executes. Only a text with no ';' at all is sent (trailing ones are cut), quoted or
// not: without one the server cannot find a second statement in it, whatever the client's
// CLIENT_MULTI_STATEMENTS and whatever the proxy's splitter thought, so nothing but the
// EXPLAIN runs.
//
// A held COM_QUERY: that text in one COM_QUERY (query()).
// A held COM_STMT_EXECUTE: the same text with the prepared statement's `?` markers, prepared
// by the proxy on the session (prepare(): COM_STMT_PREPARE; MariaDB prepares SET STATEMENT
// ... FOR EXPLAIN too), executed with the client's own parameter block (execute(): its NULL
// bitmap, types and values as the client sent them, RebindExecute), its binary result read
// as the text one is, then closed (close(): COM_STMT_CLOSE, which has no answer). No SQL is
// built from the values, so no value can be misquoted into other SQL.
//   COM_STMT_PREPARE answer (https://mariadb.com/kb/en/com_stmt_prepare/): ERR, or int<1> 0,
//   int<4> statement id, int<2> columns, int<2> parameters, int<1> 0, int<2> warnings, then
//   the parameters' and the columns' definitions, each group followed by an EOF without
//   CLIENT_DEPRECATE_EOF.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/mysql/messages.h"
#include "proxy/explain_estimate.h"
#include "proxy/mysql_results.h"

namespace dbwarden::proxy {

// The text of the EXPLAIN of `text` (MariaDB's form when `mariadb`), into `sql`; false with
// `why` when it cannot be asked. Used on the client's session and the agent's own.
bool MysqlExplainSql(std::string_view text, bool mariadb, std::string& sql, std::string& why);
// A client's COM_STMT_EXECUTE `payload` (no packet header; its statement has `count`
// parameters) as the COM_STMT_EXECUTE packet of statement `id`: no cursor, one iteration,
// its NULL bitmap and values as sent, its parameters' types from it, or from `types` (those
// an earlier execute bound) when it leaves them out. False with `why` when it cannot be: a
// malformed block, types never seen, a packet that would outgrow one packet. Without query
// attributes (the caller checks).
//   int<1> 0x17, int<4> id, int<1> flags, int<4> iterations, then with count > 0:
//   byte<(count + 7) / 8> NULL bitmap, int<1> new-params-bound, [count x int<2> type],
//   values (https://mariadb.com/kb/en/com_stmt_execute/).
bool RebindExecute(std::span<const uint8_t> payload, uint16_t count,
                   std::span<const uint16_t> types, uint32_t id, std::vector<uint8_t>& packet,
                   std::string& why);

class MysqlExplainLookup final : public MysqlResultPlanner {
 public:
  static constexpr size_t kMaxStatementBytes = 256 * 1024;
  // The COM_QUERY packet of the EXPLAIN of `text` (MariaDB's form when `mariadb`), into
  // `packet`; false with `why` when it cannot be asked.
  bool query(std::string_view text, bool mariadb, std::vector<uint8_t>& packet, std::string& why);

  // A held execute: the COM_STMT_PREPARE packet of the EXPLAIN of its prepared `text`, into
  // `packet`. `execute` is the client's execute as RebindExecute() made it (its id is set
  // once the prepare is answered), with `params` parameters.
  bool prepare(std::string_view text, bool mariadb, bool deprecate_eof, uint16_t params,
               std::vector<uint8_t> execute, std::vector<uint8_t>& packet, std::string& why);
  // Server bytes of the prepare's answer: how many were its own (fewer once it ended).
  size_t prepare_answer(std::span<const uint8_t> bytes);
  bool prepare_done() const { return prep_done_; }
  // After the prepare's answer: the COM_STMT_EXECUTE to send into `packet`; or false with
  // why there is no estimate (the prepare refused; a parameter count that differs).
  bool execute(std::vector<uint8_t>& packet, BlastEstimate& failed) const;
  // The COM_STMT_CLOSE of the EXPLAIN's statement into `packet`; false when none was made.
  bool close(std::vector<uint8_t>& packet);
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
  // The prepare of a held execute's EXPLAIN, and its answer being read.
  std::vector<uint8_t> execute_;
  uint16_t params_ = 0;
  bool deprecate_eof_ = false;
  bool prep_done_ = true;
  bool prep_first_ = true;        // the answer's first packet is being read
  bool prep_in_payload_ = false;  // ... its payload (else a header)
  uint8_t prep_header_[4] = {};
  size_t prep_header_have_ = 0;
  uint32_t prep_left_ = 0;          // payload bytes of the current packet still to come
  std::vector<uint8_t> prep_head_;  // the first packet's payload (bounded)
  uint64_t prep_defs_left_ = 0;     // definition and EOF packets still to come
  bool prepared_ = false;           // answered OK: statement prep_.statement_id exists
  mysql::PrepareOk prep_;
};

}  // namespace dbwarden::proxy
