// SPDX-License-Identifier: Apache-2.0
#include "agent/enforcer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "agent/approval_history.h"
#include "agent/approval_recovery.h"
#include "agent/approval_refusals.h"
#include "agent/approval_tally.h"
#include "agent/approval_webhook.h"
#include "agent/approvals_http_server.h"
#include "agent/approvals_server.h"
#include "agent/log.h"
#include "approvals/journal.h"
#include "capture/discovery.h"
#include "learn/learn.h"
#include "policy/policy.h"
#include "proxy/policy_judge.h"
#include "proxy/proxy.h"
#include "steering/steering.h"

namespace dbwarden::agent {

namespace {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The proxy's TCP slots in the steering map, one per family (a socket bound to ::1 is
// IPv6-only, and steering hands a connection only to a socket of its family). Slot
// kLifeSlot holds the IPv4 one as well: its presence tells the unix program the proxy lives.
constexpr uint32_t kTcpSlotV4 = 1;
constexpr uint32_t kTcpSlotV6 = 2;

// Loopback listeners for the proxy: IPv4, and IPv6 where the host has it.
std::vector<std::string> proxy_listen_addresses() {
  std::vector<std::string> out{"127.0.0.1"};
  const int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return out;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) out.push_back("::1");
  close(fd);
  return out;
}

struct UnixServerSocket {
  std::string path;
  uint16_t port = 0;
  bool mysql = false;
};

// The unix sockets of the protected servers: PostgreSQL's .s.PGSQL.<port> wherever
// unix_socket_directories puts them; MySQL's, which is a setting, through the process
// listening on the MySQL port.
std::vector<UnixServerSocket> server_unix_sockets(const Config& c) {
  std::vector<UnixServerSocket> out;
  if (!c.postgres_ports.empty()) {
    for (const auto& l : capture::find_listeners(c.postgres_ports).unix) {
      out.push_back({l.path, l.port, false});
    }
  }
  for (uint16_t port : c.mysql_ports) {
    const capture::Listeners l = capture::find_listeners({port});
    std::set<std::string> seen;
    for (uint32_t pid : capture::distinct_pids(capture::owners_of(l.tcp_inodes))) {
      for (const auto& u : capture::unix_listeners_of(pid)) {
        if (seen.insert(u.path).second) out.push_back({u.path, port, true});
      }
    }
  }
  return out;
}

// The pid listening on a MySQL port, as the capture names the server in process.pid. Found
// once per port and again only when that process is gone (a restarted server): the lookup
// scans /proc (on the proxy's thread, so at most once a second per port), the check is one
// kill(pid, 0).
std::function<uint32_t(uint16_t)> mysql_server_pids(const std::vector<uint16_t>& ports) {
  struct Known {
    uint32_t pid = 0;
    uint64_t looked_at_ns = 0;
  };
  auto known = std::make_shared<std::map<uint16_t, Known>>();
  auto find = [](uint16_t port, Known& k) {
    const capture::Listeners l = capture::find_listeners({port});
    const std::vector<uint32_t> pids = capture::distinct_pids(capture::owners_of(l.tcp_inodes));
    k.pid = pids.empty() ? 0 : pids.front();
    k.looked_at_ns = monotonic_ns();
  };
  for (uint16_t port : ports) find(port, (*known)[port]);
  return [known, find](uint16_t port) -> uint32_t {
    Known& k = (*known)[port];
    const bool gone = k.pid == 0 || kill(static_cast<pid_t>(k.pid), 0) != 0;
    if (gone && monotonic_ns() - k.looked_at_ns >= 1'000'000'000ull) find(port, k);
    return gone && k.pid != 0 && kill(static_cast<pid_t>(k.pid), 0) != 0 ? 0 : k.pid;
  };
}

}  // namespace

std::string learn_state_dir(const Config& c) {
  if (!c.audit_state_dir.empty()) return c.audit_state_dir;
  const auto slash = c.audit_file.rfind('/');
  return slash == std::string::npos ? "." : c.audit_file.substr(0, slash);
}

struct Enforcer::Impl {
  Config config;
  std::unique_ptr<steering::Steering> steering;
  std::unique_ptr<proxy::PolicySource> policy;
  // Learn mode's store: opened when a policy first has a `learn:` section, kept until the
  // end (declared before the proxy, so it outlives the judge that writes into it).
  std::unique_ptr<learn::Store> learn_store;
  proxy::PolicyJudge* judge = nullptr;  // owned by the proxy
  uint64_t learn_counts_flushed_ns = 0;
  uint64_t learn_capped_logged = 0;
  // The broker's events go to the trail, the metrics tally and the webhook: declared before
  // the broker, which calls them until it is gone.
  ApprovalTally approval_tally{monotonic_ns};
  std::unique_ptr<ApprovalWebhook> webhook;
  ApprovalFanOut approval_sinks;
  // Statements held for approval wait in the broker; approvers reach it by the socket.
  // Declared before the proxy, which holds a pointer to it, so it is destroyed after it;
  // the history (the inbox's recent decisions, and the way to the audit trail) outlives both.
  std::unique_ptr<ApprovalHistory> approval_history;
  // The pending requests written down, so that a crashed agent's are denied at the next
  // start (approvals/journal.h); outlives the broker that writes it.
  std::unique_ptr<approvals::Journal> journal;
  uint64_t journal_errors = 0;  // write errors logged so far
  std::unique_ptr<approvals::Broker> broker;
  // Approvers' refused requests, from the socket and the HTTP API alike: counted, recorded.
  std::unique_ptr<ApprovalRefusals> refusals;
  // The blast radius's EXPLAIN through the agent's own role (approvals-blast-radius-*):
  // declared before the proxy, which holds a pointer to it.
  std::unique_ptr<proxy::ExplainWorker> explain_worker;
  std::unique_ptr<proxy::Proxy> proxy;
  std::unique_ptr<ApprovalsServer> approvals_server;
  std::unique_ptr<ApprovalsHttpServer> approvals_http;  // with approvals-tokens only
  std::vector<steering::ExistingConnection> existing;
  uint64_t terminate_at_ns = 0;
  uint64_t terminated = 0;
  uint64_t tls_reload_failures = 0;
  bool fail_open = false;

