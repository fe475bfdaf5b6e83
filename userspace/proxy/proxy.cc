// SPDX-License-Identifier: Apache-2.0
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "identity/identity.h"
#include "proxy/credentials.h"
#include "proxy/mysql_relay.h"
#include "steering/steering.h"

namespace dbwarden::proxy {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Proxy connection ids live above the capture's (socket-inode based) ones, so a record's
// connection_id never names two connections.
constexpr uint64_t kConnectionIdBase = 1ull << 62;

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Messages go out as soon as they are whole: without it a reply written in two pieces waits
// for the peer's delayed ACK (about 40 ms on Linux), as pgbench does not show and a client
// reading a larger result does.
void no_delay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// An endpoint's address as records carry it: "127.0.0.1", "::1" (no port, no brackets).
std::string host_text(const steering::Endpoint& e) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(e.family, e.addr.data(), buf, sizeof(buf));
  return buf;
}

bool is_loopback_or_local(const std::string& client, const std::string& server) {
  return client == server || client.rfind("127.", 0) == 0 || client == "::1";
}

struct Tag {
  enum class Kind : uint8_t {
    kStop,
    kTcpListener,
    kUnixListener,
    kClient,
    kUpstream,
    kApprovals,
    kExplain,
  };
  Kind kind;
  void* conn = nullptr;  // kClient, kUpstream
  size_t route = 0;      // kTcpListener, kUnixListener: which one
};

}  // namespace

struct Proxy::Loop {
  struct Conn final : RelayOutput {
    Loop* loop = nullptr;
    int client = -1, upstream = -1;
    Tag client_tag{Tag::Kind::kClient}, upstream_tag{Tag::Kind::kUpstream};
    uint32_t client_mask = 0, upstream_mask = 0;
    ByteBuffer in, out_server, out_client;
    ConnectionInfo info;
    std::unique_ptr<Relay> relay;
    std::shared_ptr<void> guard;  // steering exemption while connecting
    bool connecting = false, connected = false;
    bool client_eof = false, upstream_eof = false, close_requested = false;
    bool dead = false;                // destroyed; freed after the current batch of events
    bool broken = false;              // a send failed: the peer is gone
    std::unique_ptr<TlsSession> tls;  // the client's TLS, terminated here (null: plaintext)
    static constexpr size_t kMaxGather = 256;  // pieces per sendmsg (IOV_MAX is 1024)

    // Bytes go out at once when nothing waits before them: the peer has them before the
    // relay decodes them (the record costs no latency) and they are not copied. What the
    // socket does not take waits in the buffer, flushed by drive().
    void to_server(std::span<const uint8_t> b) override {
      if (connected && out_server.empty())
        b = b.subspan(send_now(upstream, b, loop->bytes_to_server));
      out_server.append(b);
    }
    void to_client(std::span<const uint8_t> b) override {
      if (tls) {
        tls->write(b);
        return send_tls_output();
      }
      send_client(b);
    }
    void send_client(std::span<const uint8_t> b) {
      if (out_client.empty()) b = b.subspan(send_now(client, b, loop->bytes_to_client));
      out_client.append(b);
    }
    // One sendmsg for the pieces (a read's unchanged stretches and rewritten rows, from
    // where they lie); what the socket does not take waits in the buffer, as above.
    void to_client_gather(std::span<const std::span<const uint8_t>> pieces) override {
      if (tls) {
        for (const auto& p : pieces) tls->write(p);
        return send_tls_output();
      }
      size_t taken = 0;
      if (out_client.empty() && !broken && pieces.size() <= kMaxGather) {
        iovec iov[kMaxGather];
        size_t total = 0;
        for (size_t i = 0; i < pieces.size(); ++i) {
          iov[i] = {const_cast<uint8_t*>(pieces[i].data()), pieces[i].size()};
          total += pieces[i].size();
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = pieces.size();
        const ssize_t n = sendmsg(client, &msg, MSG_NOSIGNAL);
        if (n >= 0) {
          taken = static_cast<size_t>(n);
          loop->bytes_to_client.fetch_add(taken, std::memory_order_relaxed);
        } else if (errno != EAGAIN && errno != EINTR) {
          broken = true;
          taken = total;
        }
      } else if (out_client.empty() && !broken) {
        for (const auto& p : pieces) send_client(p);
        return;
      }
      for (const auto& p : pieces) {
        const size_t skip = std::min(taken, p.size());
        taken -= skip;
        if (!broken) out_client.append(p.subspan(skip));
      }
    }
    // What the TLS session has for the client: records, handshake, alerts.
    void send_tls_output() {
      loop->tls_out.clear();
      tls->take_output(loop->tls_out);
      send_client(loop->tls_out);
    }
    void close_after_flush() override { close_requested = true; }
    void cancel_request(std::span<const uint8_t> key) override { loop->cancel_held(key); }
    void kill_request(uint16_t server_port, uint32_t thread_id, bool connection,
                      uint32_t by_thread) override {
      loop->kill_held(server_port, thread_id, connection, by_thread);
    }
    bool client_tls_available() const override { return !tls && loop->tls_configured; }
    void start_client_tls() override {
      if (!client_tls_available()) return;
      tls = std::make_unique<TlsSession>(loop->current_tls());
      // What the client sent after its request is already TLS (a MySQL client starts its
      // handshake without waiting for an answer): into the session, not the relay.
      if (in.empty()) return;
      std::vector<uint8_t> early(in.data().begin(), in.data().end());
      in.consume(in.size());
      loop->tls_input(*this, early);
    }
    // How much of `b` the socket took (all of it when the peer is gone: nothing is kept).
    size_t send_now(int fd, std::span<const uint8_t> b, std::atomic<uint64_t>& counter) {
      if (broken || b.empty()) return b.size();
      const ssize_t n = send(fd, b.data(), b.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        counter.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        return static_cast<size_t>(n);
      }
      if (errno == EAGAIN || errno == EINTR) return 0;
      broken = true;
      return b.size();
    }
  };

