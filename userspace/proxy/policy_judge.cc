// SPDX-License-Identifier: Apache-2.0
#include "proxy/policy_judge.h"

#include <ctime>
#include <string>

#include "protocol/mysql/split.h"
#include "protocol/pgsql/split.h"
#include "proxy/mask_plan.h"

namespace dbwarden::proxy {

PolicySource::PolicySource(std::shared_ptr<const policy::Policy> initial)
    : current_(std::move(initial)) {}

void PolicySource::set(std::shared_ptr<const policy::Policy> next) {
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(next);
  generation_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const policy::Policy> PolicySource::get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

namespace {

// The deciding rule's line of `policy explain` (what held): for the reviewer of a held
// statement. Rare (approvals only), so the explaining pass is affordable.
std::string match_reason(const policy::Policy& policy, const ConnectionInfo& who,
                         const sql::Analysis& a, std::string_view text, const std::string& rule) {
  const policy::Decision e = policy.explain(who, a, text);
  const std::string head = "rule \"" + rule + "\"";
  size_t at = 0;
  while (at < e.why.size()) {
    size_t end = e.why.find('\n', at);
    if (end == std::string::npos) end = e.why.size();
    const std::string_view line(e.why.data() + at, end - at);
    if (line.starts_with(head)) {
      const size_t colon = line.find("MATCH");
      return std::string(colon == std::string_view::npos ? line : line.substr(colon));
    }
    at = end + 1;
  }
  return {};
}

}  // namespace

Verdict ToVerdict(const policy::Decision& d, Dialect dialect) {
  Verdict v;
  v.block = d.action == policy::Action::kBlock || d.action == policy::Action::kRequireApproval;
  v.rule = d.rule;
  v.action = std::string(policy::action_name(d.action));
  if (!v.block) return v;
  if (d.action == policy::Action::kRequireApproval && d.approval != nullptr) {
    v.approvals = d.approval->approvals;
    v.approval_timeout_ms = d.approval->timeout_ms;
  }
  v.message = !d.message.empty() ? d.message
              : v.approvals != 0
                  ? "dbwarden: statement requires approval by policy rule '" + d.rule + "'"
                  : "dbwarden: statement blocked by policy rule '" + d.rule + "'";
  v.sqlstate = d.sqlstate.empty() ? (dialect == Dialect::kMysql ? "42000" : "42501") : d.sqlstate;
  v.mysql_errno = d.mysql_errno != 0 ? d.mysql_errno : 1142;  // ER_TABLEACCESS_DENIED_ERROR
  return v;
}

void PolicyJudge::judge(const ConnectionInfo& who, Dialect dialect, std::string_view sql,
                        bool complete, bool backslash_escapes, MessageVerdict* out) {
  if (generation_ != source_.generation()) {
    generation_ = source_.generation();
    policy_ = source_.get();
  }
  out->decisive = Verdict{};
  out->decisive.action = "allow";
  const sql::Dialect sd =
      dialect == Dialect::kMysql ? sql::Dialect::kMysql : sql::Dialect::kPostgresql;
  if (dialect == Dialect::kMysql) {
    mysql::SplitStatements(sql, backslash_escapes, &pieces_);
  } else {
    pgsql::SplitStatements(sql, &pieces_);
  }
  // The vector's elements are refilled, not rebuilt: their strings keep their capacity, so
  // judging a statement allocates nothing once a connection's first few have been judged.
  out->statements.resize(pieces_.size());
  // Kept only where mask rules may need it (a reference count touched per message else).
  if (policy_->mask_rule_count() > 0) {
    out->policy = policy_;
  } else {
    out->policy.reset();
  }
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const std::string_view text = sql.substr(pieces_[i].offset, pieces_[i].length);
    JudgedStatement& s = out->statements[i];
    s.masks.clear();
    s.view_masks.clear();
    s.tables.clear();
    s.fingerprint = 0;
    policy::Decision d;
    const sql::Analysis* analysis = nullptr;
    int8_t ran_before = -1;
    if (!complete && policy_->on_unparsed() == policy::OnUnparsed::kBlock) {
      // Too large to read whole: what was not read cannot be judged.
      d.action = policy::Action::kBlock;
      d.rule = std::string(policy::kOnUnparsedRule);
      d.message = "dbwarden: statement too large for policy inspection";
    } else {
      analysis = &analyzer_.analyze(sd, text);
      const sql::Analysis& a = *analysis;
      d = policy_->decide(who, a, text);
      if (policy_->learn() != nullptr) {
        // Rebuilt when the connection, its user (MySQL's COM_CHANGE_USER) or its resolved
        // peer process changes.
        if (key_.empty() || who.connection_id != key_connection_ || who.user != key_user_ ||
            who.peer.pid != key_pid_) {
          key_connection_ = who.connection_id;
          key_user_ = who.user;
          key_pid_ = who.peer.pid;
          key_ = learn::Store::to_key(learn::Identity::of(who));
        }
        learn::Store* store = learn_.load(std::memory_order_acquire);
        if (d.approval != nullptr && store != nullptr && policy_->learn_covers(who, a, nullptr)) {
          // Asked before learn mode may learn it now.
          ran_before = store->known(key_, a.fingerprint_value) ? 1 : 0;
        }
        learn::apply_learn(*policy_, learn_.load(std::memory_order_acquire), key_, who, a,
                           static_cast<int64_t>(::time(nullptr)), d);
      }
      if (policy_->mask_rule_count() > 0 && d.action != policy::Action::kBlock) {
        policy_->mask_rules_for(who, a, s.masks);
        // PostgreSQL: rules that cover none of the tables the statement names are set
        // aside, before anything is copied: only a view among them could let them touch
        // its results, which the relay's catalog tells (pg_catalog.h, cached by
        // fingerprint). Not MySQL: its relay follows views to their tables
        // (mysql_catalog.h) with every rule kept.
        if (dialect == Dialect::kPostgresql && !may_need_masking(s.masks, a.collections)) {
          s.view_masks.swap(s.masks);
          s.fingerprint = a.fingerprint_value;
        } else {
          s.tables = a.collections;
          s.fingerprint = a.fingerprint_value;
        }
      }
    }
    s.text.assign(text);
    s.verdict = ToVerdict(d, dialect);
    if (d.approval != nullptr && analysis != nullptr) {
      s.verdict.approvers = policy_->approvers_of(*d.approval);
      s.verdict.fingerprint = analysis->fingerprint_value;
      s.verdict.operation = analysis->operation;
      s.verdict.tables = analysis->collections;
      s.verdict.why = match_reason(*policy_, who, *analysis, text, d.rule);
      s.verdict.ran_before = ran_before;
    }
    // A plain block decides over an approval: a message with both is blocked outright.
    const bool harder = out->decisive.approvals != 0 && s.verdict.approvals == 0;
    if (s.verdict.block && (!out->decisive.block || harder)) out->decisive = s.verdict;
  }
}

}  // namespace dbwarden::proxy
