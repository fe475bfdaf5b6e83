// SPDX-License-Identifier: Apache-2.0
//
// What keeping PII out of the audit trail costs per record (issue 13, item 4): the agent's
// Pipeline::on_statement (credential redaction, analysis, then every output) with
//   off   no policy: the baseline, measured in the same run;
//   on    a policy whose mask rules name every built-in detector: the text, the bound
//         values, the error message and the summary are scanned, and items masked.
// On a pgbench-like mix with bound values where 1 % of the records hold a detectable item
// (a card, an e-mail, a token). The outputs are one sink that keeps nothing. Rounds
// alternate between off and on; medians of ns of this thread's CPU per record, with the
// ratio and the difference.
//
//   bench_pipeline_scrub [rounds, default 9] [records per round, default 300000]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/content_scrub.h"
#include "agent/pipeline.h"
#include "policy/policy.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::thread_cpu_ns;
using dbwarden::bench::median;

using dbwarden::ConnectionInfo;
using dbwarden::Statement;

class NullSink : public dbwarden::StatementSink {
 public:
  void on_statement(const Statement& s) override { bytes += s.text.size(); }
  size_t bytes = 0;
};

std::vector<Statement> mix(const ConnectionInfo* c) {
  std::vector<Statement> out;
  auto add = [&](std::string text, std::vector<std::optional<std::string>> params,
                 std::string error = "") {
    Statement s;
    s.connection = c;
    s.text = std::move(text);
    s.parameters = std::move(params);
    if (!error.empty()) {
      s.status_code = "22P02";
      s.error_message = std::move(error);
    }
    out.push_back(std::move(s));
  };
  // 99 ordinary records ...
  for (int i = 0; i < 33; ++i) {
    add("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
        {std::to_string(i * 7 % 5000 - 2500), std::to_string(100000 + i * 7919)});
    add("SELECT abalance FROM pgbench_accounts WHERE aid = $1", {std::to_string(4242 + i)});
    add("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
        "CURRENT_TIMESTAMP)",
        {std::to_string(i), "1", std::to_string(77 + i), "-1234"});
  }
  // ... and one that holds a card and an e-mail.
  add("INSERT INTO customers (name, email, card) VALUES ($1, $2, $3)",
      {std::string("Carol Example"), std::string("carol@example.org"),
       std::string("4539578763621486")});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 9;
  const size_t per_round = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 300000;
  auto loaded = dbwarden::policy::Policy::load_string(
      "rules:\n"
      "  - name: pii\n"
      "    action: mask\n"
      "    detectors: [email, payment_card, iban, phone, us_ssn, token]\n",
      "bench");
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().message().c_str());
    return 1;
  }
  ConnectionInfo c;
  c.db_system = "postgresql";
  c.user = "app";
  const std::vector<Statement> records = mix(&c);
  NullSink sink;
  dbwarden::agent::ContentScrub off, on;
  on.set(loaded.value());
  dbwarden::agent::Pipeline pipeline({&sink});
  std::vector<double> off_ns, on_ns;
  for (int r = 0; r < rounds; ++r) {
    for (int which = 0; which < 2; ++which) {
      pipeline.set_scrub(which == 0 ? &off : &on);
      const double t0 = thread_cpu_ns();
      for (size_t i = 0; i < per_round; ++i) pipeline.on_statement(records[i % records.size()]);
      const double per = (thread_cpu_ns() - t0) / static_cast<double>(per_round);
      (which == 0 ? off_ns : on_ns).push_back(per);
    }
  }
  const double a = median(off_ns), b = median(on_ns);
  std::printf("engine %s, %zu records per round, %d rounds, 1 %% with items\n",
              loaded.value()->masker()->engine_name().data(), per_round, rounds);
  std::printf("detectors off: %.0f ns/record  on: %.0f ns/record  ratio %.3f  +%.0f ns/record\n", a,
              b, b / a, b - a);
  std::printf("items masked: %llu (sink saw %zu bytes)\n",
              static_cast<unsigned long long>(on.items()), sink.bytes);
  return 0;
}