  Options opt;
  std::unique_ptr<Judge> judge;
  RecordSink* records = nullptr;
  UpstreamGuardFactory guard_factory;
  int epfd = -1, stopfd = -1;
  std::vector<TcpListener> tcp;
  std::vector<int> unix_fds;
  Tag stop_tag{Tag::Kind::kStop};
  Tag approvals_tag{Tag::Kind::kApprovals};
  Tag explain_tag{Tag::Kind::kExplain};
  uint64_t next_expiry_check = 0;
  std::vector<Tag> tcp_tags, unix_tags;
  identity::Resolver resolver;
  pgsql::Counters pgsql_counters;
  mysql::Counters mysql_counters;
  // What PostgreSQL connections learnt of the servers' relations (column lineage).
  PgCatalogCache pg_catalog;
  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns;
  // Connections ended during a batch of events: a later event of the same batch may still
  // name them (its other socket), so they are freed once the batch is done.
  std::vector<std::unique_ptr<Conn>> ended;
  uint8_t read_buf[kReadChunk];  // every read lands here first (one thread)
  std::vector<uint8_t> tls_out;  // ciphertext on its way to a client (one thread)
  uint64_t next_id = 0;
  // Where a client that connected to a TCP listener itself goes (Options), if anywhere.
  std::optional<steering::Endpoint> direct_upstream;

  std::atomic<uint64_t> accepted{0}, active{0}, refused_over_limit{0}, refused_not_steered{0},
      upstream_failures{0}, identity_failures{0}, blocked{0}, tls_handshakes{0}, tls_failures{0},
      bytes_to_server{0}, bytes_to_client{0};

  ~Loop() {
    const uint64_t now = monotonic_ns();
    for (auto& [p, c] : conns) {
      c->relay->on_close(now);
      if (c->client >= 0) close(c->client);
      if (c->upstream >= 0) close(c->upstream);
    }
    conns.clear();
    for (int fd : unix_fds) close(fd);
    for (const auto& r : opt.unix_routes) unlink(r.listen_path.c_str());
    for (const TcpListener& l : tcp) close(l.fd);
    if (stopfd >= 0) close(stopfd);
    if (epfd >= 0) close(epfd);
  }

  // The certificate and key for new TLS clients: opt.client_tls until a reload replaced it
  // (set_client_tls, another thread); sessions already open keep theirs.
  std::shared_ptr<TlsContext> current_tls() {
    std::lock_guard<std::mutex> hold(tls_mu);
    return opt.client_tls;
  }
  std::mutex tls_mu;
  bool tls_configured = false;  // fixed at start: a reload swaps the context, never adds one

