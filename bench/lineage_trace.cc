// SPDX-License-Identifier: Apache-2.0
//
// Column lineage (sql/lineage.h): ns per trace_pg_lineage() for five typical
// statements, against the analyser's own libpg_query parse of the same text
// (sql/pg_parse.h: pg_query_parse plus a SAX read of its JSON) measured in the
// same run, so the ratio says what following columns adds over parsing at all.
// The catalog is the unit tests' fixed in-memory one (a map lookup per
// relation, like the proxy's cache when warm). Times are this thread's CPU
// time (CLOCK_THREAD_CPUTIME_ID); best of three rounds each.
//
//   bench_lineage_trace [seconds per measurement, default 1]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../tests/unit/support/lineage_catalog.h"
#include "sql/lineage.h"
#include "sql/pg_parse.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::thread_cpu_seconds;

struct Shape {
  const char* label;
  const char* sql;
};

constexpr Shape kShapes[] = {
    {"point select", "SELECT id, name, email FROM people WHERE id = $1"},
    {"join + alias",
     "SELECT p.name AS who, o.amount, upper(o.note) FROM people p JOIN orders o ON o.person_id = "
     "p.id WHERE o.amount > 10 ORDER BY o.amount DESC LIMIT 20"},
    {"star + view", "SELECT * FROM people_v v JOIN accounts a USING (id) WHERE a.card IS NOT NULL"},
    {"cte + union",
     "WITH recent AS (SELECT person_id, max(amount) AS top FROM orders GROUP BY person_id) SELECT "
     "p.ssn, r.top FROM people p JOIN recent r ON r.person_id = p.id UNION ALL SELECT card, 0 "
     "FROM accounts"},
    {"update returning",
     "UPDATE accounts SET card = $1 WHERE person_id = (SELECT id FROM people WHERE email = $2) "
     "RETURNING id, card"},
};

// ns per call of f, over at least `seconds` of CPU time.
template <typename F>
double ns_per_call(double seconds, F&& f) {
  size_t done = 0;
  const double start = thread_cpu_seconds();
  double took = 0;
  do {
    for (int i = 0; i < 100; ++i) f();
    done += 100;
    took = thread_cpu_seconds() - start;
  } while (took < seconds);
  return took * 1e9 / static_cast<double>(done);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  dbw_test::FixedCatalog catalog;
  size_t sink = 0;
  std::printf("%-17s %6s %12s %12s %7s\n", "statement", "bytes", "parse ns", "lineage ns", "ratio");
  double sum_parse = 0, sum_trace = 0;
  for (const Shape& s : kShapes) {
    const std::string sql = s.sql;
    const dbwarden::sql::Lineage check = dbwarden::sql::trace_pg_lineage(sql, catalog);
    if (!check.traced) {
      std::fprintf(stderr, "%s: not traced: %s\n", s.label, check.why.c_str());
      return 1;
    }
    double parse = 1e30, trace = 1e30;
    for (int round = 0; round < 3; ++round) {
      parse = std::min(parse, ns_per_call(seconds, [&] {
                         dbwarden::sql::ParsedStatement p;
                         sink += dbwarden::sql::pg_parse(sql, p);
                       }));
      trace = std::min(trace, ns_per_call(seconds, [&] {
                         sink += dbwarden::sql::trace_pg_lineage(sql, catalog).columns.size();
                       }));
    }
    sum_parse += parse;
    sum_trace += trace;
    std::printf("%-17s %6zu %12.0f %12.0f %7.2f\n", s.label, sql.size(), parse, trace,
                trace / parse);
  }
  std::printf("%-17s %6s %12.0f %12.0f %7.2f\n", "mean", "", sum_parse / 5, sum_trace / 5,
              sum_trace / sum_parse);
  if (sink == 0) std::puts("");  // keeps the work observable
  return 0;
}
