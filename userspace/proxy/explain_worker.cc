// SPDX-License-Identifier: Apache-2.0
#include "proxy/explain_worker.h"

#include <grp.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <tuple>

#include "proxy/credentials.h"
#include "proxy/mysql_explain.h"

namespace dbwarden::proxy {

namespace {

uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

constexpr std::string_view kFailed = "EXPLAIN through the agent's role failed: ";

// The first line of a library's error text, at most 160 bytes.
std::string FirstLine(std::string_view text) { return ExplainMessageLine(text); }

BlastEstimate Failed(std::string why) {
  BlastEstimate e;
  e.failure = std::move(why);
  return e;
}

// A server's refusal of the EXPLAIN, as the client's-session path words it, said to be the
// role's.
BlastEstimate ServerFailure(std::string_view sqlstate, std::string_view message) {
  std::string why = ExplainFailure(sqlstate, message);
  constexpr std::string_view kPlain = "EXPLAIN failed: ";
  if (why.starts_with(kPlain)) return Failed(std::string(kFailed) + why.substr(kPlain.size()));
  return Failed("EXPLAIN through the agent's role " + why);  // "timed out (...)"
}

BlastEstimate TimedOut(uint32_t timeout_ms) {
  return Failed("EXPLAIN through the agent's role timed out (its limit is " +
                std::to_string((timeout_ms + 999) / 1000) + " s)");
}

// Waits until `fd` is ready (for writing or reading) or `deadline_ms` passes.
bool WaitFd(int fd, bool for_write, uint64_t deadline_ms) {
  for (;;) {
    const uint64_t now = monotonic_ms();
    if (now >= deadline_ms) return false;
    pollfd p{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    const int n = poll(&p, 1, static_cast<int>(deadline_ms - now));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

// A double-quoted identifier, as PostgreSQL's quote_ident writes one.
std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

struct PgOutcome {
  bool ok = false;
  bool timed_out = false;
  bool broken = false;                   // the connection is unusable
  std::string sqlstate, message, value;  // value: the first row's first column
};

PgOutcome PgCollect(PGconn* c, uint64_t deadline_ms);

// `sent`: whether the library took the query; then its results.
PgOutcome PgAfterSend(PGconn* c, bool sent, uint64_t deadline_ms) {
  if (sent) return PgCollect(c, deadline_ms);
  PgOutcome o;
  o.broken = true;
  o.message = PQerrorMessage(c);
  return o;
}

// The results of what was sent on `c`, read until the last one or the deadline.
PgOutcome PgCollect(PGconn* c, uint64_t deadline_ms) {
  PgOutcome o;
  o.ok = true;
  for (;;) {
    while (PQflush(c) == 1) {
      if (!WaitFd(PQsocket(c), true, deadline_ms)) {
        o.ok = false;
        o.timed_out = o.broken = true;
        return o;
      }
    }
    while (PQisBusy(c)) {
      if (!WaitFd(PQsocket(c), false, deadline_ms)) {
        o.ok = false;
        o.timed_out = o.broken = true;
        return o;
      }
      if (!PQconsumeInput(c)) {
        o.ok = false;
        o.broken = true;
        o.message = PQerrorMessage(c);
        return o;
      }
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr) break;
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_FATAL_ERROR) {
      if (o.ok) {
        o.ok = false;
        const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        o.sqlstate = state ? state : "";
        o.message = primary ? primary : PQresultErrorMessage(r);
      }
    } else if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0 && o.value.empty()) {
      if (static_cast<size_t>(PQgetlength(r, 0, 0)) <= kMaxExplainJson) {
        o.value.assign(PQgetvalue(r, 0, 0), static_cast<size_t>(PQgetlength(r, 0, 0)));
      }
    }
    PQclear(r);
  }
  if (PQstatus(c) != CONNECTION_OK) {
    o.ok = false;
    o.broken = true;
    if (o.message.empty()) o.message = PQerrorMessage(c);
  }
  return o;
}

struct Cached {
  PGconn* pg = nullptr;
  MYSQL* my = nullptr;
  uint64_t used_ms = 0;
};

void Close(Cached& c) {
  if (c.pg != nullptr) PQfinish(c.pg);
  if (c.my != nullptr) mysql_close(c.my);
  c.pg = nullptr;
  c.my = nullptr;
}

}  // namespace

std::string BlastViaRole(std::string_view role) {
  return "explain through the agent's role " + std::string(role) +
         ", which sees committed data only";
}

struct ExplainWorker::Impl {
  ExplainWorkerOptions opt;
  int wake = -1;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<ExplainJob> queue;
  std::vector<ExplainAnswer> answers;
  bool stop = false;
  std::thread thread;
  std::atomic<uint64_t> tickets{0};
  std::atomic<uint64_t> submitted{0}, answered{0}, dropped{0}, timed_out{0}, connects{0},
      connect_failures{0};
  // Worker thread only: the connections, by (MySQL?, socket path, database).
  std::map<std::tuple<bool, std::string, std::string>, Cached> conns;

