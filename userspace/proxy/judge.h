// SPDX-License-Identifier: Apache-2.0
//
// The proxy's question to the policy, once per client message that carries SQL
// (PostgreSQL Query and Parse, MySQL COM_QUERY and COM_STMT_PREPARE), before any byte of
// it reaches the server. The relays own no policy logic; policy_judge.h answers with
// the policy file, and the approvals and masking actions of later issues plug in here as
// further verdict kinds.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "protocol/statement.h"
#include "proxy/sql_prepared.h"

namespace dbwarden::proxy {

enum class Dialect : uint8_t { kPostgresql, kMysql };

struct Verdict {
  bool block = false;
  std::string rule;    // dbwarden.policy.rule: the rule that decided, "" when none matched
  std::string action;  // dbwarden.policy.action: "allow", "block", "log", "require_approval"
  // For a block: what the client is told (PostgreSQL SQLSTATE, MySQL errno + SQLSTATE).
  // A require_approval decision is a block (with `approval` set) until the relays hold such
  // a statement for the approvals broker (approvals/broker.h): fail closed.
  std::string message;
  std::string sqlstate;
  uint16_t mysql_errno = 0;
  uint32_t approvals = 0;  // require_approval: distinct approvers needed (0: not one)
  uint64_t approval_timeout_ms = 0;
  std::vector<std::string> approvers;  // require_approval: who may approve (user names)
  uint64_t fingerprint = 0;            // require_approval: for the request and JIT grants
  std::string operation;
  // require_approval, for the reviewer: the tables it names, why the rule matched, and
  // whether this identity ran this fingerprint before (learn mode's store: 1 yes, 0 no,
  // -1 not known: no store, or the identity is not one learn mode covers).
  std::vector<std::string> tables;
  std::string why;
  int8_t ran_before = -1;
  // An SQL EXECUTE judged as the prepared statement it runs: that statement's text (the
  // tables, operation and fingerprint above are its), for the reviewer.
  std::string runs;
};

struct JudgedStatement {
  std::string text;  // as the decoders will report it (the splitter's piece)
  Verdict verdict;
  // The mask rules that apply to its results (Policy::mask_rules_for, file order), owned
  // by MessageVerdict::policy; empty: its results pass untouched.
  std::vector<const policy::MaskRule*> masks;
  // PostgreSQL: rules that cover none of the tables the statement names, so that only a
  // view among them could bring a masked column in; the relay's catalog decides
  // (pg_catalog.h). With them: `fingerprint`.
  std::vector<const policy::MaskRule*> view_masks;
  // With masks: the tables it names (sql::Analysis::collections), for failing closed when
  // a result column cannot be traced; and its fingerprint (plans are cached by it).
  std::vector<std::string> tables;
  uint64_t fingerprint = 0;
};

struct MessageVerdict {
  // The first blocking statement's verdict, else the message goes on (`block` false).
  Verdict decisive;
  std::vector<JudgedStatement> statements;
  // The policy the verdicts come from: keeps the statements' mask rules alive.
  std::shared_ptr<const policy::Policy> policy;
};

class Judge {
 public:
  virtual ~Judge() = default;
  // `sql` is one client message's text; `complete` is false when it was too large to read
  // whole (the policy's on_unparsed decides then). `backslash_escapes`: MySQL sql_mode.
  // `prepared`: the session's SQL-level prepared statements (sql_prepared.h), so that a
  // PREPARE is judged by the statement it prepares and an EXECUTE as the one it runs; its
  // PREPAREs and DEALLOCATEs are staged for the relay to commit when it sends the message.
  // Null: each is judged by its own text (a record judged again, long after).
  virtual void judge(const ConnectionInfo& who, Dialect dialect, std::string_view sql,
                     bool complete, bool backslash_escapes, SqlPrepared* prepared,
                     MessageVerdict* out) = 0;
  // Changes whenever the answers may change (a policy reload): a prepared statement judged
  // under another generation is judged again when it is executed.
  virtual uint64_t generation() const = 0;
};

}  // namespace dbwarden::proxy