  std::vector<std::string> locked_paths;  // the servers' sockets, locked to their owners
  std::unique_ptr<steering::LockWatcher> lock_watcher;
  // The watcher's thread and tick() both lock: one at a time, or a lock_unix() that read the
  // new socket's mode before the server's own chmod could overwrite the one made after it,
  // and remember the wrong mode to give back.
  std::mutex relock_mu;

  // Locks `path` again unless the sockets are to stay open (fail mode open with the proxy
  // marked down: a watchdog's mark-down unlocked them, clients must reach the servers).
  void relock(const std::string& path, bool created) {
    if (fail_open) {
      auto st = steering->state();
      if (!st.ok() || !st.value().proxy_alive) return;
    }
    std::lock_guard<std::mutex> hold(relock_mu);
    auto locked = steering->lock_unix(path, created);
    if (locked.ok() && locked.value()) {
      DBW_LOG(kInfo, "enforce: %s locked to its owner again (a new socket, or a new mode)",
              path.c_str());
    } else if (!locked.ok() && access(path.c_str(), F_OK) == 0) {
      // (A server that is down has no socket: nothing to lock until it is back.)
      DBW_LOG(kWarning, "enforce: %s", locked.status().message().c_str());
    }
  }

  ~Impl() {
    // No relock from here on: the unlock below must stay.
    lock_watcher.reset();
    // The fail mode takes over before the proxy's sockets close; the pins stay, so
    // steering resumes when the agent starts again.
    if (steering) {
      (void)steering->set_proxy_alive(false);
      // Fail open: clients go straight to the servers now, so their sockets open up again.
      // Fail closed keeps the locks: a path steering misses stays refused while the agent is
      // down, as the steered ones are.
      if (fail_open) {
        if (auto n = steering->unlock_all(); n.ok()) {
          DBW_LOG(kInfo, "enforce: fail mode open: %d server socket(s) unlocked", n.value());
        } else {
          DBW_LOG(kWarning, "enforce: cannot unlock the server sockets: %s",
                  n.status().message().c_str());
        }
      }
    }
    // Pending requests survive nothing: denied (and recorded) before the proxy closes their
    // connections.
    approvals_server.reset();
    approvals_http.reset();
    if (broker) broker->deny_all("the agent stopped", monotonic_ns());
    proxy.reset();
    if (learn_store) {
      if (Status s = learn_store->flush(true); !s.ok()) {
        DBW_LOG(kWarning, "enforce: %s", s.message().c_str());
      }
    }
  }