  ~Impl() {
    for (auto& [k, c] : conns) Close(c);
    if (wake >= 0) close(wake);
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stop) {
      if (queue.empty()) {
        cv.wait_for(lock, std::chrono::seconds(1));
        lock.unlock();
        close_idle();
        lock.lock();
        continue;
      }
      ExplainJob job = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      ExplainAnswer a{job.ticket, explain(job)};
      lock.lock();
      answers.push_back(std::move(a));
      answered.fetch_add(1, std::memory_order_relaxed);
      const uint64_t one = 1;
      (void)!write(wake, &one, sizeof one);
    }
  }

  void close_idle() {
    const uint64_t now = monotonic_ms();
    for (auto it = conns.begin(); it != conns.end();) {
      if (now - it->second.used_ms >= opt.idle_close_ms) {
        Close(it->second);
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Room for one more connection: the least recently used goes.
  void make_room() {
    if (conns.size() < opt.max_connections) return;
    auto oldest = conns.begin();
    for (auto it = conns.begin(); it != conns.end(); ++it) {
      if (it->second.used_ms < oldest->second.used_ms) oldest = it;
    }
    Close(oldest->second);
    conns.erase(oldest);
  }

  BlastEstimate explain(const ExplainJob& job) {
    const auto& sockets = job.mysql ? opt.mysql_sockets : opt.pg_sockets;
    const auto path = sockets.find(job.server_port);
    if (path == sockets.end()) {
      return Failed(std::string(kFailed) + "no unix socket known for the server on port " +
                    std::to_string(job.server_port));
    }
    const auto key = std::make_tuple(job.mysql, path->second, job.database);
    const uint64_t deadline = monotonic_ms() + opt.timeout_ms + 1000;
    BlastEstimate e =
        job.mysql ? explain_mysql(job, key, deadline) : explain_pg(job, key, deadline);
    if (!e.ok && e.failure.find("timed out") != std::string::npos) {
      timed_out.fetch_add(1, std::memory_order_relaxed);
    }
    return e;
  }

  using Key = std::tuple<bool, std::string, std::string>;

  // libpq wants the socket's directory and port: ".../.s.PGSQL.5432".
  PGconn* pg_connect(const Key& key, uint64_t deadline, std::string& why) {
    const std::string& path = std::get<1>(key);
    const size_t slash = path.rfind('/');
    const std::string dir =
        opt.path_prefix + path.substr(0, slash == std::string::npos ? 0 : slash);
    const size_t dot = path.rfind('.');
    const std::string port = dot == std::string::npos ? "5432" : path.substr(dot + 1);
    const std::string timeout = std::to_string((opt.timeout_ms + 999) / 1000 + 1);
    const char* keys[] = {
        "host",    "port", "dbname", "user", "connect_timeout", "application_name",
        "sslmode", nullptr};
    const char* values[] = {dir.c_str(),         port.c_str(),    std::get<2>(key).c_str(),
                            opt.pg_role.c_str(), timeout.c_str(), "dbwarden blast radius",
                            "disable",           nullptr};
    connects.fetch_add(1, std::memory_order_relaxed);
    PGconn* c = PQconnectStartParams(keys, values, 0);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (c != nullptr && PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
      if (!WaitFd(PQsocket(c), st == PGRES_POLLING_WRITING, deadline)) {
        PQfinish(c);
        connect_failures.fetch_add(1, std::memory_order_relaxed);
        why = "timed out";
        return nullptr;
      }
      st = PQconnectPoll(c);
    }
    if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
      why = c ? FirstLine(PQerrorMessage(c)) : "out of memory";
      if (c) PQfinish(c);
      connect_failures.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    PQsetnonblocking(c, 1);
    return c;
  }

  BlastEstimate explain_pg(const ExplainJob& job, const Key& key, uint64_t deadline) {
    auto it = conns.find(key);
    if (it != conns.end() && PQstatus(it->second.pg) != CONNECTION_OK) {
      Close(it->second);
      conns.erase(it);
      it = conns.end();
    }
    if (it == conns.end()) {
      std::string why;
      make_room();
      PGconn* c = pg_connect(key, deadline, why);
      if (c == nullptr) {
        if (why == "timed out") return TimedOut(opt.timeout_ms);
        return Failed(std::string(kFailed) + "cannot connect: " + why);
      }
      it = conns.emplace(key, Cached{c, nullptr, 0}).first;
    }
    it->second.used_ms = monotonic_ms();
    PGconn* c = it->second.pg;
    auto drop = [&] {
      Close(it->second);
      conns.erase(it);
    };
    // One transaction that can change nothing, its limits local to it.
    const std::string begin =
        "BEGIN READ ONLY; SET LOCAL statement_timeout = " + std::to_string(opt.timeout_ms);
    PgOutcome o = PgAfterSend(c, PQsendQuery(c, begin.c_str()), deadline);
    if (o.ok) {
      // The client's default search_path ("$user", public for its user): the proxy does not
      // learn one the client set itself (PostgreSQL does not report it).
      const std::string path = QuoteIdent(job.client_user) + ", public";
      const char* value = path.c_str();
      o = PgAfterSend(c,
                      PQsendQueryParams(c, "SELECT pg_catalog.set_config('search_path', $1, true)",
                                        1, nullptr, &value, nullptr, nullptr, 0),
                      deadline);
    }
    PgOutcome explained;
    if (o.ok) {
      const std::string sql = "EXPLAIN (FORMAT JSON) " + job.text;
      const int n = static_cast<int>(job.values.size());
      std::vector<Oid> types(job.values.size(), 0);
      for (size_t i = 0; i < types.size() && i < job.types.size(); ++i) types[i] = job.types[i];
      std::vector<const char*> values;
      std::vector<int> lengths, formats;
      for (size_t i = 0; i < job.values.size(); ++i) {
        values.push_back(job.values[i] ? job.values[i]->data() : nullptr);
        lengths.push_back(job.values[i] ? static_cast<int>(job.values[i]->size()) : 0);
        formats.push_back(i < job.formats.size() ? job.formats[i] : 0);
      }
      explained = PgAfterSend(c,
                              PQsendQueryParams(c, sql.c_str(), n, types.data(), values.data(),
                                                lengths.data(), formats.data(), 0),
                              deadline);
    } else {
      explained = o;
    }
    if (!explained.broken) {
      explained.broken = PgAfterSend(c, PQsendQuery(c, "ROLLBACK"), deadline).broken;
    }
    if (explained.broken || PQtransactionStatus(c) != PQTRANS_IDLE) drop();
    if (explained.timed_out) return TimedOut(opt.timeout_ms);
    if (!explained.ok) {
      if (explained.sqlstate.empty())
        return Failed(std::string(kFailed) + FirstLine(explained.message));
      return ServerFailure(explained.sqlstate, explained.message);
    }
    if (explained.value.empty()) return Failed("EXPLAIN through the agent's role gave no plan");
    return ReadPgExplain(explained.value);
  }

  // MySQL / MariaDB: the account is the OS user of the same name (unix_socket), so the
  // connect runs as that user (its uid, gid and groups), past the socket's lock.
  MYSQL* my_connect(const Key& key, std::string& why) {
    // The _r form: the proxy's thread reads the passwd database too.
    passwd entry{};
    passwd* pw = nullptr;
    std::vector<char> buf(16384);
    getpwnam_r(opt.mysql_user.c_str(), &entry, buf.data(), buf.size(), &pw);
    if (pw == nullptr) {
      why = "no OS user named " + opt.mysql_user +
            " (unix_socket authentication names the "
            "account by the OS user)";
      return nullptr;
    }
    ClientCredentials cred{pw->pw_uid, pw->pw_gid, {}};
    int ngroups = 64;
    cred.groups.resize(static_cast<size_t>(ngroups));
    if (getgrouplist(pw->pw_name, pw->pw_gid, cred.groups.data(), &ngroups) < 0) {
      cred.groups.resize(static_cast<size_t>(ngroups));
      getgrouplist(pw->pw_name, pw->pw_gid, cred.groups.data(), &ngroups);
    }
    cred.groups.resize(static_cast<size_t>(std::max(ngroups, 0)));
    MYSQL* m = mysql_init(nullptr);
    if (m == nullptr) {
      why = "out of memory";
      return nullptr;
    }
    const unsigned seconds = (opt.timeout_ms + 999) / 1000 + 1;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &seconds);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &seconds);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &seconds);
    const unsigned no = 0;
    mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &no);
    const std::string path = opt.path_prefix + std::get<1>(key);
    connects.fetch_add(1, std::memory_order_relaxed);
    MYSQL* ok = nullptr;
    auto as_user = ThreadCredentials::Assume(cred);
    if (!as_user.ok()) {
      why = "cannot connect as " + opt.mysql_user + ": " + as_user.status().message();
    } else if (!as_user->run_with_dac_override([&] {
                 ok = mysql_real_connect(
                     m, nullptr, opt.mysql_user.c_str(), nullptr,
                     std::get<2>(key).empty() ? nullptr : std::get<2>(key).c_str(), 0, path.c_str(),
                     0);
               })) {
      why = std::string("cannot reach the locked socket: ") + std::strerror(errno);
    } else if (ok == nullptr) {
      why = FirstLine(mysql_error(m));
    }
    if (ok == nullptr) {
      mysql_close(m);
      connect_failures.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    // Not SET SESSION TRANSACTION READ ONLY: MariaDB refuses EXPLAIN of an UPDATE or DELETE
    // in a read-only transaction (25006, "Cannot execute statement in a READ ONLY
    // transaction", 10.11). EXPLAIN only plans; the text is one statement (no ';').
    return m;
  }

