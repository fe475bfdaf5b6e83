// SPDX-License-Identifier: Apache-2.0
//
// What one mask rule on a table the workload never reads adds to judging each statement
// (issue 13's "<= 0.3 us added proxy CPU per statement"): the proxy's PolicyJudge over
// pgbench -S's statement (a different aid each time), the shipped guardrails alone vs the
// guardrails plus one `columns` mask rule with no `match` (it applies to every statement, and
// may_need_masking drops it for an untouched table). ns of thread CPU per judged statement,
// medians of alternated rounds; the A/A line is the guardrails against themselves. A fourth
// policy adds one require_approval rule on a table the workload never touches (issue 14's
// "<= 0.2 us added proxy CPU per statement" for statements that need no approval). A fifth
// judges with the guardrails and a session's SQL prepared-statement store, as the relays
// judge (proxy/sql_prepared.h: what SQL PREPARE / EXECUTE tracking adds to a statement that
// is neither).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "policy_file.h"
#include "proxy/policy_judge.h"
#include "proxy/sql_prepared.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::thread_cpu_ns;
using dbwarden::bench::median;

using dbwarden::ConnectionInfo;
using dbwarden::proxy::MessageVerdict;
using dbwarden::proxy::PolicyJudge;
using dbwarden::proxy::PolicySource;

std::shared_ptr<const dbwarden::policy::Policy> load(const std::string& yaml) {
  auto p = dbwarden::policy::Policy::load_string(yaml, "bench.yaml");
  if (!p.ok()) {
    std::fprintf(stderr, "%s\n", p.status().message().c_str());
    std::exit(1);
  }
  return p.value();
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 9;
  const long n = argc > 2 ? std::atol(argv[2]) : 300000;
  const std::string guardrails = dbwarden::bench::read_policy_file(DBW_POLICY_FILE);
  const std::string masked = guardrails +
                             "  - name: untouched-column\n    action: mask\n"
                             "    columns: [public.bench_untouched.secret]\n";
  const std::string approval = guardrails +
                               "  - name: other-table-needs-approval\n"
                               "    match: {collections: [bench_other]}\n"
                               "    action: require_approval\n    approvers: [dba]\n"
                               "approver_groups:\n  dba: [alice]\n";
  PolicySource plain_source(load(guardrails)), aa_source(load(guardrails)),
      mask_source(load(masked)), approval_source(load(approval)), store_source(load(guardrails));
  PolicyJudge plain(plain_source), aa(aa_source), mask(mask_source), approve(approval_source),
      with_store(store_source);
  dbwarden::proxy::SqlPrepared store;
  constexpr int kJudges = 5;
  PolicyJudge* judges[kJudges] = {&plain, &aa, &mask, &approve, &with_store};
  dbwarden::proxy::SqlPrepared* stores[kJudges] = {nullptr, nullptr, nullptr, nullptr, &store};
  ConnectionInfo who;
  who.db_system = "postgresql";
  who.user = "bench";
  who.database = "bench";
  // pgbench -S's statement with 100,000 different aids (its analysis cache sees them all).
  std::vector<std::string> texts;
  for (int i = 0; i < 100000; ++i) {
    texts.push_back("SELECT abalance FROM pgbench_accounts WHERE aid = " +
                    std::to_string(1 + (i * 7919) % 1000000) + ";");
  }
  MessageVerdict v;
  size_t kept = 0, held = 0;
  std::vector<double> t[kJudges];
  for (int r = 0; r < rounds; ++r) {
    for (int j = 0; j < kJudges; ++j) {
      const int k = (r + j) % kJudges;  // rotate the order every round
      const double t0 = thread_cpu_ns();
      for (long i = 0; i < n; ++i) {
        judges[k]->judge(who, dbwarden::proxy::Dialect::kPostgresql,
                         texts[static_cast<size_t>(i) % texts.size()], true, false, stores[k],
                         &v);
        kept += v.statements.front().masks.size();
        held += v.decisive.approvals != 0;
      }
      t[k].push_back((thread_cpu_ns() - t0) / static_cast<double>(n));
    }
  }
  if (kept != 0) {
    std::fprintf(stderr, "the untouched-table rule was kept for a pgbench statement\n");
    return 1;
  }
  if (held != 0) {
    std::fprintf(stderr, "the other-table approval rule held a pgbench statement\n");
    return 1;
  }
  const double base = median(t[0]);
  std::printf(
      "PolicyJudge::judge of pgbench -S's statement, ns of thread CPU per statement, "
      "median of %d rotated rounds of %ld\n",
      rounds, n);
  std::printf("guardrails                      %8.1f\n", base);
  std::printf("guardrails again (A/A)          %8.1f  (%+.1f ns)\n", median(t[1]),
              median(t[1]) - base);
  std::printf("guardrails + untouched mask rule %7.1f  (%+.1f ns)\n", median(t[2]),
              median(t[2]) - base);
  std::printf("guardrails + other-table approval rule %7.1f  (%+.1f ns)\n", median(t[3]),
              median(t[3]) - base);
  std::printf("guardrails, SQL prepared-statement store %7.1f  (%+.1f ns)\n", median(t[4]),
              median(t[4]) - base);
  return 0;
}
