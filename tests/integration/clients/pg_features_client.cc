// SPDX-License-Identifier: Apache-2.0
//
// libpq client for the protocol-features integration test
// (test_pg_protocol_features.py). Connection settings come from the PG*
// environment. Modes:
//   pipeline  libpq pipeline mode: several Parse/Bind/Execute groups, text and
//             binary parameters, a failing statement and one the server skips,
//             all before one Sync; prints each result's status.
//   prepared  PQprepare "dbw_early", prints "prepared", waits for a line on
//             stdin (the test starts the agent meanwhile), then executes it
//             twice and prints "done".
//   cancel    runs pg_sleep(30), sends a CancelRequest after 1 s (PQcancel, a
//             connection of its own) and prints the SQLSTATE it got.
//   held-delete  BEGIN, then DELETE FROM blast_t WHERE id <= $1 with $1 = 100 as a binary
//             int4 (Parse and Bind in one write), which an approval rule holds
//             (test_approvals_blast.py); prints its result status and SQLSTATE.
//   split SQL VALUE
//             pipeline mode, the unnamed statement: the Parse of SQL (one int4
//             parameter) written alone (PQflush), then after 0.5 s the Bind with
//             VALUE, Describe, Execute and Sync in a second write; prints each
//             result's status and, for the statement, its command tag
//             ("tag: DELETE 100"). Exit 0 when both succeeded.
// Exit code 0 when everything went as the mode expects, 1 otherwise.
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr Oid kInt4 = 23;
constexpr Oid kText = 25;

bool Expect(PGresult* r, ExecStatusType want, const char* what) {
  const ExecStatusType got = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::printf("%s: %s %s\n", what, PQresStatus(got), state ? state : "");
  PQclear(r);
  return got == want;
}

