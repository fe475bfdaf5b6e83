// SPDX-License-Identifier: Apache-2.0
//
// Normalise + classify throughput, statements/s on one core, for both
// dialects, through the same Analyzer the agent's pipeline calls:
//   warm  a realistic mix of statement shapes with fresh literal values each
//         time: every statement after the first round hits the cache
//         (tokenise + normalise + hash + lookup);
//   cold  every statement has a shape never seen before (a distinct column
//         name), so each one misses: PostgreSQL runs libpg_query, MySQL the
//         token classifier.
//   redact the warm mix again with credential redaction in the same token pass
//         (sql/redact.h, what the agent's pipeline runs): none of these
//         statements holds a credential, so this is the cost every statement
//         pays; "+ns" is what it adds per statement to warm, measured in
//         alternating rounds against it (best of three each).
// As a baseline measured in the same run it also times the tokeniser alone.
// Rates are per second of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
//
//   bench_sql_analyze [seconds per measurement, default 2]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sql/analyzer.h"
#include "sql/normalize.h"
#include "sql/redact.h"

namespace {

using dbwarden::sql::Analyzer;
using dbwarden::sql::AnalyzerOptions;
using dbwarden::sql::Dialect;

// Shapes seen in OLTP traffic (pgbench, an ORM, a job queue); %d is replaced
// with a value, %c with a column suffix (cold runs).
const std::vector<std::string>& shapes(Dialect d) {
  static const std::vector<std::string> pg = {
      "SELECT abalance%c FROM pgbench_accounts WHERE aid = %d",
      "UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %d",
      "INSERT INTO pgbench_history (tid, bid, aid, delta%c, mtime) VALUES (%d, %d, %d, %d, "
      "CURRENT_TIMESTAMP)",
      "SELECT u.id, u.email%c, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id "
      "= %d AND o.status IN ('open', 'paid', 'shipped') ORDER BY o.created_at DESC LIMIT 20",
      "BEGIN",
      "COMMIT",
      "WITH recent AS (SELECT id FROM events WHERE ts > now() - interval '%d minutes') SELECT "
      "count(*) AS n%c FROM recent",
      "DELETE FROM jobs WHERE id = %d AND locked_by%c = 'worker-%d'",
      "SELECT * FROM public.sessions WHERE token%c = 'a8f5f167f44f4964e6c998dee827110c' AND "
      "expires > %d",
      "UPDATE jobs SET state = 'running', locked_by%c = 'w%d' WHERE id = (SELECT id FROM jobs "
      "WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
  };
  static const std::vector<std::string> my = {
      "SELECT abalance%c FROM accounts WHERE aid = %d",
      "UPDATE accounts SET abalance = abalance + %d WHERE aid = %d",
      "INSERT INTO history (tid, bid, aid, delta%c, mtime) VALUES (%d, %d, %d, %d, NOW())",
      "SELECT u.id, u.email%c, o.total FROM `users` u JOIN `orders` o ON o.user_id = u.id WHERE "
      "u.id = %d AND o.status IN ('open', 'paid', 'shipped') ORDER BY o.created_at DESC LIMIT 20",
      "BEGIN",
      "COMMIT",
      "SELECT /*!40001 SQL_NO_CACHE */ COUNT(*) AS n%c FROM events WHERE ts > NOW() - INTERVAL "
      "%d MINUTE",
      "DELETE FROM jobs WHERE id = %d AND locked_by%c = 'worker-%d'",
      "SELECT * FROM app.sessions WHERE token%c = 'a8f5f167f44f4964e6c998dee827110c' AND expires "
      "> %d",
      "INSERT INTO kv (k%c, v) VALUES ('key-%d', 'v'), ('key-%d', 'w') ON DUPLICATE KEY UPDATE v "
      "= VALUES(v)",
  };
  return d == Dialect::kMysql ? my : pg;
}

std::string fill(const std::string& shape, unsigned value, unsigned column) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == '%' && i + 1 < shape.size() && shape[i + 1] == 'd') {
      out += std::to_string(value);
      value = value * 2654435761u + 12345u;
      ++i;
    } else if (shape[i] == '%' && i + 1 < shape.size() && shape[i + 1] == 'c') {
      if (column != 0) out += "_" + std::to_string(column);
      ++i;
    } else {
      out += shape[i];
    }
  }
  return out;
}

// Pre-built texts so that building them is not timed.
std::vector<std::string> texts(Dialect d, size_t n, bool cold) {
  const auto& s = shapes(d);
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(fill(s[i % s.size()], static_cast<unsigned>(i * 7919 + 1),
                       cold ? static_cast<unsigned>(i + 1) : 0));
  }
  return out;
}

// This thread's CPU time: "per core" even when other work shares the cores.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

template <typename F>
double rate(double seconds, const std::vector<std::string>& in, F&& f) {
  size_t done = 0;
  const double start = cpu_seconds();
  double took = 0;
  do {
    for (const std::string& t : in) f(t);
    done += in.size();
    took = cpu_seconds() - start;
  } while (took < seconds);
  return static_cast<double>(done) / took;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  std::printf("%-11s %12s %12s %12s %8s %8s %12s %10s\n", "dialect", "tokenise/s", "warm/s",
              "redact/s", "ratio", "+ns", "cold/s", "cold miss%");
  for (Dialect d : {Dialect::kPostgresql, Dialect::kMysql}) {
    const char* name = d == Dialect::kMysql ? "mysql" : "postgresql";
    const std::vector<std::string> warm_in = texts(d, 10000, false);
    std::vector<dbwarden::sql::Token> tokens;
    size_t sink = 0;
    const double tok = rate(seconds, warm_in, [&](const std::string& t) {
      dbwarden::sql::tokenize(d, {}, t, tokens);
      sink += tokens.size();
    });
    Analyzer warm;
    dbwarden::sql::Redaction redaction;
    for (const std::string& t : warm_in) warm.analyze(d, t);  // fill the cache
    // Alternating rounds on the same analyser and cache: the machine's
    // drift (other engineers' builds) hits both sides alike.
    double warm_rate = 0, redact_rate = 0;
    for (int round = 0; round < 3; ++round) {
      warm_rate = std::max(warm_rate, rate(seconds, warm_in, [&](const std::string& t) {
                             sink += warm.analyze(d, t).summary.size();
                           }));
      redact_rate = std::max(redact_rate, rate(seconds, warm_in, [&](const std::string& t) {
                               sink += warm.analyze(d, t, redaction).summary.size();
                               sink += redaction.any();
                             }));
    }
    // Cold: more distinct shapes than the cache holds, each seen once per pass.
    AnalyzerOptions cold_options;
    cold_options.cache.max_entries = 1000;
    Analyzer cold(cold_options);
    const std::vector<std::string> cold_in = texts(d, 20000, true);
    const double cold_rate = rate(
        seconds, cold_in, [&](const std::string& t) { sink += cold.analyze(d, t).summary.size(); });
    const auto c = cold.counters();
    std::printf("%-11s %12.0f %12.0f %12.0f %8.3f %8.1f %12.0f %9.1f%%\n", name, tok, warm_rate,
                redact_rate, redact_rate / warm_rate, 1e9 / redact_rate - 1e9 / warm_rate,
                cold_rate,
                100.0 * static_cast<double>(c.cache_misses) / static_cast<double>(c.statements));
    if (sink == 0) std::puts("");  // keeps the work observable
  }
  return 0;
}