  Status listen_all();
  Status listen_tcp(const std::string& address);
  void run();
  void accept_tcp(size_t listener);
  void accept_unix(size_t route);
  // `server`: the upstream as PostgreSQL catalog scopes name it (PgScopeKey).
  Conn* new_conn(int client_fd, Protocol protocol, std::string server);
  // Connections whose relay waited for another's catalog lookup, which has ended.
  void wake_catalog_waiters();
  void start_tcp_upstream(Conn& c, const steering::Endpoint& to);
  void start_unix_upstream(Conn& c, const UnixRoute& route, const ClientCredentials& cred);
  void upstream_failed(Conn& c, const std::string& why);
  void on_event(Tag& tag, uint32_t events);
  void read_client(Conn& c);
  void read_upstream(Conn& c);
  void tls_input(Conn& c, std::span<const uint8_t> ciphertext);
  void finish_connect(Conn& c);
  void note_unix_server(Conn& c);
  bool flush(int fd, ByteBuffer& buf, std::atomic<uint64_t>& counter);
  void drive(Conn& c);  // after any event: pass bytes on, update interest, maybe close
  void set_interest(int fd, Tag& tag, uint32_t& current, uint32_t wanted);
  void destroy(Conn& c);
  void approvals_decided();
  void role_explained();
  void expire_approvals(uint64_t now);
  void cancel_held(std::span<const uint8_t> key);
  void kill_held(uint16_t server_port, uint32_t thread_id, bool connection, uint32_t by_thread);
};

Status Proxy::Loop::listen_tcp(const std::string& address) {
  auto ep = steering::Endpoint::parse(address, 0);
  if (!ep.ok()) return Status::Error("proxy: listen address " + ep.status().message());
  socklen_t len = 0;
  const sockaddr_storage sa = ep.value().to_sockaddr(&len);
  TcpListener l;
  l.family = sa.ss_family;
  l.fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l.fd < 0) return Status::Error(errno_text("proxy: socket"));
  tcp.push_back(l);  // closed by ~Loop from here on
  const int one = 1;
  setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(l.fd, reinterpret_cast<const sockaddr*>(&sa), len) != 0 ||
      listen(l.fd, SOMAXCONN) != 0) {
    return Status::Error(errno_text(("proxy: listen on " + address).c_str()));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  getsockname(l.fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  tcp.back().port = steering::Endpoint::from_sockaddr_unmapped(bound).port;
  return Status::Ok();
}

Status Proxy::Loop::listen_all() {
  if (opt.direct_upstream_port != 0) {
    auto up = steering::Endpoint::parse(opt.direct_upstream_address, opt.direct_upstream_port);
    if (!up.ok()) return Status::Error("proxy: direct upstream " + up.status().message());
    direct_upstream = up.value();
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd < 0 || stopfd < 0) return Status::Error(errno_text("proxy: epoll/eventfd"));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &stop_tag;
  epoll_ctl(epfd, EPOLL_CTL_ADD, stopfd, &ev);

  if (opt.approvals != nullptr) {
    ev.data.ptr = &approvals_tag;
    epoll_ctl(epfd, EPOLL_CTL_ADD, opt.approvals->wake_fd(), &ev);
  }
  if (opt.explain_worker != nullptr) {
    ev.data.ptr = &explain_tag;
    epoll_ctl(epfd, EPOLL_CTL_ADD, opt.explain_worker->wake_fd(), &ev);
  }

  for (const std::string& address : opt.tcp_listen_addresses) {
    if (Status s = listen_tcp(address); !s.ok()) return s;
  }
  tcp_tags.resize(tcp.size());
  for (size_t i = 0; i < tcp.size(); ++i) {
    tcp_tags[i] = Tag{Tag::Kind::kTcpListener, nullptr, i};
    ev.data.ptr = &tcp_tags[i];
    epoll_ctl(epfd, EPOLL_CTL_ADD, tcp[i].fd, &ev);
  }

  unix_tags.resize(opt.unix_routes.size());
  for (size_t i = 0; i < opt.unix_routes.size(); ++i) {
    const UnixRoute& r = opt.unix_routes[i];
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (r.listen_path.size() >= sizeof(un.sun_path)) {
      return Status::Error("proxy: socket path too long: " + r.listen_path);
    }
    std::memcpy(un.sun_path, r.listen_path.c_str(), r.listen_path.size() + 1);
    unlink(r.listen_path.c_str());  // a socket left by an earlier proxy
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof(un)) != 0) {
      if (fd >= 0) close(fd);
      return Status::Error(errno_text(("proxy: bind " + r.listen_path).c_str()));
    }
    // Any local user may connect, as to the server's own socket; the server decides.
    chmod(r.listen_path.c_str(), 0777);
    if (listen(fd, SOMAXCONN) != 0) {
      close(fd);
      return Status::Error(errno_text(("proxy: listen " + r.listen_path).c_str()));
    }
    unix_fds.push_back(fd);
    unix_tags[i] = Tag{Tag::Kind::kUnixListener, nullptr, i};
    ev.data.ptr = &unix_tags[i];
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
  return Status::Ok();
}

