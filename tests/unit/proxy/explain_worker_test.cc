// SPDX-License-Identifier: Apache-2.0
//
// The agent's own EXPLAIN worker (proxy/explain_worker.h) against sockets that fail in the
// ways a server can: one that accepts and never answers (the client-side deadline ends the
// wait and the connection), one that is not there; its bounded queue refuses and counts.
#include "proxy/explain_worker.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <string>

namespace dbwarden::proxy {
namespace {

// A private directory with a unix socket that listens and never accepts: the kernel
// completes each connect (the backlog), and no byte ever comes back.
struct SilentServer {
  std::string dir, path;
  int fd = -1;
  SilentServer() {
    char tmpl[] = "/tmp/dbw-explain-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/.s.PGSQL.5999";
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof(un)) == 0);
    REQUIRE(listen(fd, 64) == 0);
  }
  ~SilentServer() {
    close(fd);
    unlink(path.c_str());
    rmdir(dir.c_str());
  }
};

ExplainWorkerOptions Options(const std::string& socket, uint32_t timeout_ms) {
  ExplainWorkerOptions o;
  o.pg_role = "dbwarden_explain";
  o.pg_sockets[5999] = socket;
  o.path_prefix = "";  // no steering here to stay clear of
  o.timeout_ms = timeout_ms;
  return o;
}

ExplainJob Job() {
  ExplainJob j;
  j.server_port = 5999;
  j.database = "shop";
  j.client_user = "app";
  j.text = "DELETE FROM t WHERE id = 1";
  return j;
}

// Waits (up to 30 s) for `want` answers, as the proxy's loop does: on the wake-up fd.
std::vector<ExplainAnswer> Answers(ExplainWorker& w, size_t want) {
  std::vector<ExplainAnswer> got;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.size() < want && std::chrono::steady_clock::now() < until) {
    pollfd p{w.wake_fd(), POLLIN, 0};
    if (poll(&p, 1, 1000) > 0) {
      for (auto& a : w.take_answers()) got.push_back(std::move(a));
    }
  }
  return got;
}

TEST_CASE("explain worker: a server that never answers: the deadline answers, counted",
          "[proxy][blast][explain_worker]") {
  SilentServer silent;
  auto w = ExplainWorker::Start(Options(silent.path, 200));
  REQUIRE(w.ok());
  ExplainJob job = Job();
  job.ticket = w.value()->next_ticket();
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(w.value()->submit(job));
  const auto got = Answers(*w.value(), 1);
  const auto waited = std::chrono::steady_clock::now() - start;
  REQUIRE(got.size() == 1);
  CHECK(got[0].ticket == job.ticket);
  CHECK_FALSE(got[0].estimate.ok);
  CHECK(got[0].estimate.failure == "EXPLAIN through the agent's role timed out (its limit is 1 s)");
  // The server's limit and a second more on the client's side, not a hang.
  CHECK(waited < std::chrono::seconds(10));
  const ExplainWorkerStats s = w.value()->stats();
  CHECK(s.submitted == 1);
  CHECK(s.answered == 1);
  CHECK(s.timed_out == 1);
  CHECK(s.connect_failures == 1);
}

TEST_CASE("explain worker: the queue is bounded, and what does not fit is refused and counted",
          "[proxy][blast][explain_worker]") {
  SilentServer silent;
  ExplainWorkerOptions o = Options(silent.path, 100);
  o.max_queue = 2;
  auto w = ExplainWorker::Start(o);
  REQUIRE(w.ok());
  // The worker waits on the first job (about 1.1 s) while the rest arrive: at most the
  // running one and two queued are taken.
  size_t taken = 0;
  for (int i = 0; i < 5; ++i) {
    ExplainJob job = Job();
    job.ticket = w.value()->next_ticket();
    taken += w.value()->submit(job) ? 1 : 0;
  }
  CHECK(taken >= 2);
  CHECK(taken <= 3);
  ExplainWorkerStats s = w.value()->stats();
  CHECK(s.dropped == 5 - taken);
  CHECK(s.submitted == taken);
  // Every job taken is answered (none lost), each by its deadline.
  const auto got = Answers(*w.value(), taken);
  CHECK(got.size() == taken);
  for (const auto& a : got) CHECK(a.estimate.failure.find("timed out") != std::string::npos);
  // A kind without a role is refused too.
  ExplainJob my = Job();
  my.mysql = true;
  CHECK_FALSE(w.value()->submit(my));
  CHECK(w.value()->stats().dropped == 6 - taken);
}

TEST_CASE("explain worker: no socket there, or none known for the port: why, at once",
          "[proxy][blast][explain_worker]") {
  char tmpl[] = "/tmp/dbw-explain-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  auto w = ExplainWorker::Start(Options(dir + "/.s.PGSQL.5999", 2000));
  REQUIRE(w.ok());
  ExplainJob gone = Job();
  gone.ticket = 1;
  ExplainJob unknown = Job();
  unknown.ticket = 2;
  unknown.server_port = 6001;
  REQUIRE(w.value()->submit(gone));
  REQUIRE(w.value()->submit(unknown));
  const auto got = Answers(*w.value(), 2);
  REQUIRE(got.size() == 2);
  CHECK(got[0].estimate.failure.rfind("EXPLAIN through the agent's role failed: cannot connect: ",
                                      0) == 0);
  CHECK(got[0].estimate.failure.find("No such file or directory") != std::string::npos);
  CHECK(got[1].estimate.failure ==
        "EXPLAIN through the agent's role failed: no unix socket known for the server on port "
        "6001");
  rmdir(dir.c_str());
}

TEST_CASE("explain worker: nothing configured is refused at start",
          "[proxy][blast][explain_worker]") {
  auto w = ExplainWorker::Start(ExplainWorkerOptions{});
  REQUIRE_FALSE(w.ok());
  CHECK(w.status().message() == "explain worker: no role configured");
}

}  // namespace
}  // namespace dbwarden::proxy
