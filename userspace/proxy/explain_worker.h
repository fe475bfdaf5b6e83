// SPDX-License-Identifier: Apache-2.0
//
// The blast radius's middle fallback (issue 14, item 2): when the held client's own session
// cannot run the EXPLAIN (inside a transaction, still answering), the agent runs it on a
// connection of its own, as a configured role, on one worker thread, so that the proxy's
// thread never waits for a server. No password is stored anywhere:
// - PostgreSQL: libpq over the server's unix socket, as the agent's own OS user, with
//   `peer` authentication mapped (pg_ident) to the configured role;
// - MySQL / MariaDB: libmariadb over the server's unix socket with `unix_socket`
//   authentication, which names the account by the OS user at connect: the worker thread
//   takes that OS user's uid, gid and groups for the connect only (credentials.h), so the
//   account of the same name logs in and nothing more.
// The connection goes to the server's socket by its /proc/self/root/ path: steering rewrites
// the paths clients use (steering.h) and must not send the agent's own connection back to
// its proxy, where it would be judged and recorded as a client's. The observer skips every
// connection of the agent's own process (observer.h), so none of it reaches the trail.
//
// Each EXPLAIN, in a transaction that can change nothing and a 2 s limit on the server, and
// the client side bounded too (connect and each read: a deadline, after which the
// connection is dropped):
//   PostgreSQL  BEGIN READ ONLY; SET LOCAL statement_timeout = <limit>;
//               SELECT set_config('search_path', <the client's>, true);
//               EXPLAIN (FORMAT JSON) <statement>  -- with the Bind's types and values
//               ROLLBACK
//   MariaDB     USE <database>; SET STATEMENT max_statement_time=2, lock_wait_timeout=2 FOR
//               EXPLAIN FORMAT=JSON <statement>  (MySQL: no SET STATEMENT, mysql_explain.h)
//               Not in a READ ONLY transaction: MariaDB refuses EXPLAIN UPDATE / DELETE in
//               one (25006). The text holds no ';', so the server runs the EXPLAIN alone.
// Never ANALYZE. The plan goes through the same readers as on the client's session
// (explain_estimate.h). One connection per (server socket, database) is kept, closed after
// `idle_close_ms` unused, at most `max_connections` (the least recently used goes first).
//
// Jobs wait in a bounded queue; one that does not fit is refused and counted (`dropped`).
// Answers are taken on the proxy's thread after wake_fd() (an eventfd) becomes readable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "proxy/explain_estimate.h"

namespace dbwarden::proxy {

struct ExplainWorkerOptions {
  std::string pg_role;     // empty: no PostgreSQL EXPLAIN of the agent's own
  std::string mysql_user;  // empty: none for MySQL / MariaDB
  // The servers' unix sockets by the port they stand for (.s.PGSQL.5432: 5432; MySQL's by
  // its TCP port): a statement goes to the server its client was going to.
  std::map<uint16_t, std::string> pg_sockets, mysql_sockets;
  size_t max_queue = 64;
  uint32_t timeout_ms = kExplainTimeoutMs;  // on the server; the client waits a second more
  uint32_t idle_close_ms = 60'000;
  size_t max_connections = 16;
  // Tests: the path prefix that keeps the connection off steering ("/proc/self/root").
  std::string path_prefix = "/proc/self/root";
};

struct ExplainJob {
  uint64_t ticket = 0;  // the asker's, echoed in the answer
  bool mysql = false;
  bool mariadb = false;  // MySQL protocol: MariaDB's SET STATEMENT form
  uint16_t server_port = 0;
  std::string database;
  std::string client_user;  // PostgreSQL: its default search_path ("$user", public)
  std::string text;
  // PostgreSQL: the parameters of the statement's Bind, as it sent them.
  std::vector<uint32_t> types;
  std::vector<std::optional<std::string>> values;
  std::vector<int> formats;  // per value: 0 text, 1 binary
};

struct ExplainAnswer {
  uint64_t ticket = 0;
  BlastEstimate estimate;  // !ok: failure says why, for "estimate unavailable: ..."
};

struct ExplainWorkerStats {
  uint64_t submitted = 0, answered = 0, dropped = 0, timed_out = 0, connects = 0,
           connect_failures = 0;
};

class ExplainWorker {
 public:
  static Result<std::unique_ptr<ExplainWorker>> Start(ExplainWorkerOptions options);
  ~ExplainWorker();  // stops the thread; queued jobs are dropped unanswered
  ExplainWorker(const ExplainWorker&) = delete;
  ExplainWorker& operator=(const ExplainWorker&) = delete;

  // The role the estimates of kind `mysql` are obtained as ("" when not configured).
  const std::string& role(bool mysql) const;
  // Queues `job`; false (counted in `dropped`) when the queue is full or the kind has no
  // role configured.
  bool submit(ExplainJob job);
  // Readable when answers wait; take them all (any thread, the proxy's in practice).
  int wake_fd() const;
  std::vector<ExplainAnswer> take_answers();
  uint64_t next_ticket();
  ExplainWorkerStats stats() const;

  struct Impl;

 private:
  explicit ExplainWorker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "explain through the agent's role NAME", as RequestSpec::blast_via says it.
std::string BlastViaRole(std::string_view role);

}  // namespace dbwarden::proxy