void Proxy::Loop::run() {
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(epfd, events, 64, 1000);
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < n; ++i) {
      auto* tag = static_cast<Tag*>(events[i].data.ptr);
      if (tag->kind == Tag::Kind::kStop) return;
      on_event(*tag, events[i].events);
    }
    wake_catalog_waiters();
    if (opt.approvals != nullptr) expire_approvals(monotonic_ns());
    ended.clear();
  }
}

void Proxy::Loop::on_event(Tag& tag, uint32_t events) {
  switch (tag.kind) {
    case Tag::Kind::kTcpListener:
      accept_tcp(tag.route);
      return;
    case Tag::Kind::kUnixListener:
      accept_unix(tag.route);
      return;
    case Tag::Kind::kStop:
      return;
    case Tag::Kind::kApprovals:
      approvals_decided();
      return;
    case Tag::Kind::kExplain:
      role_explained();
      return;
    case Tag::Kind::kClient:
    case Tag::Kind::kUpstream:
      break;
  }
  Conn& c = *static_cast<Conn*>(tag.conn);
  if (c.dead) return;
  if (tag.kind == Tag::Kind::kClient) {
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_client(c);
    if (events & EPOLLOUT) flush(c.client, c.out_client, bytes_to_client);
  } else if (c.connecting) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) finish_connect(c);
  } else {
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_upstream(c);
    if (events & EPOLLOUT) flush(c.upstream, c.out_server, bytes_to_server);
  }
  drive(c);
}

Proxy::Loop::Conn* Proxy::Loop::new_conn(int client_fd, Protocol protocol, std::string server) {
  auto owned = std::make_unique<Conn>();
  Conn* c = owned.get();
  c->loop = this;
  c->client = client_fd;
  c->client_tag.conn = c;
  c->upstream_tag.conn = c;
  c->info.connection_id = kConnectionIdBase + ++next_id;
  c->info.db_system = protocol == Protocol::kMysql ? "mysql" : "postgresql";
  if (protocol == Protocol::kMysql) {
    auto r = std::make_unique<MysqlRelay>(c->info, *judge, *records, opt.mysql, opt.relay,
                                          mysql_counters);
    r->set_approvals(opt.approvals);
    r->set_blast_radius(true);
    r->set_explain_worker(opt.explain_worker);
    c->relay = std::move(r);
  } else {
    auto r =
        std::make_unique<PgRelay>(c->info, *judge, *records, opt.pgsql, opt.relay, pgsql_counters);
    r->set_approvals(opt.approvals);
    r->set_blast_radius(true);
    r->set_explain_worker(opt.explain_worker);
    r->set_catalog(&pg_catalog, c);
    r->set_server(std::move(server));
    c->relay = std::move(r);
  }
  conns.emplace(c, std::move(owned));
  accepted.fetch_add(1, std::memory_order_relaxed);
  active.fetch_add(1, std::memory_order_relaxed);
  return c;
}