int Pipeline(PGconn* c) {
  bool ok = Expect(PQexec(c, "DROP TABLE IF EXISTS pipe_t"), PGRES_COMMAND_OK, "drop");
  ok = Expect(PQexec(c, "CREATE TABLE pipe_t (id int, name text)"), PGRES_COMMAND_OK,
              "create") && ok;
  if (PQenterPipelineMode(c) != 1) return 1;
  const char* insert = "INSERT INTO pipe_t VALUES ($1, $2)";
  const Oid types[2] = {kInt4, kText};
  for (int i = 1; i <= 3; ++i) {
    const std::string id = std::to_string(i), name = "name-" + id;
    const char* values[2] = {id.c_str(), name.c_str()};
    if (PQsendQueryParams(c, insert, 2, types, values, nullptr, nullptr, 0) != 1) return 1;
  }
  // A binary int4 parameter with its type given: decoded by the agent as "2".
  const uint32_t two = htonl(2);
  const char* bin_values[1] = {reinterpret_cast<const char*>(&two)};
  const int bin_lengths[1] = {4};
  const int bin_formats[1] = {1};
  const Oid bin_types[1] = {kInt4};
  if (PQsendQueryParams(c, "SELECT id, name FROM pipe_t WHERE id >= $1 ORDER BY id", 1,
                        bin_types, bin_values, bin_lengths, bin_formats, 0) != 1) {
    return 1;
  }
  if (PQsendQueryParams(c, "SELECT 1/0 AS boom", 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) {
    return 1;
  }
  // Skipped by the server after the error: never logged, never audited.
  if (PQsendQueryParams(c, "SELECT 'skipped' AS never", 0, nullptr, nullptr, nullptr, nullptr,
                        0) != 1) {
    return 1;
  }
  if (PQpipelineSync(c) != 1) return 1;
  const ExecStatusType want[] = {PGRES_COMMAND_OK, PGRES_COMMAND_OK, PGRES_COMMAND_OK,
                                 PGRES_TUPLES_OK, PGRES_FATAL_ERROR, PGRES_PIPELINE_ABORTED};
  for (ExecStatusType w : want) {
    ok = Expect(PQgetResult(c), w, "pipelined") && ok;
    PGresult* end = PQgetResult(c);  // nullptr ends each query's results
    if (end != nullptr) {
      PQclear(end);
      ok = false;
    }
  }
  ok = Expect(PQgetResult(c), PGRES_PIPELINE_SYNC, "sync") && ok;
  if (PQexitPipelineMode(c) != 1) ok = false;
  return ok ? 0 : 1;
}

int Prepared(PGconn* c) {
  const Oid types[1] = {kInt4};
  if (!Expect(PQprepare(c, "dbw_early", "SELECT $1::int + 1 AS next", 1, types),
              PGRES_COMMAND_OK, "prepare")) {
    return 1;
  }
  std::printf("prepared\n");
  std::fflush(stdout);
  char line[64];
  if (std::fgets(line, sizeof(line), stdin) == nullptr) return 1;
  bool ok = true;
  for (const char* v : {"41", "6"}) {
    const char* values[1] = {v};
    ok = Expect(PQexecPrepared(c, "dbw_early", 1, values, nullptr, nullptr, 0), PGRES_TUPLES_OK,
                "execute") && ok;
  }
  std::printf("done\n");
  return ok ? 0 : 1;
}

int Cancel(PGconn* c) {
  if (PQsendQuery(c, "SELECT pg_sleep(30)") != 1) return 1;
  sleep(1);
  PGcancel* cancel = PQgetCancel(c);
  char err[256] = {};
  const int sent = cancel ? PQcancel(cancel, err, sizeof(err)) : 0;
  PQfreeCancel(cancel);
  if (sent != 1) {
    std::fprintf(stderr, "cancel failed: %s\n", err);
    return 1;
  }
  bool ok = false;
  while (PGresult* r = PQgetResult(c)) {
    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    std::printf("cancelled: %s\n", state ? state : "none");
    ok = ok || (state != nullptr && std::strcmp(state, "57014") == 0);
    PQclear(r);
  }
  return ok ? 0 : 1;
}

// A Parse and its Bind in separate writes (a driver that writes message by message).
int Split(PGconn* c, const char* sql, const char* value) {
  if (PQenterPipelineMode(c) != 1) return 1;
  const Oid types[1] = {kInt4};
  if (PQsendPrepare(c, "", sql, 1, types) != 1 || PQflush(c) != 0) return 1;
  usleep(500 * 1000);
  const char* values[1] = {value};
  if (PQsendQueryPrepared(c, "", 1, values, nullptr, nullptr, 0) != 1) return 1;
  if (PQpipelineSync(c) != 1) return 1;
  bool ok = Expect(PQgetResult(c), PGRES_COMMAND_OK, "parse");
  if (PGresult* end = PQgetResult(c)) {
    PQclear(end);
    ok = false;
  }
  PGresult* r = PQgetResult(c);
  if (r != nullptr && PQresultStatus(r) == PGRES_COMMAND_OK) {
    std::printf("tag: %s\n", PQcmdStatus(r));
  }
  ok = Expect(r, PGRES_COMMAND_OK, "execute") && ok;
  if (PGresult* end = PQgetResult(c)) {
    PQclear(end);
    ok = false;
  }
  ok = Expect(PQgetResult(c), PGRES_PIPELINE_SYNC, "sync") && ok;
  if (PQexitPipelineMode(c) != 1) ok = false;
  return ok ? 0 : 1;
}

}  // namespace

int HeldDelete(PGconn* c) {
  if (!Expect(PQexec(c, "BEGIN"), PGRES_COMMAND_OK, "begin")) return 1;
  const Oid types[1] = {kInt4};
  const uint32_t hundred = htonl(100);
  const char* values[1] = {reinterpret_cast<const char*>(&hundred)};
  const int lengths[1] = {4};
  const int formats[1] = {1};
  std::printf("sent\n");
  std::fflush(stdout);
  Expect(PQexecParams(c, "DELETE FROM blast_t WHERE id <= $1", 1, types, values, lengths,
                      formats, 0),
         PGRES_COMMAND_OK, "delete");
  return 0;
}

int main(int argc, char** argv) {
  const bool split = argc == 4 && std::string(argv[1]) == "split";
  if (argc != 2 && !split) {
    std::fprintf(stderr, "usage: %s pipeline|prepared|cancel|held-delete|split SQL VALUE\n",
                 argv[0]);
    return 2;
  }
  PGconn* c = PQconnectdb("");
  if (PQstatus(c) != CONNECTION_OK) {
    std::fprintf(stderr, "connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return 1;
  }
  const std::string mode = argv[1];
  int rc = 2;
  if (mode == "pipeline") rc = Pipeline(c);
  if (mode == "prepared") rc = Prepared(c);
  if (mode == "cancel") rc = Cancel(c);
  if (mode == "held-delete") rc = HeldDelete(c);
  if (split) rc = Split(c, argv[2], argv[3]);
  PQfinish(c);
  return rc;
}
