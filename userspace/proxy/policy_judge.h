// SPDX-License-Identifier: Apache-2.0
//
// The Judge the agent runs: each statement of a message through the SQL analyser
// (sql/analyzer.h, the one the audit pipeline uses) and the policy file
// (policy/policy.h). A message is split with its protocol's own splitter, the same one the
// decoders use, so the verdicts are keyed by exactly the texts the records will carry.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "learn/learn.h"
#include "policy/policy.h"
#include "protocol/sql_text.h"
#include "proxy/judge.h"
#include "sql/analyzer.h"

namespace dbwarden::proxy {

// The policy in force, swapped whole on reload (SIGHUP) while the proxy thread reads it.
class PolicySource {
 public:
  explicit PolicySource(std::shared_ptr<const policy::Policy> initial);
  void set(std::shared_ptr<const policy::Policy> next);
  std::shared_ptr<const policy::Policy> get() const;
  // Changes with every set(): a reader re-fetches only then.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const policy::Policy> current_;
  std::atomic<uint64_t> generation_{1};
};

class PolicyJudge final : public Judge {
 public:
  explicit PolicyJudge(const PolicySource& source) : source_(source) {}
  // Learn mode's store (learn/learn.h); null until a policy with a `learn:` section needs
  // it. Set from another thread; the store outlives the judge.
  void set_learn_store(learn::Store* store) { learn_.store(store, std::memory_order_release); }
  void judge(const ConnectionInfo& who, Dialect dialect, std::string_view sql, bool complete,
             bool backslash_escapes, SqlPrepared* prepared, MessageVerdict* out) override;
  uint64_t generation() const override { return source_.generation(); }

 private:
  const PolicySource& source_;
  std::shared_ptr<const policy::Policy> policy_;
  uint64_t generation_ = 0;
  // An SQL PREPARE's or EXECUTE's statement (policy/sql_prepare.h): judged with the
  // statement itself, so that it must not evict the analysis being judged.
  bool judge_sql_prepared(const ConnectionInfo& who, sql::Dialect dialect,
                          std::string_view operation, std::string_view text, bool backslash_escapes,
                          bool first, SqlPrepared& prepared, policy::Decision& d, Verdict& runs);
  bool judge_runs(const std::string& what, const ConnectionInfo& who, sql::Dialect dialect,
                  policy::Decision& d, Verdict& runs);
  sql::Analyzer analyzer_;
  sql::Analyzer prepared_analyzer_;
  SqlPrepared::Entry entry_;
  Verdict runs_;
  std::vector<SqlPiece> pieces_;
  std::atomic<learn::Store*> learn_{nullptr};
  // The learn key of the last connection judged: built once per connection.
  uint64_t key_connection_ = 0;
  uint32_t key_pid_ = 0;
  std::string key_user_;
  std::string key_;
};

// A verdict from a policy decision, with the dialect's defaults for what the policy left
// unsaid (message, SQLSTATE, MySQL errno).
Verdict ToVerdict(const policy::Decision& d, Dialect dialect);

}  // namespace dbwarden::proxy