void Proxy::Loop::accept_tcp(size_t listener) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t plen = sizeof(peer);
    const int fd = accept4(tcp[listener].fd, reinterpret_cast<sockaddr*>(&peer), &plen,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (conns.size() >= opt.max_connections) {
      refused_over_limit.fetch_add(1, std::memory_order_relaxed);
      close(fd);
      continue;
    }
    no_delay(fd);
    // The destination the client asked for: sk_lookup steering keeps it as the accepted
    // socket's local address.
    sockaddr_storage dst_sa{};
    socklen_t dlen = sizeof(dst_sa);
    getsockname(fd, reinterpret_cast<sockaddr*>(&dst_sa), &dlen);
    // v4-mapped (an IPv4 client on a dual-stack listener) as plain IPv4, so the upstream
    // socket and steering's exemption are IPv4 as the server sees them.
    steering::Endpoint dst = steering::Endpoint::from_sockaddr_unmapped(dst_sa);
    const steering::Endpoint peer_ep = steering::Endpoint::from_sockaddr_unmapped(peer);
    const std::string dst_addr = host_text(dst);
    const std::string peer_addr = host_text(peer_ep);
    const uint16_t peer_port = peer_ep.port;
    // A client that reached the listener itself rather than a steered destination.
    if (dst.port == tcp[listener].port) {
      if (!direct_upstream) {
        refused_not_steered.fetch_add(1, std::memory_order_relaxed);
        close(fd);
        continue;
      }
      dst = *direct_upstream;
    }
    const uint16_t dst_port = dst.port;
    const bool mysql = std::find(opt.mysql_ports.begin(), opt.mysql_ports.end(), dst_port) !=
                       opt.mysql_ports.end();
    Conn* c = new_conn(fd, mysql ? Protocol::kMysql : Protocol::kPostgresql,
                       "tcp " + host_text(dst) + " " + std::to_string(dst_port));
    c->info.client_address = peer_addr;
    c->info.client_port = peer_port;
    c->info.server_port = dst_port;
    if (mysql && opt.tcp_server_pid) c->info.server_pid = opt.tcp_server_pid(dst_port);
    if (is_loopback_or_local(peer_addr, dst_addr)) {
      std::optional<identity::SeenConnector> seen;
      if (opt.tcp_connector) seen = opt.tcp_connector(peer_addr, peer_port, dst_addr, dst_port);
      if (auto p = resolver.tcp_peer(peer_addr, peer_port, dst_addr, dst_port,
                                     seen ? &*seen : nullptr)) {
        c->info.peer =
            PeerIdentity{p->pid,  p->uid,        p->user_name,    p->login_uid,   p->login_user,
                         p->comm, p->executable, p->systemd_unit, p->container_id};
      }
    }
    set_interest(fd, c->client_tag, c->client_mask, EPOLLIN);
    start_tcp_upstream(*c, dst);
    drive(*c);
  }
}

void Proxy::Loop::accept_unix(size_t route_index) {
  const UnixRoute& route = opt.unix_routes[route_index];
  for (;;) {
    const int fd = accept4(unix_fds[route_index], nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (conns.size() >= opt.max_connections) {
      refused_over_limit.fetch_add(1, std::memory_order_relaxed);
      close(fd);
      continue;
    }
    pid_t pid = 0;
    ClientCredentials cred;
    const Status s = PeerCredentials(fd, &pid, &cred);
    Conn* c = new_conn(fd, route.protocol, "unix " + route.server_path);
    c->info.unix_socket = true;
    c->info.server_port = route.server_port;
    if (s.ok()) {
      const identity::PeerProcess p = resolver.describe(static_cast<uint32_t>(pid));
      c->info.peer = PeerIdentity{p.pid,  p.uid,        p.user_name,    p.login_uid,   p.login_user,
                                  p.comm, p.executable, p.systemd_unit, p.container_id};
      // SO_PEERCRED is the truth at connect; /proc may describe a process that has changed
      // its uid since (or is gone).
      c->info.peer.pid = static_cast<uint32_t>(pid);
      c->info.peer.uid = cred.uid;
    }
    set_interest(fd, c->client_tag, c->client_mask, EPOLLIN);
    if (!s.ok()) {
      identity_failures.fetch_add(1, std::memory_order_relaxed);
      upstream_failed(*c, "cannot read the client's credentials (" + s.message() + ")");
    } else {
      start_unix_upstream(*c, route, cred);
    }
    drive(*c);
  }
}

void Proxy::Loop::start_tcp_upstream(Conn& c, const steering::Endpoint& to) {
  socklen_t len = 0;
  const sockaddr_storage dst = to.to_sockaddr(&len);
  const int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return upstream_failed(c, errno_text("socket"));
  c.upstream = fd;
  no_delay(fd);
  if (guard_factory) {
    auto guard = guard_factory(fd, reinterpret_cast<const sockaddr*>(&dst), len);
    if (!guard.ok()) return upstream_failed(c, "steering exemption: " + guard.status().message());
    c.guard = std::move(guard.value());
  } else {
    // Bound to the destination's own (local) address, as steering's exemption does, so the
    // server sees the same source either way.
    sockaddr_storage src = dst;
    if (src.ss_family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&src)->sin_port = 0;
    } else {
      reinterpret_cast<sockaddr_in6*>(&src)->sin6_port = 0;
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&src), len) != 0) {
      return upstream_failed(c, errno_text("bind"));
    }
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&dst), len) != 0 && errno != EINPROGRESS) {
    return upstream_failed(c, errno_text("connect"));
  }
  c.connecting = true;
  set_interest(fd, c.upstream_tag, c.upstream_mask, EPOLLOUT);
}