  // The store for a policy with a `learn:` section, opened the first time one needs it.
  Status open_learn(const policy::Policy& p) {
    const policy::LearnSettings* l = p.learn();
    if (l == nullptr) return Status::Ok();
    const learn::Limits limits{l->max_per_identity, l->max_total};
    if (learn_store) {
      learn_store->set_limits(limits);
      return Status::Ok();
    }
    const std::string dir = learn_state_dir(config);
    mkdir(dir.c_str(), 0700);
    auto store = learn::Store::Open(dir, limits, static_cast<int64_t>(::time(nullptr)));
    if (!store.ok()) return store.status();
    learn_store = std::move(store.value());
    const learn::Stats st = learn_store->stats();
    DBW_LOG(kInfo, "learn: %s: %llu fingerprint(s) of %llu identit%s loaded",
            learn_store->path().c_str(), static_cast<unsigned long long>(st.fingerprints),
            static_cast<unsigned long long>(st.identities), st.identities == 1 ? "y" : "ies");
    if (judge != nullptr) judge->set_learn_store(learn_store.get());
    return Status::Ok();
  }

  void flush_learn(uint64_t now_ns) {
    if (!learn_store) return;
    // New fingerprints every tick; counts and last-seen times once a minute (they only
    // serve listing and pruning), so a busy identity is not a write per second.
    const bool counts = now_ns - learn_counts_flushed_ns >= 60'000'000'000ull;
    if (counts) learn_counts_flushed_ns = now_ns;
    if (Status s = learn_store->flush(counts); !s.ok()) {
      DBW_LOG(kWarning, "enforce: %s (kept in memory, retried)", s.message().c_str());
    }
    const learn::Stats st = learn_store->stats();
    const uint64_t capped = st.capped_identity + st.capped_total;
    if (capped != learn_capped_logged) {
      DBW_LOG(kWarning,
              "learn: %llu fingerprint(s) not learned so far: cap reached (%llu per identity, "
              "%llu in total; raise max_fingerprints_per_identity / max_fingerprints)",
              static_cast<unsigned long long>(capped),
              static_cast<unsigned long long>(st.capped_identity),
              static_cast<unsigned long long>(st.capped_total));
      learn_capped_logged = capped;
    }
  }
};

Enforcer::Enforcer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Enforcer::~Enforcer() = default;

Result<int> leave_enforcement(const std::string& steer_pin_dir) {
  if (steer_pin_dir.empty()) return 0;
  int removed = 0;
  if (Status s = steering::Steering::detach(steer_pin_dir, &removed); !s.ok()) return s;
  return removed;
}

Result<std::unique_ptr<Enforcer>> Enforcer::Start(const Config& config, proxy::RecordSink& records,
                                                  proxy::ConnectorLookup connectors,
                                                  approvals::EventSink* approval_events) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  auto loaded = policy::Policy::load_file(config.policy_file);
  if (!loaded.ok()) return Status::Error("policy " + loaded.status().message());
  impl->policy = std::make_unique<proxy::PolicySource>(loaded.value());
  if (Status s = impl->open_learn(*loaded.value()); !s.ok()) return s;
  std::shared_ptr<proxy::TlsContext> client_tls;
  if (!config.proxy_tls_cert_file.empty()) {
    // Loaded and checked before anything is steered: a bad certificate or key stops the
    // start, not a client.
    auto tls = proxy::TlsContext::Load(config.proxy_tls_cert_file, config.proxy_tls_key_file);
    if (!tls.ok())
      return Status::Error("enforce: --proxy-tls-cert-file: " + tls.status().message());
    client_tls = std::move(tls.value());
  }
  if (!config.approvals_webhook_url.empty()) {
    // Before anything is steered too: a secret file that does not load stops the start.
    WebhookOptions wo;
    wo.url = config.approvals_webhook_url;
    if (!config.approvals_webhook_secret_file.empty()) {
      auto secret = load_webhook_secret(config.approvals_webhook_secret_file);
      if (!secret.ok()) return Status::Error("enforce: " + secret.status().message());
      wo.secret = std::move(secret.value());
    }
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) wo.host = host;
    impl->webhook = std::make_unique<ApprovalWebhook>(std::move(wo), approval_events);
    if (Status s = impl->webhook->start(); !s.ok()) return Status::Error("enforce: " + s.message());
  }

  // What to protect: exactly where the servers listen.
  std::vector<steering::Endpoint> endpoints;
  std::vector<uint16_t> ports = config.postgres_ports;
  ports.insert(ports.end(), config.mysql_ports.begin(), config.mysql_ports.end());
  for (uint16_t port : ports) {
    auto eps = steering::tcp_listen_endpoints(port);
    if (!eps.ok()) return Status::Error("enforce: " + eps.status().message());
    if (eps.value().empty()) {
      return Status::Error("enforce: no server listens on port " + std::to_string(port) +
                           " (start the database first: only what it listens on is steered)");
    }
    endpoints.insert(endpoints.end(), eps.value().begin(), eps.value().end());
  }
  const std::vector<UnixServerSocket> sockets = server_unix_sockets(config);

  steering::Options so;
  so.pin_dir = config.steer_pin_dir;
  auto st = steering::Steering::attach(so);
  if (!st.ok()) return Status::Error("enforce: steering: " + st.status().message());
  impl->steering = std::move(st.value());
  steering::Steering& steer = *impl->steering;
  auto mode = steering::parse_fail_mode(config.fail_mode);
  if (!mode.ok()) return mode.status();
  impl->fail_open = mode.value() == steering::FailMode::kOpen;
  if (Status s = steer.set_fail_mode(mode.value()); !s.ok()) return s;

  // Before the proxy accepts: afterwards its own accepted sockets would look the same.
  std::vector<std::string> paths;
  paths.reserve(sockets.size());
  for (const auto& s : sockets) paths.push_back(s.path);
  if (auto e = steering::list_existing_tcp(endpoints); e.ok()) {
    impl->existing = std::move(e.value());
  } else {
    DBW_LOG(kWarning, "enforce: cannot list open TCP connections: %s",
            e.status().message().c_str());
  }
  if (auto e = steering::list_existing_unix(paths); e.ok()) {
    impl->existing.insert(impl->existing.end(), e.value().begin(), e.value().end());
  } else {
    DBW_LOG(kWarning, "enforce: cannot list open unix connections: %s",
            e.status().message().c_str());
  }
  const char* fate = config.enforce_existing == "terminate" ? "terminated after the grace period"
                     : config.enforce_observer == "off"
                         ? "kept, NOT audited: enforce-observer is off"
                         : "kept, still observed";
  for (const auto& e : impl->existing) {
    DBW_LOG(kWarning, "enforce: connection open before enforcement, not steered (%s): %s", fate,
            e.to_string().c_str());
  }
  if (config.enforce_existing == "terminate" && !impl->existing.empty()) {
    impl->terminate_at_ns =
        monotonic_ns() + config.enforce_existing_grace_seconds * 1'000'000'000ull;
  }

  proxy::Options po;
  impl->approval_sinks.add(approval_events);
  impl->approval_sinks.add(&impl->approval_tally);
  impl->approval_sinks.add(impl->webhook.get());
  impl->approval_history = std::make_unique<ApprovalHistory>(&impl->approval_sinks);
  {
    const std::string dir = learn_state_dir(config);
    mkdir(dir.c_str(), 0700);
    std::vector<approvals::RequestView> left;
    auto journal = approvals::Journal::Open(approvals_journal_path(config), &left);
    if (!journal.ok()) return Status::Error("enforce: " + journal.status().message());
    impl->journal = std::move(journal.value());
    approvals::BrokerOptions bo;
    bo.journal = impl->journal.get();
    impl->broker = std::make_unique<approvals::Broker>(impl->approval_history.get(), bo);
    if (!left.empty()) {
      // Their clients' connections died with the previous agent: nobody can still be
      // waiting for them, and nobody may decide them now.
      DBW_LOG(kWarning,
              "approvals: %zu request(s) left pending by an agent that did not stop cleanly: "
              "denied (agent_restart)",
              left.size());
      impl->broker->recover(left, "agent_restart");
    }
  }
  impl->refusals = std::make_unique<ApprovalRefusals>(*impl->broker, *impl->approval_history,
                                                      impl->approval_history.get());
  po.approvals = impl->broker.get();
  if (!config.approvals_blast_radius_postgres_role.empty() ||
      !config.approvals_blast_radius_mysql_user.empty()) {
    proxy::ExplainWorkerOptions xo;
    xo.pg_role = config.approvals_blast_radius_postgres_role;
    xo.mysql_user = config.approvals_blast_radius_mysql_user;
    if (!xo.mysql_user.empty() && getpwnam(xo.mysql_user.c_str()) == nullptr) {
      return Status::Error("enforce: --approvals-blast-radius-mysql-user " + xo.mysql_user +
                           ": no OS user of that name (unix_socket authentication names the "
                           "account by the OS user the agent connects as)");
    }
    // The first socket of each server: the agent's own connection goes to the server the
    // held statement was going to.
    for (const UnixServerSocket& u : sockets) {
      (u.mysql ? xo.mysql_sockets : xo.pg_sockets).emplace(u.port, u.path);
    }
    auto worker = proxy::ExplainWorker::Start(std::move(xo));
    if (!worker.ok()) return Status::Error("enforce: " + worker.status().message());
    impl->explain_worker = std::move(worker.value());
    po.explain_worker = impl->explain_worker.get();
  }
  po.client_tls = std::move(client_tls);
  po.tcp_listen_addresses = proxy_listen_addresses();
  po.mysql_ports = config.mysql_ports;
  po.tcp_connector = std::move(connectors);
  if (!config.mysql_ports.empty()) po.tcp_server_pid = mysql_server_pids(config.mysql_ports);
  po.relay.max_judged_bytes = config.max_query_bytes + 4096;
  po.pgsql.max_query_bytes = config.max_query_bytes;
  po.mysql.max_query_bytes = config.max_query_bytes;
  mkdir(config.proxy_socket_dir.c_str(), 0755);
  for (size_t i = 0; i < sockets.size(); ++i) {
    proxy::UnixRoute r;
    r.server_path = sockets[i].path;
    r.server_port = sockets[i].port;
    r.protocol = sockets[i].mysql ? proxy::Protocol::kMysql : proxy::Protocol::kPostgresql;
    r.listen_path = config.proxy_socket_dir + "/" + (sockets[i].mysql ? "mysql-" : "pg-") +
                    std::to_string(sockets[i].port) + "-" + std::to_string(i) + ".sock";
    po.unix_routes.push_back(r);
  }
  steering::Steering* steer_ptr = &steer;
  po.socket_lock = [steer_ptr](const std::string& path) -> std::optional<proxy::LockedSocket> {
    auto lock = steer_ptr->current_lock(path);
    if (!lock.ok() || !lock.value()) return std::nullopt;
    return proxy::LockedSocket{lock.value()->uid, lock.value()->gid, lock.value()->mode};
  };
  auto guard = [steer_ptr](int fd, const sockaddr* dst,
                           socklen_t len) -> Result<std::shared_ptr<void>> {
    Result<steering::Exemption> ex = Status::Error("unset");
    if (dst != nullptr) {
      auto ep = steering::Endpoint::from_sockaddr(dst, len);
      if (!ep.ok()) return ep.status();
      ex = steer_ptr->exempt_tcp(fd, ep.value());
    } else {
      ex = steer_ptr->exempt_unix(fd);
    }
    if (!ex.ok()) return ex.status();
    return std::shared_ptr<void>(std::make_shared<steering::Exemption>(std::move(ex.value())));
  };
  auto judge = std::make_unique<proxy::PolicyJudge>(*impl->policy);
  judge->set_learn_store(impl->learn_store.get());
  impl->judge = judge.get();
  auto px = proxy::Proxy::Start(po, std::move(judge), records, guard);
  if (!px.ok()) return Status::Error("enforce: " + px.status().message());
  impl->proxy = std::move(px.value());
  auto approvals_server = ApprovalsServer::Start(config.approvals_socket, config.approvals_group,
                                                 *impl->broker, impl->refusals.get());
  if (!approvals_server.ok())
    return Status::Error("enforce: " + approvals_server.status().message());
  impl->approvals_server = std::move(approvals_server.value());
  if (!config.approvals_tokens.empty()) {
    ApprovalsHttpOptions ho;
    ho.listen = config.approvals_listen;
    ho.tokens_file = config.approvals_tokens;
    ho.tls_cert_file = config.approvals_tls_cert_file;
    ho.tls_key_file = config.approvals_tls_key_file;
    ho.url = config.approvals_url;
    auto http =
        ApprovalsHttpServer::Start(ho, *impl->broker, *impl->approval_history, *impl->refusals);
    if (!http.ok()) return Status::Error("enforce: " + http.status().message());
    impl->approvals_http = std::move(http.value());
  }

  // Now steer: the proxy is listening.
  bool have_v6 = false;
  for (const proxy::TcpListener& l : impl->proxy->tcp_listeners()) {
    const uint32_t slot = l.family == AF_INET6 ? kTcpSlotV6 : kTcpSlotV4;
    have_v6 |= l.family == AF_INET6;
    if (Status s = steer.set_proxy_socket(slot, l.fd); !s.ok()) return s;
    if (slot == kTcpSlotV4) {
      if (Status s = steer.set_proxy_socket(steering::kLifeSlot, l.fd); !s.ok()) return s;
    }
  }
  if (auto old = steer.protected_tcp(); old.ok()) {
    for (const auto& ep : old.value()) {
      if (std::find(endpoints.begin(), endpoints.end(), ep) == endpoints.end()) {
        (void)steer.unprotect_tcp(ep);  // left by an earlier configuration
      }
    }
  }
  std::string summary =
      "enforcing policy " + config.policy_file + " (fail mode " + config.fail_mode + "): TCP";
  for (const auto& ep : endpoints) {
    if (ep.family == AF_INET6 && !have_v6) {
      return Status::Error("enforce: the server listens on " + ep.to_string() +
                           " but the proxy cannot listen on IPv6 loopback");
    }
    if (Status s = steer.protect_tcp(ep, ep.family == AF_INET6 ? kTcpSlotV6 : kTcpSlotV4);
        !s.ok()) {
      return s;
    }
    summary += " " + ep.to_string();
  }
  std::vector<std::string> steered_paths;
  for (const auto& r : po.unix_routes) {
    for (const std::string& alias : steering::unix_path_aliases(r.server_path)) {
      if (Status s = steer.protect_unix(alias, r.listen_path); !s.ok()) return s;
      steered_paths.push_back(alias);
    }
    summary += ", unix " + r.server_path;
  }
  if (auto old = steer.protected_unix(); old.ok()) {
    for (const auto& p : old.value()) {
      if (std::find(steered_paths.begin(), steered_paths.end(), p) == steered_paths.end()) {
        (void)steer.unprotect_unix(p);
      }
    }
  }
  if (Status s = steer.set_proxy_alive(true); !s.ok()) return s;
  // Last, the servers' sockets are narrowed to their owners: a path to them that steering
  // does not match (relative, symlink, hard link, bind mount) is refused, not a way around.
  for (const auto& r : po.unix_routes) {
    auto locked = steer.lock_unix(r.server_path);
    if (!locked.ok()) {
      return Status::Error("enforce: " + locked.status().message() +
                           " (without the lock, local users could reach the server by another "
                           "path to its socket)");
    }
    impl->locked_paths.push_back(r.server_path);
  }
  if (auto old = steer.unix_locks(); old.ok()) {
    for (const auto& l : old.value()) {
      if (std::find(impl->locked_paths.begin(), impl->locked_paths.end(), l.path) ==
          impl->locked_paths.end()) {
        (void)steer.unlock_unix(l.path);  // left by an earlier configuration
      }
    }
  }
  if (!impl->locked_paths.empty()) {
    summary += " (sockets locked to their owners)";
    Impl* raw = impl.get();
    auto watcher = steering::LockWatcher::Start(
        impl->locked_paths,
        [raw](const std::string& path, bool created) { raw->relock(path, created); });
    if (!watcher.ok()) return Status::Error("enforce: " + watcher.status().message());
    impl->lock_watcher = std::move(watcher.value());
  }
  std::unique_ptr<Enforcer> e(new Enforcer(std::move(impl)));
  e->summary_ = std::move(summary);
  return e;
}