  BlastEstimate explain_mysql(const ExplainJob& job, const Key& key, uint64_t /*deadline*/) {
    std::string sql, why;
    if (!MysqlExplainSql(job.text, job.mariadb, sql, why)) return Failed(why);
    auto it = conns.find(key);
    if (it != conns.end() && mysql_ping(it->second.my) != 0) {
      Close(it->second);
      conns.erase(it);
      it = conns.end();
    }
    if (it == conns.end()) {
      make_room();
      MYSQL* m = my_connect(key, why);
      if (m == nullptr) return Failed(std::string(kFailed) + "cannot connect: " + why);
      it = conns.emplace(key, Cached{nullptr, m, 0}).first;
    }
    it->second.used_ms = monotonic_ms();
    MYSQL* m = it->second.my;
    const bool failed = (!job.database.empty() && mysql_select_db(m, job.database.c_str()) != 0) ||
                        mysql_real_query(m, sql.data(), sql.size()) != 0;
    if (failed) {
      const unsigned err = mysql_errno(m);
      BlastEstimate e = err == 2013 || err == 2006
                            ? TimedOut(opt.timeout_ms)
                            : ServerFailure(mysql_sqlstate(m), mysql_error(m));
      if (err >= 2000) {  // client-side: the connection is gone or unusable
        Close(it->second);
        conns.erase(it);
      }
      return e;
    }
    MYSQL_RES* res = mysql_store_result(m);
    std::string json;
    if (res != nullptr) {
      if (MYSQL_ROW row = mysql_fetch_row(res); row != nullptr && row[0] != nullptr) {
        const unsigned long* lengths = mysql_fetch_lengths(res);
        if (lengths != nullptr && lengths[0] <= kMaxExplainJson) json.assign(row[0], lengths[0]);
      }
      mysql_free_result(res);
    }
    while (mysql_next_result(m) == 0) {
      if (MYSQL_RES* more = mysql_store_result(m)) mysql_free_result(more);
    }
    if (json.empty()) return Failed("EXPLAIN through the agent's role gave no plan");
    return ReadMysqlExplain(json);
  }
};

Result<std::unique_ptr<ExplainWorker>> ExplainWorker::Start(ExplainWorkerOptions options) {
  if (options.pg_role.empty() && options.mysql_user.empty()) {
    return Status::Error("explain worker: no role configured");
  }
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  if (impl->opt.max_queue == 0) impl->opt.max_queue = 1;
  if (impl->opt.max_connections == 0) impl->opt.max_connections = 1;
  impl->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake < 0) {
    return Status::Error(std::string("explain worker: eventfd: ") + std::strerror(errno));
  }
  // libmariadb's global state, before any thread uses it.
  if (mysql_library_init(0, nullptr, nullptr) != 0) {
    return Status::Error("explain worker: libmariadb does not initialise");
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    pthread_setname_np(pthread_self(), "dbw-explain");
    mysql_thread_init();
    raw->run();
    for (auto& [k, c] : raw->conns) Close(c);
    raw->conns.clear();
    mysql_thread_end();
  });
  return std::unique_ptr<ExplainWorker>(new ExplainWorker(std::move(impl)));
}