void Proxy::Loop::start_unix_upstream(Conn& c, const UnixRoute& route,
                                      const ClientCredentials& cred) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return upstream_failed(c, errno_text("socket"));
  c.upstream = fd;
  if (guard_factory) {
    auto guard = guard_factory(fd, nullptr, 0);
    if (!guard.ok()) return upstream_failed(c, "steering exemption: " + guard.status().message());
    c.guard = std::move(guard.value());
  }
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, route.server_path.c_str(),
              std::min(route.server_path.size() + 1, sizeof(un.sun_path) - 1));
  int rc = 0, err = 0;
  if (opt.preserve_unix_identity) {
    auto as_client = ThreadCredentials::Assume(cred);
    if (!as_client.ok()) {
      identity_failures.fetch_add(1, std::memory_order_relaxed);
      return upstream_failed(c, "cannot connect as the client: " + as_client.status().message());
    }
    std::optional<LockedSocket> locked;
    if (opt.socket_lock) locked = opt.socket_lock(route.server_path);
    rc = as_client->connect_unix(fd, un, locked ? &*locked : nullptr);
    err = errno;
  } else {
    rc = connect(fd, reinterpret_cast<sockaddr*>(&un), sizeof(un));
    err = errno;
  }
  if (rc != 0 && err != EINPROGRESS) {
    errno = err;
    return upstream_failed(c, errno_text(("connect " + route.server_path).c_str()));
  }
  c.connecting = rc != 0;
  c.connected = rc == 0;
  if (c.connected) {
    c.guard.reset();
    note_unix_server(c);
  }
  set_interest(fd, c.upstream_tag, c.upstream_mask, c.connecting ? EPOLLOUT : EPOLLIN);
}

void Proxy::Loop::finish_connect(Conn& c) {
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(c.upstream, SOL_SOCKET, SO_ERROR, &err, &len);
  c.connecting = false;
  c.guard.reset();
  if (err != 0) {
    errno = err;
    return upstream_failed(c, errno_text("connect"));
  }
  c.connected = true;
  if (c.info.unix_socket) note_unix_server(c);
}

void Proxy::Loop::note_unix_server(Conn& c) {
  // MySQL serves every connection from one process: the peer of the server's unix socket
  // (SO_PEERCRED, the process that listens) is the one the capture names in process.pid.
  // PostgreSQL's is the postmaster, not the backend: its records take BackendKeyData's.
  if (c.info.db_system != "mysql") return;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(c.upstream, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
    c.info.server_pid = static_cast<uint32_t>(cred.pid);
  }
}

void Proxy::Loop::upstream_failed(Conn& c, const std::string& why) {
  upstream_failures.fetch_add(1, std::memory_order_relaxed);
  c.guard.reset();
  c.connecting = false;
  c.connected = false;
  if (c.upstream >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c.upstream, nullptr);
    close(c.upstream);
    c.upstream = -1;
    c.upstream_mask = 0;
  }
  c.relay->on_upstream_failed(why, c.in, c, monotonic_ns());
  c.close_requested = true;
}

void Proxy::Loop::read_client(Conn& c) {
  // Into the loop's buffer, then only what came into the connection's: reserving a whole
  // chunk there would zero 64 KiB per read and keep it per idle connection.
  const ssize_t n = read(c.client, read_buf, sizeof(read_buf));
  if (n > 0 && c.tls) {
    tls_input(c, {read_buf, static_cast<size_t>(n)});
  } else if (n > 0) {
    c.in.append({read_buf, static_cast<size_t>(n)});
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    c.client_eof = true;
  }
}

void Proxy::Loop::tls_input(Conn& c, std::span<const uint8_t> ciphertext) {
  // The plaintext lands in c.in as a plaintext client's bytes would.
  const bool was_done = c.tls->handshake_done();
  const TlsSession::State st = c.tls->on_ciphertext(ciphertext, c.in);
  c.send_tls_output();  // handshake replies and alerts, failed or not
  if (!was_done && c.tls->handshake_done()) {
    tls_handshakes.fetch_add(1, std::memory_order_relaxed);
  }
  if (st == TlsSession::State::kFailed) {
    tls_failures.fetch_add(1, std::memory_order_relaxed);
    c.client_eof = true;  // the alert went out with send_tls_output, if the socket took it
  } else if (st == TlsSession::State::kClosed) {
    c.client_eof = true;
  }
}