Status Enforcer::reload_policy(const std::string& path) {
  auto loaded = policy::Policy::load_file(path);
  if (!loaded.ok()) return Status::Error("policy " + loaded.status().message());
  // Before the swap: the judge must find the store once the policy asks for learning.
  if (Status s = impl_->open_learn(*loaded.value()); !s.ok()) return s;
  impl_->policy->set(loaded.value());
  return Status::Ok();
}

Status Enforcer::reload_tls() {
  const Config& c = impl_->config;
  if (c.proxy_tls_cert_file.empty()) return Status::Ok();
  auto tls = proxy::TlsContext::Load(c.proxy_tls_cert_file, c.proxy_tls_key_file);
  Status s = tls.ok() ? impl_->proxy->set_client_tls(std::move(tls.value())) : tls.status();
  if (!s.ok()) {
    ++impl_->tls_reload_failures;
    return Status::Error("proxy TLS certificate " + c.proxy_tls_cert_file + ": " + s.message());
  }
  return Status::Ok();
}

void Enforcer::relock() {
  if (impl_->lock_watcher) impl_->lock_watcher->rewatch();
  for (const std::string& path : impl_->locked_paths) impl_->relock(path, false);
}

void Enforcer::tick(uint64_t now_ns) {
  relock();
  impl_->flush_learn(now_ns);
  if (const uint64_t errors = impl_->journal->write_errors(); errors != impl_->journal_errors) {
    impl_->journal_errors = errors;
    DBW_LOG(kWarning,
            "approvals: %llu write(s) to %s failed so far (new requests are refused while it "
            "cannot be written)",
            static_cast<unsigned long long>(errors), impl_->journal->path().c_str());
  }
  if (impl_->terminate_at_ns == 0 || now_ns < impl_->terminate_at_ns) return;
  impl_->terminate_at_ns = 0;
  for (const auto& c : impl_->existing) {
    if (Status s = steering::terminate(c); s.ok()) {
      ++impl_->terminated;
      DBW_LOG(kInfo, "enforce: terminated connection open before enforcement: %s",
              c.to_string().c_str());
    } else {
      DBW_LOG(kWarning, "enforce: could not terminate %s: %s", c.to_string().c_str(),
              s.message().c_str());
    }
  }
}

