// SPDX-License-Identifier: Apache-2.0
#include "proxy/policy_judge.h"

#include <ctime>
#include <string>

#include "policy/inner_statement.h"
#include "policy/sql_prepare.h"
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

// How strongly a decision stops a statement: a block over an approval over anything else.
int strictness(const policy::Decision& d) {
  if (d.action == policy::Action::kRequireApproval && d.approval != nullptr) return 1;
  return d.action == policy::Action::kBlock || d.action == policy::Action::kRequireApproval ? 2 : 0;
}

// Under on_unparsed: block, a statement whose effect the proxy cannot know is blocked.
void unknown_statement(const policy::Policy& policy, std::string message, policy::Decision& d) {
  if (policy.on_unparsed() != policy::OnUnparsed::kBlock) return;
  d = policy::Decision{};
  d.action = policy::Action::kBlock;
  d.rule = std::string(policy::kOnUnparsedRule);
  d.message = std::move(message);
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

// `d` is the decision on `text` itself. A PREPARE is blocked when the statement it prepares
// is (preparing runs nothing: an approval is asked at each EXECUTE), and an EXECUTE (also
// under EXPLAIN ANALYZE) decided by the statement it runs when that blocks or needs
// approval. True when `d` is then that statement's approval, `runs` its reviewer's fields.
bool PolicyJudge::judge_sql_prepared(const ConnectionInfo& who, sql::Dialect dialect,
                                     std::string_view op, std::string_view text,
                                     bool backslash_escapes, bool first, SqlPrepared& prepared,
                                     policy::Decision& d, Verdict& runs) {
  const bool explains = op == "EXPLAIN" || op == "ANALYZE";
  const std::string_view stmt = explains ? policy::executed_statement(dialect, text) : text;
  if (stmt.empty()) return false;
  const policy::SqlPrepare p = policy::read_sql_prepare(dialect, stmt, backslash_escapes);
  const bool mysql = dialect == sql::Dialect::kMysql;
  if (explains && p.kind != policy::SqlPrepareKind::kExecute) return false;
  switch (p.kind) {
    case policy::SqlPrepareKind::kNone:
      return false;
    case policy::SqlPrepareKind::kDeallocate:
      prepared.stage_forget(p.name);
      return false;
    case policy::SqlPrepareKind::kDeallocateAll:
      prepared.stage_forget_all();
      return false;
    case policy::SqlPrepareKind::kPrepare: {
      // MySQL replaces a statement of the same name (even when the new one fails to
      // prepare), but a statement after the first of a message does not run when one before
      // it fails: there the old one may stay, and both are kept.
      prepared.stage_prepare(p.name, p.text, p.text_known, /*replace=*/mysql && first);
      if (strictness(d) == 2) return false;
      if (!p.text_known) {
        unknown_statement(*policy_,
                          "dbwarden: PREPARE " + p.name +
                              " from text the proxy cannot read (a user variable): the "
                              "statement it prepares cannot be judged",
                          d);
        return false;
      }
      const sql::Analysis& a = prepared_analyzer_.analyze(dialect, p.text);
      policy::Decision inner = policy_->decide(who, a, p.text);
      if (strictness(inner) == 2) d = std::move(inner);
      return false;
    }
    case policy::SqlPrepareKind::kExecuteImmediate:
      if (strictness(d) == 2) return false;
      if (!p.text_known) {
        unknown_statement(*policy_,
                          "dbwarden: EXECUTE IMMEDIATE of text the proxy cannot read (a user "
                          "variable, an expression): the statement it runs cannot be judged",
                          d);
        return false;
      }
      entry_.texts.assign(1, p.text);
      return judge_runs("EXECUTE IMMEDIATE", who, dialect, d, runs);
    case policy::SqlPrepareKind::kExecute:
      break;
  }
  if (strictness(d) == 2) return false;
  if (!prepared.find(p.name, entry_) || entry_.texts.empty()) {
    unknown_statement(*policy_,
                      "dbwarden: EXECUTE " + p.name +
                          ": the statement it runs is not known to the proxy (not prepared "
                          "through it, prepared from a user variable, or beyond its bounds)",
                      d);
    return false;
  }
  return judge_runs("EXECUTE " + p.name, who, dialect, d, runs);
}

// The statement(s) in entry_ that `what` runs: the strictest decides over `d` when it blocks
// or needs approval (PostgreSQL may hold either of several texts under one name).
bool PolicyJudge::judge_runs(const std::string& what, const ConnectionInfo& who,
                             sql::Dialect dialect, policy::Decision& d, Verdict& runs) {
  int best = strictness(d);
  bool by_inner = false;
  for (const std::string& t : entry_.texts) {
    const sql::Analysis& a = prepared_analyzer_.analyze(dialect, t);
    policy::Decision inner = policy_->decide(who, a, t);
    const int k = strictness(inner);
    if (k == 0 || k <= best) continue;
    best = k;
    by_inner = k == 1;
    if (by_inner) {
      runs = Verdict{};
      runs.fingerprint = a.fingerprint_value;
      runs.operation = a.operation;
      runs.tables = a.collections;
      runs.why = what + " runs " + t + ": " + match_reason(*policy_, who, a, t, inner.rule);
      runs.runs = t;
    }
    d = std::move(inner);
  }
  return by_inner;
}

void PolicyJudge::judge(const ConnectionInfo& who, Dialect dialect, std::string_view sql,
                        bool complete, bool backslash_escapes, SqlPrepared* prepared,
                        MessageVerdict* out) {
  // What an earlier message staged and the relay did not send (blocked, denied) never
  // happened on the server.
  if (prepared != nullptr) prepared->discard();
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
    bool by_prepared = false;  // d is the approval of the statement an EXECUTE runs
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
      if (prepared != nullptr && (policy::may_be_sql_prepare(a.operation) ||
                                  a.operation == "EXPLAIN" || a.operation == "ANALYZE")) {
        by_prepared =
            judge_sql_prepared(who, sd, a.operation, text, backslash_escapes, i == 0, *prepared, d,
                               runs_);
      }
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
    if (d.approval != nullptr && by_prepared) {
      s.verdict.approvers = policy_->approvers_of(*d.approval);
      s.verdict.fingerprint = runs_.fingerprint;
      s.verdict.operation = std::move(runs_.operation);
      s.verdict.tables = std::move(runs_.tables);
      s.verdict.why = std::move(runs_.why);
      s.verdict.runs = std::move(runs_.runs);
    } else if (d.approval != nullptr && analysis != nullptr) {
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