ExplainWorker::ExplainWorker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ExplainWorker::~ExplainWorker() {
  {
    std::lock_guard<std::mutex> hold(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

const std::string& ExplainWorker::role(bool mysql) const {
  return mysql ? impl_->opt.mysql_user : impl_->opt.pg_role;
}

bool ExplainWorker::submit(ExplainJob job) {
  if (role(job.mysql).empty()) {
    impl_->dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  {
    std::lock_guard<std::mutex> hold(impl_->mu);
    if (impl_->queue.size() >= impl_->opt.max_queue) {
      impl_->dropped.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    impl_->queue.push_back(std::move(job));
  }
  impl_->submitted.fetch_add(1, std::memory_order_relaxed);
  impl_->cv.notify_one();
  return true;
}

int ExplainWorker::wake_fd() const { return impl_->wake; }

std::vector<ExplainAnswer> ExplainWorker::take_answers() {
  uint64_t n = 0;
  (void)!read(impl_->wake, &n, sizeof n);
  std::lock_guard<std::mutex> hold(impl_->mu);
  std::vector<ExplainAnswer> out;
  out.swap(impl_->answers);
  return out;
}

uint64_t ExplainWorker::next_ticket() {
  return impl_->tickets.fetch_add(1, std::memory_order_relaxed) + 1;
}

ExplainWorkerStats ExplainWorker::stats() const {
  const Impl& i = *impl_;
  ExplainWorkerStats s;
  s.submitted = i.submitted.load(std::memory_order_relaxed);
  s.answered = i.answered.load(std::memory_order_relaxed);
  s.dropped = i.dropped.load(std::memory_order_relaxed);
  s.timed_out = i.timed_out.load(std::memory_order_relaxed);
  s.connects = i.connects.load(std::memory_order_relaxed);
  s.connect_failures = i.connect_failures.load(std::memory_order_relaxed);
  return s;
}

}  // namespace dbwarden::proxy