void Proxy::Loop::read_upstream(Conn& c) {
  uint8_t* buf = read_buf;
  const ssize_t n = read(c.upstream, buf, sizeof(read_buf));
  if (n > 0) {
    c.relay->on_server({buf, static_cast<size_t>(n)}, c, monotonic_ns());
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    c.upstream_eof = true;
    c.relay->on_upstream_closed();
  }
}

bool Proxy::Loop::flush(int fd, ByteBuffer& buf, std::atomic<uint64_t>& counter) {
  while (!buf.empty()) {
    const auto d = buf.data();
    const ssize_t n = send(fd, d.data(), d.size(), MSG_NOSIGNAL);
    if (n > 0) {
      buf.consume(static_cast<size_t>(n));
      counter.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    return false;  // the peer is gone
  }
  buf.shrink_if_idle();
  return true;
}

void Proxy::Loop::drive(Conn& c) {
  const uint64_t now = monotonic_ns();
  if (c.connected && !c.close_requested) c.relay->on_client(c.in, c, now);
  c.in.shrink_if_idle();
  bool broken = c.broken;
  if (c.connected && !c.out_server.empty()) {
    broken |= !flush(c.upstream, c.out_server, bytes_to_server);
  }
  if (!c.out_client.empty()) broken |= !flush(c.client, c.out_client, bytes_to_client);

  // Done: a side is gone and what the other is owed has been written (or cannot be).
  const bool client_done = c.client_eof;  // nothing more to say to a client that left
  const bool upstream_done = (c.upstream_eof || c.close_requested) && c.out_client.empty();
  if (broken || client_done || upstream_done) return destroy(c);

  const size_t high = opt.high_watermark;
  uint32_t want_client = 0, want_upstream = 0;
  // While a message waits for approval the client is still read (up to the same bound):
  // its end must be seen to withdraw the request.
  const bool reading = c.relay->wants_client_bytes() || c.relay->awaiting_approval();
  if (reading && !c.close_requested && c.in.size() < high + opt.relay.max_judged_bytes &&
      c.out_server.size() < high) {
    want_client |= EPOLLIN;
  }
  if (!c.out_client.empty()) want_client |= EPOLLOUT;
  if (c.connecting) want_upstream |= EPOLLOUT;
  if (c.connected) {
    if (c.out_client.size() < high && !c.upstream_eof) want_upstream |= EPOLLIN;
    if (!c.out_server.empty()) want_upstream |= EPOLLOUT;
  }
  set_interest(c.client, c.client_tag, c.client_mask, want_client);
  if (c.upstream >= 0) set_interest(c.upstream, c.upstream_tag, c.upstream_mask, want_upstream);
}

void Proxy::Loop::approvals_decided() {
  uint64_t n = 0;
  (void)!read(opt.approvals->wake_fd(), &n, sizeof n);
  // Every held connection asks the broker about its own request: a few map lookups per
  // decision, and there are as many held connections as pending requests at most.
  std::vector<Conn*> waiting;
  for (auto& [p, c] : conns) {
    if (!c->dead && c->relay->awaiting_approval()) waiting.push_back(p);
  }
  const uint64_t now = monotonic_ns();
  for (Conn* c : waiting) {
    if (c->dead) continue;
    c->relay->on_approval_decided(*c, now);
    drive(*c);
  }
}

void Proxy::Loop::role_explained() {
  // Each answer names the held connection that asked (by its ticket), if it is still there:
  // only connections awaiting approval are asked, as for the broker's wake-up.
  const uint64_t now = monotonic_ns();
  for (const ExplainAnswer& a : opt.explain_worker->take_answers()) {
    for (auto& [p, c] : conns) {
      if (c->dead || !c->relay->awaiting_approval()) continue;
      if (c->relay->on_role_explained(a.ticket, a.estimate, *c, now)) {
        drive(*c);
        break;
      }
    }
  }
}

void Proxy::Loop::wake_catalog_waiters() {
  // A woken relay may end its connection, which wakes others in turn: until none is left.
  for (std::vector<const void*> woken = pg_catalog.take_woken(); !woken.empty();
       woken = pg_catalog.take_woken()) {
    for (const void* token : woken) {
      auto it = conns.find(static_cast<Conn*>(const_cast<void*>(token)));
      if (it != conns.end() && !it->second->dead) drive(*it->second);
    }
  }
}

void Proxy::Loop::cancel_held(std::span<const uint8_t> key) {
  // Only held connections are asked; the key names one connection at most.
  for (auto& [p, c] : conns) {
    if (!c->dead && c->relay->awaiting_approval() && c->relay->cancel_approval(key)) return;
  }
}

void Proxy::Loop::kill_held(uint16_t server_port, uint32_t thread_id, bool connection,
                            uint32_t by_thread) {
  // As cancel_held: a server thread id names one connection at most (per server port).
  for (auto& [p, c] : conns) {
    if (!c->dead && c->relay->awaiting_approval() &&
        c->relay->kill_approval(server_port, thread_id, connection, by_thread)) {
      return;
    }
  }
}

void Proxy::Loop::expire_approvals(uint64_t now) {
  // At most ten times a second; the epoll timeout (1 s) bounds how late a timeout fires.
  if (now < next_expiry_check) return;
  next_expiry_check = now + 100'000'000ull;
  opt.approvals->expire(now);  // a request it expires wakes approvals_decided()
}

void Proxy::Loop::set_interest(int fd, Tag& tag, uint32_t& current, uint32_t wanted) {
  if (fd < 0 || current == wanted) return;
  epoll_event ev{};
  ev.events = wanted;
  ev.data.ptr = &tag;
  // Registered once with an empty mask too, so that MOD always applies.
  if (current == 0 && epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  } else {
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
  }
  current = wanted;
}

void Proxy::Loop::destroy(Conn& c) {
  c.dead = true;
  c.relay->on_close(monotonic_ns());
  if (c.client >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c.client, nullptr);
    close(c.client);
  }
  if (c.upstream >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c.upstream, nullptr);
    close(c.upstream);
  }
  active.fetch_sub(1, std::memory_order_relaxed);
  auto it = conns.find(&c);
  ended.push_back(std::move(it->second));
  conns.erase(it);
}