std::shared_ptr<const policy::Policy> Enforcer::policy() const { return impl_->policy->get(); }

void Enforcer::approval_counters(uint64_t now_ns, metrics::ApprovalCounters& out) const {
  impl_->approval_tally.snapshot(now_ns, out);
  impl_->refusals->snapshot(out);
  if (impl_->explain_worker) {
    const proxy::ExplainWorkerStats x = impl_->explain_worker->stats();
    out.blast_role_answered = x.answered;
    out.blast_role_timed_out = x.timed_out;
    out.blast_role_dropped = x.dropped;
  }
  if (!impl_->webhook) return;
  const WebhookStats w = impl_->webhook->stats();
  out.webhook_delivered = w.delivered;
  out.webhook_failures = w.failures;
  out.webhook_gave_up = w.gave_up;
  out.webhook_dropped = w.dropped;
  out.webhook_decided_first = w.decided_first;
  out.webhook_queued = w.queued;
}

EnforcerStats Enforcer::stats() const {
  EnforcerStats s;
  metrics::EnforcementCounters& c = s.enforcement;
  const proxy::Stats p = impl_->proxy->stats();
  c.proxy_accepted = p.accepted;
  c.proxy_active = p.active;
  c.proxy_upstream_failures = p.upstream_failures;
  c.proxy_tls_handshakes = p.tls_handshakes;
  c.proxy_tls_failures = p.tls_failures;
  c.proxy_tls_reload_failures = impl_->tls_reload_failures;
  c.proxy_identity_failures = p.identity_failures;
  c.proxy_refused = p.refused_over_limit + p.refused_not_steered;
  c.pg_reach_hits = p.pg_reach_hits;
  c.pg_reach_misses = p.pg_reach_misses;
  c.pg_reach_waits = p.pg_reach_waits;
  c.pg_catalog_evictions = p.pg_catalog_evictions;
  // A level: open before enforcement and not (yet) terminated.
  c.existing_connections = impl_->existing.size() - impl_->terminated;
  if (auto k = impl_->steering->counters(); k.ok()) {
    c.steered_tcp = k.value().tcp_steered;
    c.steered_unix = k.value().unix_steered;
    c.fail_open = k.value().tcp_fail_open + k.value().unix_fail_open;
    c.fail_closed = k.value().tcp_fail_closed + k.value().unix_fail_closed;
  }
  if (auto st = impl_->steering->state(); st.ok()) c.proxy_alive = st.value().proxy_alive;
  c.fail_open_mode = impl_->fail_open;
  if (impl_->learn_store) {
    const learn::Stats l = impl_->learn_store->stats();
    s.learn.identities = l.identities;
    s.learn.fingerprints = l.fingerprints;
    s.learn.capped_identity = l.capped_identity;
    s.learn.capped_total = l.capped_total;
    s.learn.write_errors = l.write_errors;
  }
  return s;
}

}  // namespace dbwarden::agent
