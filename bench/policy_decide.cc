// SPDX-License-Identifier: Apache-2.0
//
// What judging a statement costs the proxy: Policy::decide() per statement,
// ns of this thread's CPU time, for
//   empty       `rules: []`, the baseline measured in the same run (the walk
//               itself, building the Decision);
//   guardrails  the shipped packaging/policy.yaml (6 rules);
//   large       the guardrails behind 40 identity rules (users, CIDRs, units)
//               and 4 regex rules that never match: a large site policy.
// On an OLTP mix where no rule fires (every rule is walked) and on the
// statements the guardrails block. The analyses are made once beforehand:
// the analyser's own cost is in bench_sql_analyze. Rounds alternate between
// the policies; the medians are printed with the ratio to the empty policy.
//
//   bench_policy_decide [rounds, default 9] [decisions per round, default 2000000]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "policy_file.h"
#include "sql/analyzer.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::thread_cpu_ns;
using dbwarden::bench::median;

using dbwarden::ConnectionInfo;
using dbwarden::policy::Action;
using dbwarden::policy::Policy;
using dbwarden::sql::Analysis;
using dbwarden::sql::Dialect;

struct Statement {
  Analysis analysis;
  std::string text;
};

std::vector<Statement> analyse(Dialect d, const std::vector<std::string>& texts) {
  dbwarden::sql::Analyzer analyzer;
  std::vector<Statement> out;
  for (const std::string& t : texts) out.push_back({analyzer.analyze(d, t), t});
  return out;
}

std::vector<Statement> oltp() {
  auto pg = analyse(Dialect::kPostgresql,
                    {"SELECT abalance FROM pgbench_accounts WHERE aid = 42",
                     "UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 42",
                     "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, "
                     "4, CURRENT_TIMESTAMP)",
                     "SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE "
                     "u.id = 7 ORDER BY o.created_at DESC LIMIT 20",
                     "BEGIN", "COMMIT", "DELETE FROM jobs WHERE id = 9 AND locked_by = 'w1'"});
  auto my = analyse(Dialect::kMysql,
                    {"SELECT abalance FROM accounts WHERE aid = 42",
                     "UPDATE accounts SET abalance = abalance + 5 WHERE aid = 42",
                     "INSERT INTO kv (k, v) VALUES ('a', 'b') ON DUPLICATE KEY UPDATE v = "
                     "VALUES(v)"});
  pg.insert(pg.end(), my.begin(), my.end());
  return pg;
}

std::vector<Statement> blocked() {
  auto pg = analyse(Dialect::kPostgresql,
                    {"DROP TABLE accounts", "DELETE FROM accounts", "ALTER TABLE t DROP COLUMN c",
                     "GRANT SELECT ON t TO PUBLIC", "COPY t TO PROGRAM 'cat'", "CREATE ROLE x"});
  auto my = analyse(Dialect::kMysql, {"TRUNCATE TABLE orders", "UPDATE orders SET a = 1"});
  pg.insert(pg.end(), my.begin(), my.end());
  return pg;
}

std::shared_ptr<const Policy> load(const std::string& yaml, const char* name) {
  auto p = Policy::load_string(yaml, name);
  if (!p.ok()) {
    std::fprintf(stderr, "%s\n", p.status().message().c_str());
    std::exit(1);
  }
  return p.value();
}

std::string large_policy(const std::string& guardrails) {
  std::string y = "rules:\n";
  for (int i = 0; i < 40; ++i) {
    y += "  - name: team-" + std::to_string(i) + "\n    match: {user: [svc_" +
         std::to_string(i) + ", batch_" + std::to_string(i) + "], client_cidr: 10." +
         std::to_string(i) + ".0.0/16, unit: 'team-" + std::to_string(i) +
         "-*.service', operation: DROP}\n    action: allow\n";
  }
  for (int i = 0; i < 4; ++i) {
    y += "  - name: watch-" + std::to_string(i) + "\n    match: {regex: 'FROM secret_" +
         std::to_string(i) + "[a-z]*\\b'}\n    action: log\n";
  }
  return y + guardrails.substr(guardrails.find("rules:\n") + 7);
}

// ns per decision of `policy` over `statements`, cycled `n` times in all.
double per_decision(const Policy& policy, const ConnectionInfo& who,
                    const std::vector<Statement>& statements, long n, unsigned& sink) {
  const double t0 = thread_cpu_ns();
  for (long i = 0; i < n; ++i) {
    const Statement& s = statements[static_cast<size_t>(i) % statements.size()];
    const auto d = policy.decide(who, s.analysis, s.text);
    sink += static_cast<unsigned>(d.action) + static_cast<unsigned>(d.rule.size());
  }
  return (thread_cpu_ns() - t0) / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 9;
  const long n = argc > 2 ? std::atol(argv[2]) : 2000000;
  const std::string guardrails_yaml = dbwarden::bench::read_policy_file(DBW_POLICY_FILE);
  struct Config {
    const char* name;
    std::shared_ptr<const Policy> policy;
  };
  const Config configs[] = {
      {"empty", load("rules: []\n", "empty")},
      {"guardrails", load(guardrails_yaml, DBW_POLICY_FILE)},
      {"large", load(large_policy(guardrails_yaml), "large")},
  };
  ConnectionInfo who;
  who.db_system = "postgresql";
  who.user = "app";
  who.database = "shop";
  who.client_address = "192.168.10.20";
  who.peer.pid = 0;

  struct Mix {
    const char* name;
    std::vector<Statement> statements;
  };
  const Mix mixes[] = {{"oltp (nothing fires)", oltp()}, {"guardrail hits", blocked()}};
  unsigned sink = 0;
  std::printf("policy decide(): ns of thread CPU per decision, median of %d alternated rounds "
              "of %ld decisions\n\n",
              rounds, n);
  std::printf("%-22s %-12s %7s %7s %9s\n", "mix", "policy", "rules", "ns", "vs empty");
  for (const Mix& mix : mixes) {
    std::vector<std::vector<double>> times(std::size(configs));
    for (int r = 0; r < rounds; ++r) {
      for (size_t c = 0; c < std::size(configs); ++c) {
        // Alternate the order every round so that drift does not favour one policy.
        const size_t k = r % 2 ? std::size(configs) - 1 - c : c;
        times[k].push_back(per_decision(*configs[k].policy, who, mix.statements, n, sink));
      }
    }
    const double base = median(times[0]);
    for (size_t c = 0; c < std::size(configs); ++c) {
      const double m = median(times[c]);
      std::printf("%-22s %-12s %7zu %7.1f %8.2fx\n", mix.name, configs[c].name,
                  configs[c].policy->rule_count(), m, m / base);
    }
  }
  // The blocked mix must really be blocked by the guardrails: a bench that
  // measured the wrong thing would say nothing.
  for (const Statement& s : mixes[1].statements) {
    if (configs[1].policy->decide(who, s.analysis, s.text).action != Action::kBlock) {
      std::fprintf(stderr, "not blocked: %s\n", s.text.c_str());
      return 1;
    }
  }
  return sink == 42 ? 2 : 0;
}
