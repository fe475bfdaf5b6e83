// SPDX-License-Identifier: Apache-2.0
//
// The EXPLAIN of a PostgreSQL statement held for approval, on the held client's own session
// (its user, search_path and database), for its blast radius (explain_estimate.h). The relay
// sends it like its catalog lookups (pg_relay_lineage.cc): only while the session is idle
// outside a transaction, its bytes and answer reaching neither the client nor the decoder,
// so no record comes of it.
//
// Always the extended protocol, whatever the client used: a Parse holds one statement at
// most, so a text the proxy's splitter took for one statement cannot make the server run
// a second one that nobody approved. Two Sync groups:
//   Parse "dbwarden_blast_t" SELECT pg_catalog.set_config('statement_timeout', '2000', true)
//   Bind, Execute              -- the limit, local to this group's transaction: a plain SET
//                              -- outside a transaction would outlive it, SET LOCAL warns
//   Parse "dbwarden_blast" EXPLAIN (FORMAT JSON) <statement>, with the client's parameter
//   Bind, Execute              -- types and values when it is a prepared one
//   Sync                       -- ends the transaction: statement_timeout is the client's again
//   Close both statements, Sync  -- in a group of their own: an error in the first skips to
//                                -- its Sync, and the names must not stay in the session
// Plain EXPLAIN plans and never executes (no ANALYZE). The unnamed portal is free between
// transactions; the client's unnamed prepared statement is left alone (named ones are used).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/explain_estimate.h"

namespace dbwarden::proxy {

// A Parse message's body: its parameter type OIDs (appended to `types`); false when
// malformed.
bool PgParseParameterTypes(std::span<const uint8_t> parse_body, std::vector<uint32_t>& types);
// A Bind message's body: the bytes from its parameter format codes through its last
// parameter value (what an EXPLAIN of the same statement is bound with), and the statement
// it binds; false when malformed.
bool PgBindParameters(std::span<const uint8_t> bind_body, std::string_view* statement,
                      std::span<const uint8_t>* parameters);

// The values of a Bind's parameters (the bytes PgBindParameters gives): each value (nullopt:
// NULL) and its format (0 text, 1 binary: a Bind's one code applies to all, none means
// text); false when malformed.
bool PgBindValues(std::span<const uint8_t> parameters,
                  std::vector<std::optional<std::string>>& values, std::vector<int>& formats);

class PgExplainLookup {
 public:
  static constexpr size_t kMaxStatementBytes = 256 * 1024;
  // The messages of the EXPLAIN of `text` bound with `parameters` (PgBindParameters; empty:
  // none) of `types`, into `out`; false with `why` when it cannot be asked.
  bool query(std::string_view text, std::span<const uint32_t> types,
             std::span<const uint8_t> parameters, std::vector<uint8_t>& out, std::string& why);
  // One whole server message of the answer (type, body without the header); true once the
  // answer ended (its second ReadyForQuery). ParameterStatus and notifications are the
  // client's: `forward` is set for them.
  bool on_message(uint8_t type, std::span<const uint8_t> body, bool* forward);
  // Once ended: the estimate, or why there is none.
  BlastEstimate result() const;

 private:
  uint32_t completes_ = 0;  // CommandCompletes so far: the EXPLAIN's rows come after the first
  uint32_t readies_ = 0;
  bool too_large_ = false;
  bool no_plan_ = false;
  std::string json_;
  std::string error_;
};

}  // namespace dbwarden::proxy