Result<std::unique_ptr<Proxy>> Proxy::Start(const Options& options, std::unique_ptr<Judge> judge,
                                            RecordSink& records, UpstreamGuardFactory guard) {
  std::unique_ptr<Proxy> p(new Proxy());
  p->loop_ = std::make_unique<Loop>();
  Loop& l = *p->loop_;
  l.opt = options;
  l.tls_configured = options.client_tls != nullptr;
  l.judge = std::move(judge);
  l.records = &records;
  l.guard_factory = std::move(guard);
  if (Status s = l.listen_all(); !s.ok()) return s;
  p->tcp_ = l.tcp;
  p->thread_ = std::thread([&l] {
    pthread_setname_np(pthread_self(), "dbw-proxy");  // per-thread CPU in top, ps -L
    l.run();
  });
  return p;
}

Proxy::~Proxy() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(loop_->stopfd, &one, sizeof(one));
    thread_.join();
  }
}

Status Proxy::set_client_tls(std::shared_ptr<TlsContext> context) {
  Loop& l = *loop_;
  if (context == nullptr) return Status::Error("proxy: no certificate to switch to");
  std::lock_guard<std::mutex> hold(l.tls_mu);
  if (!l.tls_configured) {
    return Status::Error("proxy: started without TLS: adding it needs a restart");
  }
  l.opt.client_tls = std::move(context);
  return Status::Ok();
}

Stats Proxy::stats() const {
  const Loop& l = *loop_;
  Stats s;
  s.accepted = l.accepted.load(std::memory_order_relaxed);
  s.active = l.active.load(std::memory_order_relaxed);
  s.refused_over_limit = l.refused_over_limit.load(std::memory_order_relaxed);
  s.refused_not_steered = l.refused_not_steered.load(std::memory_order_relaxed);
  s.upstream_failures = l.upstream_failures.load(std::memory_order_relaxed);
  s.identity_failures = l.identity_failures.load(std::memory_order_relaxed);
  s.blocked_messages = l.blocked.load(std::memory_order_relaxed);
  s.tls_handshakes = l.tls_handshakes.load(std::memory_order_relaxed);
  s.tls_failures = l.tls_failures.load(std::memory_order_relaxed);
  s.bytes_to_server = l.bytes_to_server.load(std::memory_order_relaxed);
  s.bytes_to_client = l.bytes_to_client.load(std::memory_order_relaxed);
  const PgCatalogCache::Counters pg = l.pg_catalog.counters();  // atomics: any thread
  s.pg_reach_hits = pg.reach_hits;
  s.pg_reach_misses = pg.reach_misses;
  s.pg_reach_waits = pg.reach_waits;
  s.pg_catalog_evictions = pg.evictions;
  return s;
}

}  // namespace dbwarden::proxy
