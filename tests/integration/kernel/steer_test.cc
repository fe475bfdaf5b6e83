// SPDX-License-Identifier: Apache-2.0
//
// Kernel tests for steering (bpf/steer.bpf.c through userspace/steering): real
// sockets, real connects, the real programs attached to this network namespace
// and the cgroup v2 root. In-process listeners stand in for the database
// server and the proxy. Each case uses its own pin directory, ephemeral ports
// and socket paths in its own temporary directory, so only its own endpoints
// are ever steered. Needs root: without it the binary exits 77 (skip), or 1
// when DBWARDEN_REQUIRE_KERNEL_TESTS is set (CI).
#define CATCH_CONFIG_RUNNER
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "agent/steering_cmd.h"
#include "common/unique_fd.h"
#include "proxy/credentials.h"
#include "steering/steering.h"

namespace dbwarden::steering {
namespace {

constexpr uid_t kOtherUid = 65534;  // nobody

Endpoint ep(const std::string& host, uint16_t port) {
  auto e = Endpoint::parse(host, port);
  REQUIRE(e.ok());
  return *e;
}

// A listening TCP socket on `e` (port 0: ephemeral). v6only for AF_INET6
// unless `dual_stack`.
UniqueFd tcp_listen(const Endpoint& e, bool dual_stack = false) {
  UniqueFd s(socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(s.get() >= 0);
  if (e.family == AF_INET6) {
    int v6only = dual_stack ? 0 : 1;
    REQUIRE(setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) == 0);
  }
  socklen_t len = 0;
  sockaddr_storage a = e.to_sockaddr(&len);
  REQUIRE(bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
  REQUIRE(listen(s.get(), 64) == 0);
  return s;
}

uint16_t local_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return Endpoint::from_sockaddr_unmapped(a).port;
}

// connect() to `e`; returns 0 or the errno.
int tcp_connect(int fd, const Endpoint& e) {
  socklen_t len = 0;
  sockaddr_storage a = e.to_sockaddr(&len);
  return connect(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 ? 0 : errno;
}

// A new blocking TCP client connected to `e`, or the errno in *err.
UniqueFd tcp_client(const Endpoint& e, int* err) {
  UniqueFd s(socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(s.get() >= 0);
  // A refused SYN answers at once; a dropped one would be retried for minutes.
  timeval tv{5, 0};
  REQUIRE(setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
  *err = tcp_connect(s.get(), e);
  return s;
}

// The next connection waiting on `listener`, or -1 when none comes within
// `ms`. A listener that is not chosen has nothing to accept.
UniqueFd accept_within(int listener, int ms) {
  pollfd p{listener, POLLIN, 0};
  if (poll(&p, 1, ms) != 1) return UniqueFd();
  return UniqueFd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

Endpoint sockname(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return Endpoint::from_sockaddr_unmapped(a);
}

sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof(a.sun_path));
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

socklen_t unix_len(const std::string& path) {
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
}

UniqueFd unix_listen(const std::string& path) {
  UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(s.get() >= 0);
  unlink(path.c_str());
  sockaddr_un a = unix_addr(path);
  REQUIRE(bind(s.get(), reinterpret_cast<sockaddr*>(&a), unix_len(path)) == 0);
  REQUIRE(chmod(path.c_str(), 0777) == 0);
  REQUIRE(listen(s.get(), 64) == 0);
  return s;
}

int unix_connect(int fd, const std::string& path) {
  sockaddr_un a = unix_addr(path);
  return connect(fd, reinterpret_cast<sockaddr*>(&a), unix_len(path)) == 0 ? 0 : errno;
}

// What getpeername shows a unix client.
std::string unix_peer(int fd) {
  sockaddr_un a{};
  socklen_t len = sizeof(a);
  REQUIRE(getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  REQUIRE(len >= offsetof(sockaddr_un, sun_path));
  std::string p(a.sun_path, len - offsetof(sockaddr_un, sun_path));
  return p.substr(0, strnlen(p.c_str(), p.size()));
}

// Runs `fn` in a child process under uid/gid `uid`; returns its exit code.
template <typename Fn>
int as_uid(uid_t uid, Fn fn) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) _exit(100);
    // A failed REQUIRE throws: the child must not go on to run the other tests.
    try {
      _exit(fn());
    } catch (...) {
      _exit(201);
    }
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

// A private pin directory and socket directory; steering attached with them
// and removed again by the destructor.
struct Env {
  std::string pin_dir, dir;
  std::unique_ptr<Steering> steering;
  Env() {
    static int n = 0;
    pin_dir =
        "/sys/fs/bpf/dbwarden-steer-test-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    char tmpl[] = "/tmp/dbw-steer-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    REQUIRE(chmod(dir.c_str(), 0755) == 0);  // other uids reach the sockets
    Options o;
    o.pin_dir = pin_dir;
    auto s = Steering::attach(o);
    if (!s.ok()) FAIL(s.status().message());
    steering = std::move(s.value());
    CHECK_FALSE(steering->resumed());
  }
  ~Env() {
    steering.reset();
    Steering::detach(pin_dir);
    std::filesystem::remove_all(dir);
  }
  Counters counters() {
    auto c = steering->counters();
    REQUIRE(c.ok());
    return *c;
  }
};

// A proxy stand-in: a listener per family (a socket bound to ::1 is IPv6-only,
// and sk_assign keeps families apart), in slots 1 and 2; the IPv4 one is also
// the life socket.
struct Proxy {
  UniqueFd v4, v6;
  static constexpr uint32_t kSlot4 = 1, kSlot6 = 2;
  explicit Proxy(Steering& s) {
    v4 = tcp_listen(ep("127.0.0.1", 0));
    v6 = tcp_listen(ep("::1", 0));
    REQUIRE(s.set_proxy_socket(kSlot4, v4.get()).ok());
    REQUIRE(s.set_proxy_socket(kSlot6, v6.get()).ok());
    REQUIRE(s.set_proxy_socket(kLifeSlot, v4.get()).ok());
    REQUIRE(s.set_proxy_alive(true).ok());
  }
  static uint32_t slot(const Endpoint& e) { return e.family == AF_INET6 ? kSlot6 : kSlot4; }
  int listener(const Endpoint& e) const { return e.family == AF_INET6 ? v6.get() : v4.get(); }
  // Accepts the next steered connection for `e`'s family.
  UniqueFd accept_for(const Endpoint& e, int ms = 2000) const {
    return accept_within(listener(e), ms);
  }
  bool idle() const {
    return accept_within(v4.get(), 0).get() < 0 && accept_within(v6.get(), 0).get() < 0;
  }
};

// A client's connect to `e` reaches the proxy, whose accepted socket names
// `e`: that is how the proxy learns where the client was going.
void check_steered(const Proxy& proxy, const Endpoint& e) {
  INFO(e.to_string());
  int err = -1;
  UniqueFd c = tcp_client(e, &err);
  REQUIRE(err == 0);
  UniqueFd accepted = proxy.accept_for(e);
  REQUIRE(accepted.valid());
  CHECK(sockname(accepted.get()) == e);
}

// A network namespace joined to this one by a veth pair: its client reaches
// this namespace's second address (host_addr) as a remote client would.
struct RemoteNetns {
  std::string ns, host_if, host_addr, ns_addr;
  bool ok = false;
  RemoteNetns() {
    std::string id = std::to_string(getpid());
    ns = "dbwst" + id;
    host_if = "dbwsh" + id;
    std::string net = "10.233." + std::to_string(getpid() % 200 + 20);
    host_addr = net + ".1";
    ns_addr = net + ".2";
    std::string cmd =
        "ip netns add " + ns + " && ip link add " + host_if + " type veth peer name dbwsn" + id +
        " && ip link set dbwsn" + id + " netns " + ns + " && ip addr add " + host_addr +
        "/24 dev " + host_if + " && ip link set " + host_if + " up && ip netns exec " + ns +
        " ip addr add " + ns_addr + "/24 dev dbwsn" + id + " && ip netns exec " + ns +
        " ip link set dbwsn" + id + " up && ip netns exec " + ns + " ip link set lo up";
    ok = std::system((cmd + " 2>/dev/null").c_str()) == 0;
  }
  ~RemoteNetns() {
    std::system(
        ("ip netns del " + ns + " 2>/dev/null; ip link del " + host_if + " 2>/dev/null").c_str());
  }
  // connect() from inside the namespace; returns 0 or the errno (or 1000+ on
  // a setup failure).
  int connect_from(const Endpoint& e) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int nsfd = open(("/run/netns/" + ns).c_str(), O_RDONLY);
      if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) _exit(250);
      int s = socket(e.family, SOCK_STREAM, 0);
      // A refused SYN answers at once; a dropped one would retry for minutes.
      timeval tv{5, 0};
      setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      int err = tcp_connect(s, e);
      if (err == 0 && write(s, "r", 1) != 1) _exit(251);
      _exit(err > 249 ? 249 : err);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status) >= 250 ? 1000 + WEXITSTATUS(status) : WEXITSTATUS(status);
  }
};

// A unix "server" and "proxy" in the test's directory.
struct UnixPair {
  std::string server_path, proxy_path;
  UniqueFd server, proxy;
  explicit UnixPair(const Env& env) {
    server_path = env.dir + "/.s.PGSQL.5432";
    proxy_path = env.dir + "/proxy.sock";
    server = unix_listen(server_path);
    proxy = unix_listen(proxy_path);
  }
};

// A TCP server on 127.0.0.1 and a unix one, both protected, and (unless
// told otherwise) a proxy for them.
struct Protected {
  Env env;
  UnixPair u{env};
  UniqueFd server;
  Endpoint dst;
  std::unique_ptr<Proxy> proxy;
  Protected() {
    server = tcp_listen(ep("127.0.0.1", 0));
    dst = ep("127.0.0.1", local_port(server.get()));
    proxy = std::make_unique<Proxy>(*env.steering);
    REQUIRE(env.steering->protect_tcp(dst, Proxy::slot(dst)).ok());
    REQUIRE(env.steering->protect_unix(u.server_path, u.proxy_path).ok());
  }
};

TEST_CASE("tcp: every address the server listens on is steered; other addresses stay refused",
          "[kernel]") {
  Env env;
  RemoteNetns net;
  // The "server": 127.0.0.1, ::1 and, when the namespace could be made, this
  // namespace's veth address, all on one port.
  UniqueFd s4 = tcp_listen(ep("127.0.0.1", 0));
  const uint16_t port = local_port(s4.get());
  UniqueFd s6 = tcp_listen(ep("::1", port));
  UniqueFd s_veth;
  if (net.ok) {
    s_veth = tcp_listen(ep(net.host_addr, port));
  } else {
    WARN("cannot create a network namespace with a veth pair: remote client not tested");
  }
  auto listening = tcp_listen_endpoints(port);
  REQUIRE(listening.ok());
  std::vector<Endpoint> want{ep("127.0.0.1", port), ep("::1", port)};
  if (net.ok) want.push_back(ep(net.host_addr, port));
  CHECK(listening->size() == want.size());
  for (const Endpoint& e : want) {
    CHECK(std::find(listening->begin(), listening->end(), e) != listening->end());
  }

  Proxy proxy(*env.steering);
  for (const Endpoint& e : *listening) REQUIRE(env.steering->protect_tcp(e, Proxy::slot(e)).ok());

  for (const char* host : {"127.0.0.1", "::1"}) {
    check_steered(proxy, ep(host, port));
    CHECK(accept_within(host[0] == ':' ? s6.get() : s4.get(), 0).get() < 0);
  }
  {
    // An IPv6 socket dialling the v4-mapped address sends IPv4: steered too.
    int err = -1;
    UniqueFd c = tcp_client(ep("::ffff:127.0.0.1", port), &err);
    REQUIRE(err == 0);
    UniqueFd accepted = proxy.accept_for(ep("127.0.0.1", port));
    REQUIRE(accepted.valid());
    CHECK(sockname(accepted.get()) == ep("127.0.0.1", port));
    CHECK(accept_within(s4.get(), 0).get() < 0);
  }
  if (net.ok) {
    CHECK(net.connect_from(ep(net.host_addr, port)) == 0);
    UniqueFd accepted = proxy.accept_for(ep(net.host_addr, port));
    REQUIRE(accepted.get() >= 0);
    CHECK(sockname(accepted.get()) == ep(net.host_addr, port));
    CHECK(accept_within(s_veth.get(), 0).get() < 0);
  }
  CHECK(env.counters().tcp_steered == (net.ok ? 4u : 3u));

  // An address the server does not listen on is not protected: refused.
  int err = -1;
  UniqueFd c = tcp_client(ep("127.0.0.2", port), &err);
  CHECK(err == ECONNREFUSED);
  CHECK(proxy.idle());
}

TEST_CASE("tcp: a loopback-only server is not exposed on another address by steering", "[kernel]") {
  Env env;
  RemoteNetns net;
  if (!net.ok) {
    WARN("cannot create a network namespace with a veth pair: case not run");
    return;
  }
  UniqueFd server = tcp_listen(ep("127.0.0.1", 0));
  const uint16_t port = local_port(server.get());
  auto listening = tcp_listen_endpoints(port);
  REQUIRE(listening.ok());
  REQUIRE(listening->size() == 1);
  CHECK(listening->front() == ep("127.0.0.1", port));
  Proxy proxy(*env.steering);
  REQUIRE(env.steering->protect_tcp(listening->front(), Proxy::slot(listening->front())).ok());

  CHECK(net.connect_from(ep(net.host_addr, port)) == ECONNREFUSED);
  int err = -1;
  UniqueFd c6 = tcp_client(ep("::1", port), &err);
  CHECK(err == ECONNREFUSED);
  CHECK(proxy.idle());
  CHECK(env.counters().tcp_steered == 0);
}

TEST_CASE("tcp: a dual-stack wildcard listener protects both families' wildcards", "[kernel]") {
  UniqueFd any = tcp_listen(ep("::", 0), /*dual_stack=*/true);
  const uint16_t port = local_port(any.get());
  auto listening = tcp_listen_endpoints(port);
  REQUIRE(listening.ok());
  REQUIRE(listening->size() == 2);
  CHECK(std::find(listening->begin(), listening->end(), ep("::", port)) != listening->end());
  CHECK(std::find(listening->begin(), listening->end(), ep("0.0.0.0", port)) != listening->end());

  Env env;
  Proxy proxy(*env.steering);
  for (const Endpoint& e : *listening) REQUIRE(env.steering->protect_tcp(e, Proxy::slot(e)).ok());
  for (const char* host : {"127.0.0.1", "127.0.0.3", "::1"}) check_steered(proxy, ep(host, port));
  CHECK(accept_within(any.get(), 0).get() < 0);
}

TEST_CASE("tcp: the proxy's exemption reaches the server, cannot be forged, ignores the uid",
          "[kernel]") {
  Env env;
  UniqueFd server = tcp_listen(ep("127.0.0.1", 0));
  const Endpoint dst = ep("127.0.0.1", local_port(server.get()));
  Proxy proxy(*env.steering);
  REQUIRE(env.steering->protect_tcp(dst, Proxy::slot(dst)).ok());

  // The proxy's upstream socket, exempted, then connected by a process under
  // another uid (the proxy's connector thread switches to its client's uid).
  UniqueFd up(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto ex = env.steering->exempt_tcp(up.get(), dst);
  REQUIRE(ex.ok());
  const Endpoint source = sockname(up.get());
  CHECK(source.addr == dst.addr);
  CHECK(as_uid(kOtherUid, [&] { return tcp_connect(up.get(), dst); }) == 0);
  UniqueFd upstream_accepted = accept_within(server.get(), 2000);
  REQUIRE(upstream_accepted.get() >= 0);
  CHECK(proxy.idle());
  CHECK(env.counters().tcp_exempt == 1);

  // While the exemption stands, nobody can take its source, even with both reuse options.
  for (bool reuse : {false, true}) {
    UniqueFd forger(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    if (reuse) {
      REQUIRE(setsockopt(forger.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
      REQUIRE(setsockopt(forger.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
    }
    socklen_t len = 0;
    sockaddr_storage a = source.to_sockaddr(&len);
    CHECK(bind(forger.get(), reinterpret_cast<sockaddr*>(&a), len) == -1);
    CHECK(errno == EADDRINUSE);
  }
  // A client under another uid that binds the proxy's source address (another
  // port) is steered.
  CHECK(as_uid(kOtherUid, [&] {
          int s = socket(AF_INET, SOCK_STREAM, 0);
          Endpoint src = source;
          src.port = 0;
          socklen_t len = 0;
          sockaddr_storage a = src.to_sockaddr(&len);
          if (bind(s, reinterpret_cast<sockaddr*>(&a), len) != 0) return 90;
          return tcp_connect(s, dst);
        }) == 0);
  CHECK(proxy.accept_for(dst).get() >= 0);
  CHECK(accept_within(server.get(), 0).get() < 0);

  // A source the proxy bound itself is used as it is.
  {
    UniqueFd own(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    socklen_t len = 0;
    sockaddr_storage a = ep("127.0.0.9", 0).to_sockaddr(&len);
    REQUIRE(bind(own.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
    auto own_ex = env.steering->exempt_tcp(own.get(), dst);
    REQUIRE(own_ex.ok());
    CHECK(tcp_connect(own.get(), dst) == 0);
    UniqueFd got = accept_within(server.get(), 2000);
    REQUIRE(got.valid());
    sockaddr_storage pa{};
    socklen_t plen = sizeof(pa);
    REQUIRE(getpeername(got.get(), reinterpret_cast<sockaddr*>(&pa), &plen) == 0);
    CHECK(Endpoint::from_sockaddr_unmapped(pa).addr == ep("127.0.0.9", 0).addr);
    CHECK(proxy.idle());
  }
  // A socket with SO_REUSEADDR cannot be exempt: others could share its source.
  {
    UniqueFd shared(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int on = 1;
    REQUIRE(setsockopt(shared.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0);
    CHECK_FALSE(env.steering->exempt_tcp(shared.get(), dst).ok());
  }

  // Released, and the source freed: the same tuple is an ordinary client.
  // (The server closes first, so the source is not held in TIME_WAIT.)
  ex->release();
  upstream_accepted.reset();
  char b;
  CHECK(recv(up.get(), &b, 1, 0) == 0);
  up.reset();
  UniqueFd again(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  socklen_t len = 0;
  sockaddr_storage a = source.to_sockaddr(&len);
  REQUIRE(bind(again.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
  CHECK(tcp_connect(again.get(), dst) == 0);
  CHECK(proxy.accept_for(dst).get() >= 0);
  CHECK(accept_within(server.get(), 0).get() < 0);
}

TEST_CASE("tcp: an exemption left by a dead proxy opens nothing", "[kernel]") {
  Env env;
  UniqueFd server = tcp_listen(ep("127.0.0.1", 0));
  const Endpoint dst = ep("127.0.0.1", local_port(server.get()));
  auto proxy = std::make_unique<Proxy>(*env.steering);
  REQUIRE(env.steering->protect_tcp(dst, Proxy::slot(dst)).ok());
  UniqueFd up(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto ex = env.steering->exempt_tcp(up.get(), dst);
  REQUIRE(ex.ok());
  const Endpoint source = sockname(up.get());
  // The proxy dies holding the exemption: its sockets close, the entry stays.
  proxy.reset();
  up.reset();
  UniqueFd forger(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  socklen_t len = 0;
  sockaddr_storage a = source.to_sockaddr(&len);
  REQUIRE(bind(forger.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
  CHECK(tcp_connect(forger.get(), dst) == ECONNREFUSED);  // fail closed, not exempt
  CHECK(accept_within(server.get(), 0).get() < 0);
  // A restarted proxy's attach() drops what the dead one left.
  auto restarted = Steering::attach(Options{env.pin_dir, "", "/proc/self/ns/net"});
  REQUIRE(restarted.ok());
  CHECK((*restarted)->resumed());
  Proxy again(**restarted);
  forger = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  REQUIRE(setsockopt(forger.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
  REQUIRE(bind(forger.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
  CHECK(tcp_connect(forger.get(), dst) == 0);
  CHECK(again.accept_for(dst).get() >= 0);
  CHECK(accept_within(server.get(), 0).get() < 0);
}

TEST_CASE("unix: a connect to a protected path reaches the proxy; getpeername shows the path",
          "[kernel]") {
  Env env;
  UnixPair u(env);
  Proxy life(*env.steering);
  REQUIRE(env.steering->protect_unix(u.server_path, u.proxy_path).ok());
  auto paths = env.steering->protected_unix();
  REQUIRE(paths.ok());
  CHECK(*paths == std::vector<std::string>{u.server_path});

  UniqueFd c(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(unix_connect(c.get(), u.server_path) == 0);
  UniqueFd accepted = accept_within(u.proxy.get(), 2000);
  REQUIRE(accepted.get() >= 0);
  CHECK(accept_within(u.server.get(), 0).get() < 0);
  CHECK(unix_peer(c.get()) == u.server_path);
  // The proxy sees its client's credentials.
  ucred cred{};
  socklen_t len = sizeof(cred);
  REQUIRE(getsockopt(accepted.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0);
  CHECK(cred.pid == getpid());

  // A whole sockaddr_un with NUL padding, as many clients pass it.
  UniqueFd padded(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a = unix_addr(u.server_path);
  REQUIRE(connect(padded.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  CHECK(accept_within(u.proxy.get(), 2000).get() >= 0);
  CHECK(unix_peer(padded.get()) == u.server_path);

  // Another uid is steered too.
  CHECK(as_uid(kOtherUid, [&] {
          int s = socket(AF_UNIX, SOCK_STREAM, 0);
          int err = unix_connect(s, u.server_path);
          if (err) return err;
          return unix_peer(s) == u.server_path ? 0 : 91;
        }) == 0);
  CHECK(accept_within(u.proxy.get(), 2000).get() >= 0);
  CHECK(accept_within(u.server.get(), 0).get() < 0);
  CHECK(env.counters().unix_steered == 3);

  // A path that is not protected is left alone.
  const std::string other = env.dir + "/other.sock";
  UniqueFd other_server = unix_listen(other);
  UniqueFd o(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(unix_connect(o.get(), other) == 0);
  CHECK(accept_within(other_server.get(), 2000).get() >= 0);
  CHECK(unix_peer(o.get()) == other);
}

TEST_CASE("unix: the proxy's exemption is its socket's cookie, whatever the uid", "[kernel]") {
  Env env;
  UnixPair u(env);
  Proxy life(*env.steering);
  REQUIRE(env.steering->protect_unix(u.server_path, u.proxy_path).ok());

  UniqueFd up(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto ex = env.steering->exempt_unix(up.get());
  REQUIRE(ex.ok());
  // Connected by a process under another uid, as the proxy's connector does.
  CHECK(as_uid(kOtherUid, [&] { return unix_connect(up.get(), u.server_path); }) == 0);
  UniqueFd accepted = accept_within(u.server.get(), 2000);
  REQUIRE(accepted.get() >= 0);
  ucred cred{};
  socklen_t len = sizeof(cred);
  REQUIRE(getsockopt(accepted.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0);
  CHECK(cred.uid == kOtherUid);
  CHECK(accept_within(u.proxy.get(), 0).get() < 0);
  CHECK(env.counters().unix_exempt == 1);

  // Any other socket, of any uid, is steered while the exemption stands.
  CHECK(as_uid(kOtherUid, [&] {
          int s = socket(AF_UNIX, SOCK_STREAM, 0);
          return unix_connect(s, u.server_path);
        }) == 0);
  CHECK(accept_within(u.proxy.get(), 2000).get() >= 0);
  CHECK(accept_within(u.server.get(), 0).get() < 0);
}

TEST_CASE_METHOD(Protected,
                 "fail closed: with the proxy gone or marked down, connects are refused at once",
                 "[kernel]") {
  auto st = env.steering->state();
  REQUIRE(st.ok());
  CHECK(st->proxy_alive);
  CHECK(st->life_socket);
  CHECK(st->fail_mode == FailMode::kClosed);

  // Marked down from outside (ExecStopPost=, the agent): the proxy still runs.
  auto outside = Steering::open_pinned(env.pin_dir);
  REQUIRE(outside.ok());
  REQUIRE((*outside)->set_proxy_alive(false).ok());
  int err = -1;
  UniqueFd c = tcp_client(dst, &err);
  CHECK(err == ECONNREFUSED);
  UniqueFd cu(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CHECK(unix_connect(cu.get(), u.server_path) == ECONNREFUSED);
  CHECK(proxy->idle());
  CHECK(accept_within(u.proxy.get(), 0).get() < 0);

  // Alive again, then the proxy's sockets close (as when it is killed).
  REQUIRE(env.steering->set_proxy_alive(true).ok());
  c = tcp_client(dst, &err);
  CHECK(err == 0);
  CHECK(proxy->accept_for(dst).get() >= 0);
  proxy.reset();
  st = env.steering->state();
  REQUIRE(st.ok());
  CHECK_FALSE(st->life_socket);
  c = tcp_client(dst, &err);
  CHECK(err == ECONNREFUSED);
  cu = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CHECK(unix_connect(cu.get(), u.server_path) == ECONNREFUSED);
  CHECK(accept_within(server.get(), 0).get() < 0);
  CHECK(accept_within(u.server.get(), 0).get() < 0);
  Counters n = env.counters();
  CHECK(n.tcp_fail_closed == 2);
  CHECK(n.unix_fail_closed == 2);
}

TEST_CASE_METHOD(Protected, "fail open: with the proxy gone, connects go straight to the server",
                 "[kernel]") {
  REQUIRE(env.steering->set_fail_mode(FailMode::kOpen).ok());
  int err = -1;
  UniqueFd c = tcp_client(dst, &err);
  REQUIRE(err == 0);
  CHECK(proxy->accept_for(dst).get() >= 0);

  proxy.reset();
  c = tcp_client(dst, &err);
  CHECK(err == 0);
  CHECK(accept_within(server.get(), 2000).get() >= 0);
  UniqueFd cu(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CHECK(unix_connect(cu.get(), u.server_path) == 0);
  CHECK(accept_within(u.server.get(), 2000).get() >= 0);
  CHECK(unix_peer(cu.get()) == u.server_path);
  CHECK(accept_within(u.proxy.get(), 0).get() < 0);
  Counters n = env.counters();
  CHECK(n.tcp_fail_open == 1);
  CHECK(n.unix_fail_open == 1);
}

TEST_CASE_METHOD(Protected,
                 "fail closed after kill -9: the first connect after the proxy's death is refused",
                 "[kernel]") {
  // The child process below is the proxy.
  proxy.reset();
  u.proxy.reset();
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      auto s = Steering::open_pinned(env.pin_dir);
      if (!s.ok()) _exit(1);
      Proxy child(**s);
      UniqueFd ul = unix_listen(u.proxy_path);
      if (write(ready[1], "r", 1) != 1) _exit(2);
      for (;;) pause();
    } catch (...) {
      _exit(3);  // a failed REQUIRE: not on to the other tests
    }
  }
  close(ready[1]);  // a child that fails before it is ready ends the read
  char r;
  REQUIRE(read(ready[0], &r, 1) == 1);
  int err = -1;
  UniqueFd c = tcp_client(dst, &err);
  REQUIRE(err == 0);  // steered to the child
  REQUIRE(kill(pid, SIGKILL) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  // Nothing cleared the flag: the kernel saw the sockets close.
  auto st = env.steering->state();
  REQUIRE(st.ok());
  CHECK(st->proxy_alive);
  CHECK_FALSE(st->life_socket);
  c = tcp_client(dst, &err);
  CHECK(err == ECONNREFUSED);
  UniqueFd cu(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CHECK(unix_connect(cu.get(), u.server_path) == ECONNREFUSED);
  CHECK(accept_within(server.get(), 0).get() < 0);
  CHECK(accept_within(u.server.get(), 0).get() < 0);
  close(ready[0]);
}

TEST_CASE_METHOD(Protected,
                 "pins: steering outlives the loader object and is reused; detach removes it",
                 "[kernel]") {
  env.steering.reset();  // the loader is gone, the pins hold everything

  int err = -1;
  UniqueFd c = tcp_client(dst, &err);
  REQUIRE(err == 0);
  CHECK(proxy->accept_for(dst).get() >= 0);
  UniqueFd cu(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(unix_connect(cu.get(), u.server_path) == 0);
  CHECK(accept_within(u.proxy.get(), 2000).get() >= 0);

  // A restarted proxy: attach() reuses the pins, the new socket takes over.
  proxy.reset();
  auto again = Steering::attach(Options{env.pin_dir, "", "/proc/self/ns/net"});
  REQUIRE(again.ok());
  CHECK((*again)->resumed());
  auto programs = (*again)->program_stats();
  REQUIRE(programs.ok());
  REQUIRE(programs->size() == 3);
  CHECK(programs->front().name == "link_tcp");
  auto tcp = (*again)->protected_tcp();
  REQUIRE(tcp.ok());
  CHECK(*tcp == std::vector<Endpoint>{dst});
  Proxy restarted(**again);
  c = tcp_client(dst, &err);
  REQUIRE(err == 0);
  CHECK(restarted.accept_for(dst).get() >= 0);
  CHECK(accept_within(server.get(), 0).get() < 0);

  int removed = 0;
  REQUIRE(Steering::detach(env.pin_dir, &removed).ok());
  CHECK(removed == 12);  // 9 maps, 3 links
  CHECK_FALSE(std::filesystem::exists(env.pin_dir));
  again->reset();  // our own map fds: the last references
  c = tcp_client(dst, &err);
  CHECK(err == 0);
  CHECK(accept_within(server.get(), 2000).get() >= 0);
  cu = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CHECK(unix_connect(cu.get(), u.server_path) == 0);
  CHECK(accept_within(u.server.get(), 2000).get() >= 0);
  CHECK(unix_peer(cu.get()) == u.server_path);
  CHECK_FALSE(Steering::open_pinned(env.pin_dir).ok());
}

TEST_CASE_METHOD(Protected, "dbwarden steering: mark-down takes a living proxy out; detach",
                 "[kernel]") {
  auto cmd = [this](const char* command) {
    const char* argv[] = {"steering", command, "--steer-pin-dir", env.pin_dir.c_str()};
    return agent::steering_main(4, argv);
  };
  CHECK(cmd("status") == 0);
  REQUIRE(cmd("mark-down") == 0);
  auto st = env.steering->state();
  REQUIRE(st.ok());
  CHECK_FALSE(st->proxy_alive);
  CHECK(st->life_socket);  // the proxy still runs
  int err = -1;
  UniqueFd c = tcp_client(dst, &err);
  CHECK(err == ECONNREFUSED);
  CHECK(proxy->idle());
  CHECK(cmd("bogus") == 2);
  REQUIRE(cmd("detach") == 0);
  CHECK_FALSE(std::filesystem::exists(env.pin_dir));
  CHECK(cmd("mark-down") == 0);  // nothing attached: nothing to mark down (ExecStopPost=)
  CHECK(cmd("status") == 1);
}

TEST_CASE("pins: an incomplete set is replaced, not reused", "[kernel]") {
  Env env;
  REQUIRE(env.steering->protect_tcp(ep("127.0.0.1", 1), Proxy::kSlot4).ok());
  env.steering.reset();
  REQUIRE(unlink((env.pin_dir + "/steer_unix").c_str()) == 0);
  auto again = Steering::attach(Options{env.pin_dir, "", "/proc/self/ns/net"});
  REQUIRE(again.ok());
  CHECK_FALSE((*again)->resumed());
  CHECK((*again)->replaced_reason() == "steer_unix is not pinned");
  auto tcp = (*again)->protected_tcp();
  REQUIRE(tcp.ok());
  CHECK(tcp->empty());  // fresh maps
  // And it steers.
  UniqueFd server = tcp_listen(ep("127.0.0.1", 0));
  const Endpoint dst = ep("127.0.0.1", local_port(server.get()));
  Proxy proxy(**again);
  REQUIRE((*again)->protect_tcp(dst, Proxy::slot(dst)).ok());
  check_steered(proxy, dst);
}

TEST_CASE("existing connections are listed, and terminated on request", "[kernel]") {
  Env env;
  UniqueFd server = tcp_listen(ep("127.0.0.1", 0));
  const Endpoint dst = ep("127.0.0.1", local_port(server.get()));
  UnixPair u(env);
  int err = -1;
  UniqueFd c = tcp_client(dst, &err);
  REQUIRE(err == 0);
  const Endpoint client_end = sockname(c.get());
  UniqueFd served = accept_within(server.get(), 2000);
  REQUIRE(served.get() >= 0);
  UniqueFd cu(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(unix_connect(cu.get(), u.server_path) == 0);
  UniqueFd served_u = accept_within(u.server.get(), 2000);
  REQUIRE(served_u.get() >= 0);

  auto tcp = list_existing_tcp({dst});
  REQUIRE(tcp.ok());
  REQUIRE(tcp->size() == 1);
  CHECK(tcp->front().server == dst);
  CHECK(tcp->front().client == client_end);
  struct stat st {};
  REQUIRE(fstat(served.get(), &st) == 0);
  CHECK(tcp->front().inode == st.st_ino);
  auto unixes = list_existing_unix({u.server_path});
  REQUIRE(unixes.ok());
  REQUIRE(unixes->size() == 1);
  REQUIRE(fstat(served_u.get(), &st) == 0);
  CHECK(unixes->front().inode == st.st_ino);
  CHECK(unixes->front().path == u.server_path);
  REQUIRE(fstat(cu.get(), &st) == 0);
  CHECK(unixes->front().peer_inode == st.st_ino);

  REQUIRE(terminate(tcp->front()).ok());
  char b;
  CHECK(recv(c.get(), &b, 1, 0) == -1);
  CHECK(errno == ECONNRESET);
  REQUIRE(terminate(unixes->front()).ok());
  CHECK(recv(cu.get(), &b, 1, 0) == 0);
  CHECK(recv(served_u.get(), &b, 1, 0) == 0);
  auto after = list_existing_tcp({dst});
  REQUIRE(after.ok());
  CHECK(after->empty());
}

TEST_CASE("existing connections of a dual-stack server: IPv4 clients listed and terminated",
          "[kernel]") {
  UniqueFd any = tcp_listen(ep("::", 0), /*dual_stack=*/true);
  const uint16_t port = local_port(any.get());
  auto servers = tcp_listen_endpoints(port);
  REQUIRE(servers.ok());
  int err = -1;
  UniqueFd c4 = tcp_client(ep("127.0.0.1", port), &err);
  REQUIRE(err == 0);
  UniqueFd c6 = tcp_client(ep("::1", port), &err);
  REQUIRE(err == 0);
  UniqueFd s1 = accept_within(any.get(), 2000), s2 = accept_within(any.get(), 2000);
  REQUIRE((s1.valid() && s2.valid()));
  auto existing = list_existing_tcp(*servers);
  REQUIRE(existing.ok());
  REQUIRE(existing->size() == 2);
  for (const ExistingConnection& c : *existing) {
    INFO(c.to_string());
    // The IPv4 client shows as IPv4, though the server's socket is IPv6.
    CHECK((c.client == sockname(c4.get()) || c.client == sockname(c6.get())));
    REQUIRE(terminate(c).ok());
  }
  char b;
  for (int fd : {c4.get(), c6.get()}) {
    CHECK(recv(fd, &b, 1, 0) == -1);
    CHECK(errno == ECONNRESET);
  }
}

uint32_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// connect() to `path` as uid kOtherUid after chdir to `cwd` (when not empty): 0 or the errno.
int other_connect(const std::string& path, const std::string& cwd = "") {
  return as_uid(kOtherUid, [&] {
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) return 250;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    return unix_connect(s, path);
  });
}

TEST_CASE("unix lock: other paths to a locked socket are refused, the steered one is not",
          "[kernel]") {
  Env env;
  UnixPair u(env);
  Proxy life(*env.steering);
  REQUIRE(env.steering->protect_unix(u.server_path, u.proxy_path).ok());
  REQUIRE(chmod(u.server_path.c_str(), 0777) == 0);  // as PostgreSQL leaves it
  const std::string link = env.dir + "/alias.sock";
  REQUIRE(symlink(u.server_path.c_str(), link.c_str()) == 0);
  // Without the lock another path reaches the server: the hole being closed.
  CHECK(other_connect(".s.PGSQL.5432", env.dir) == 0);
  CHECK(accept_within(u.server.get(), 2000).get() >= 0);

  auto locked = env.steering->lock_unix(u.server_path);
  REQUIRE(locked.ok());
  CHECK(*locked);
  CHECK(mode_of(u.server_path) == 0700);
  auto again = env.steering->lock_unix(u.server_path);
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  CHECK(other_connect(".s.PGSQL.5432", env.dir) == EACCES);
  CHECK(other_connect(link) == EACCES);
  CHECK(other_connect(env.dir + "//.s.PGSQL.5432") == EACCES);
  CHECK(accept_within(u.server.get(), 0).get() < 0);
  // The protected path itself is steered, lock or not.
  CHECK(other_connect(u.server_path) == 0);
  CHECK(accept_within(u.proxy.get(), 2000).get() >= 0);

  auto current = env.steering->current_lock(u.server_path);
  REQUIRE(current.ok());
  REQUIRE(current->has_value());
  CHECK((*current)->mode == 0777);
  CHECK((*current)->locked_mode == 0700);
  auto locks = env.steering->unix_locks();
  REQUIRE(locks.ok());
  REQUIRE(locks->size() == 1);
  CHECK(locks->front().path == u.server_path);

  // detach gives the old bits back, from the pins alone (as after a crash).
  env.steering.reset();
  REQUIRE(Steering::detach(env.pin_dir).ok());
  CHECK(mode_of(u.server_path) == 0777);
}

TEST_CASE("unix lock: a new socket at the path is locked anew; an owner's chmod is kept",
          "[kernel]") {
  Env env;
  UnixPair u(env);
  REQUIRE(chmod(u.server_path.c_str(), 0777) == 0);
  REQUIRE(env.steering->lock_unix(u.server_path).ok());
  // The server restarts: a new inode, with the server's own mode, not locked yet.
  u.server.reset();
  REQUIRE(unlink(u.server_path.c_str()) == 0);
  u.server = unix_listen(u.server_path);
  REQUIRE(chmod(u.server_path.c_str(), 0770) == 0);
  // (ext4 gives the new socket the old one's inode number at once: the watcher, which saw
  // it made, says so.)
  auto locked = env.steering->lock_unix(u.server_path, /*new_socket=*/true);
  REQUIRE(locked.ok());
  CHECK(*locked);
  auto current = env.steering->current_lock(u.server_path);
  REQUIRE(current.ok());
  REQUIRE(current->has_value());
  CHECK((*current)->mode == 0770);
  // Its owner changes the mode while locked: that is the mode from now on.
  REQUIRE(chmod(u.server_path.c_str(), 0750) == 0);
  REQUIRE(env.steering->unlock_unix(u.server_path).ok());
  CHECK(mode_of(u.server_path) == 0750);
  auto locks = env.steering->unix_locks();
  REQUIRE(locks.ok());
  CHECK(locks->empty());
  // Locks of pins replaced by another build are given back before the replacement.
  REQUIRE(chmod(u.server_path.c_str(), 0777) == 0);
  REQUIRE(env.steering->lock_unix(u.server_path).ok());
  auto n = env.steering->unlock_all();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(mode_of(u.server_path) == 0777);
  // A path that is not a socket is never changed.
  const std::string file = env.dir + "/plain";
  UniqueFd f(open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  CHECK_FALSE(env.steering->lock_unix(file).ok());
  CHECK(mode_of(file) == 0644);
}

// The proxy's connector for `who`: a new socket exempted from steering, connected to `to` with
// the thread's credentials switched to the client's, past `lock` when given.
struct LockedConnect {
  UniqueFd fd;
  int error = 0;  // 0: connected; else the errno
};
LockedConnect connect_as(Steering& steering, const proxy::ClientCredentials& who,
                         const sockaddr_un& to, const proxy::LockedSocket* lock) {
  LockedConnect out;
  out.fd = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto exempt = steering.exempt_unix(out.fd.get());
  REQUIRE(exempt.ok());
  auto as = proxy::ThreadCredentials::Assume(who);
  REQUIRE(as.ok());
  if (as->connect_unix(out.fd.get(), to, lock) != 0) out.error = errno;
  return out;
}

TEST_CASE("unix lock: the connector reaches a locked socket as its client, by the old bits",
          "[kernel]") {
  Env env;
  UnixPair u(env);
  Proxy life(*env.steering);
  REQUIRE(env.steering->protect_unix(u.server_path, u.proxy_path).ok());
  REQUIRE(chmod(u.server_path.c_str(), 0777) == 0);
  REQUIRE(env.steering->lock_unix(u.server_path).ok());
  auto current = env.steering->current_lock(u.server_path);
  REQUIRE(current.ok());
  REQUIRE(current->has_value());
  const proxy::LockedSocket old{(*current)->uid, (*current)->gid, (*current)->mode};
  proxy::ClientCredentials nobody{kOtherUid, kOtherUid, {}};
  sockaddr_un a = unix_addr(u.server_path);

  // Allowed by the old bits (0777): connected as the client, SO_PEERCRED says so. Without
  // the lock's exception the client itself is refused.
  CHECK(connect_as(*env.steering, nobody, a, nullptr).error == EACCES);
  LockedConnect up = connect_as(*env.steering, nobody, a, &old);
  CHECK(up.error == 0);
  CHECK(geteuid() == 0);  // the thread is itself again
  UniqueFd accepted = accept_within(u.server.get(), 2000);
  REQUIRE(accepted.get() >= 0);
  ucred cred{};
  socklen_t len = sizeof(cred);
  REQUIRE(getsockopt(accepted.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0);
  CHECK(cred.uid == kOtherUid);

  // Refused by the old bits (0770, not in the group): the proxy opens nothing more.
  proxy::LockedSocket group_only = old;
  group_only.mode = 0770;
  CHECK(connect_as(*env.steering, nobody, a, &group_only).error == EACCES);
  // A member of the socket's group is let in by the group bits.
  proxy::ClientCredentials member{kOtherUid, kOtherUid, {group_only.group}};
  CHECK(proxy::MayConnect(member, group_only));
  CHECK_FALSE(proxy::MayConnect(nobody, group_only));
  // The owner is judged by the owner's bits alone.
  proxy::ClientCredentials owner{1234, 1234, {}};
  CHECK_FALSE(proxy::MayConnect(owner, proxy::LockedSocket{1234, 0, 0077}));
  // The directories are checked as the client, by the kernel: none to search, no connect.
  REQUIRE(chmod(env.dir.c_str(), 0700) == 0);
  CHECK(connect_as(*env.steering, nobody, a, &old).error == EACCES);
  REQUIRE(chmod(env.dir.c_str(), 0755) == 0);
}

TEST_CASE("unix lock: the watcher reports a socket made anew and a chmod, also in a directory "
          "made again",
          "[kernel]") {
  char tmpl[] = "/tmp/dbw-watch-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = std::string(tmpl) + "/run";
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  const std::string path = dir + "/mysqld.sock";
  std::mutex mu;
  std::vector<std::pair<std::string, bool>> seen;
  auto w = LockWatcher::Start({path}, [&](const std::string& p, bool created) {
    std::lock_guard<std::mutex> hold(mu);
    seen.emplace_back(p, created);
  });
  REQUIRE(w.ok());
  auto wait_for = [&](size_t n) {
    for (int i = 0; i < 400; i++) {
      {
        std::lock_guard<std::mutex> hold(mu);
        if (seen.size() >= n) return true;
      }
      usleep(5000);
    }
    return false;
  };
  auto at = [&](size_t i) {
    std::lock_guard<std::mutex> hold(mu);
    return seen.at(i);
  };
  {
    UniqueFd s = unix_listen(path);
    REQUIRE(wait_for(1));
    CHECK(at(0) == std::make_pair(path, true));
    REQUIRE(chmod(path.c_str(), 0777) == 0);
    REQUIRE(wait_for(2));
    CHECK(at(1) == std::make_pair(path, false));
    // Another file in the directory is not reported.
    UniqueFd other = unix_listen(dir + "/other.sock");
    usleep(50000);
    std::lock_guard<std::mutex> hold(mu);
    CHECK(seen.size() == 2);
  }
  // The server's runtime directory is removed and made again.
  std::filesystem::remove_all(dir);
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  (*w)->rewatch();
  UniqueFd again = unix_listen(path);
  CHECK(wait_for(3));
  w->reset();
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace dbwarden::steering

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    bool required = std::getenv("DBWARDEN_REQUIRE_KERNEL_TESTS") != nullptr;
    std::fprintf(stderr, "kernel steering tests need root to load BPF programs: %s\n",
                 required ? "FAILING (DBWARDEN_REQUIRE_KERNEL_TESTS is set)" : "skipped");
    return required ? 1 : 77;
  }
  return Catch::Session().run(argc, argv);
}
