// SPDX-License-Identifier: Apache-2.0
//
// Kernel test of the identity resolver: a forked child with a loginuid set by
// the test, in a cgroup made by the test, under another uid, connects over
// loopback TCP (IPv4, IPv6, IPv4-mapped) and over a unix stream socket; the
// resolver must name exactly that child. Needs root (loginuid, cgroups,
// setuid, other processes' /proc/<pid>/fd): without it the binary exits 77
// (skip), or 1 when DBWARDEN_REQUIRE_KERNEL_TESTS is set (CI).
#define CATCH_CONFIG_RUNNER
#include "identity/identity.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace dbwarden::identity {
namespace {

constexpr char kPeerComm[] = "dbw-id-peer";

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// The cgroup v2 mount: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
std::string cgroup2_mount() {
  std::ifstream mounts("/proc/mounts");
  std::string dev, dir, type, rest;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
    if (type == "cgroup2") return dir;
  }
  return "";
}

// A cgroup made by the test, removed at the end. Named like a systemd scope so
// that the whole chain (cgroup -> unit) is checked.
struct TestCgroup {
  std::string dir;   // absolute directory, "" when none could be made
  std::string path;  // as /proc/<pid>/cgroup shows it
  TestCgroup() {
    std::string mount = cgroup2_mount();
    if (mount.empty()) return;
    std::string name = "dbwarden-identity-test-" + std::to_string(getpid()) + ".scope";
    // Our own v2 cgroup is the parent, so the path is relative to it.
    std::ifstream self("/proc/self/cgroup");
    std::string line, own = "/";
    while (std::getline(self, line)) {
      if (line.rfind("0::", 0) == 0) own = line.substr(3);
    }
    std::string rel = (own == "/" ? "" : own) + "/" + name;
    if (mkdir((mount + rel).c_str(), 0755) != 0) {
      WARN("cannot make a test cgroup under " << mount << ": " << std::strerror(errno));
      return;
    }
    dir = mount + rel;
    path = rel;
  }
  ~TestCgroup() {
    if (!dir.empty() && rmdir(dir.c_str()) != 0) {
      std::fprintf(stderr, "could not remove %s: %s\n", dir.c_str(), std::strerror(errno));
    }
  }
};

struct Listener {
  int fd = -1;
  sockaddr_storage addr{};
  socklen_t len = 0;
  ~Listener() {
    if (fd >= 0) close(fd);
  }
};

bool listen_inet(Listener& l, int family, const char* bind_text) {
  l.fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l.fd < 0) return false;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&l.addr);
    a->sin_family = AF_INET;
    inet_pton(AF_INET, bind_text, &a->sin_addr);
    l.len = sizeof(*a);
  } else {
    int off = 0;
    setsockopt(l.fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    auto* a = reinterpret_cast<sockaddr_in6*>(&l.addr);
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, bind_text, &a->sin6_addr);
    l.len = sizeof(*a);
  }
  if (bind(l.fd, reinterpret_cast<sockaddr*>(&l.addr), l.len) != 0) return false;
  if (listen(l.fd, 8) != 0) return false;
  return getsockname(l.fd, reinterpret_cast<sockaddr*>(&l.addr), &l.len) == 0;
}

bool listen_unix(Listener& l, const std::string& path) {
  l.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto* a = reinterpret_cast<sockaddr_un*>(&l.addr);
  a->sun_family = AF_UNIX;
  std::snprintf(a->sun_path, sizeof(a->sun_path), "%s", path.c_str());
  l.len = sizeof(*a);
  unlink(path.c_str());
  return bind(l.fd, reinterpret_cast<sockaddr*>(&l.addr), l.len) == 0 && listen(l.fd, 8) == 0;
}

// What the child reports back before it waits to be told to exit.
struct ChildReport {
  int loginuid_errno = 0;  // 0: /proc/self/loginuid accepted the write
  int cgroup_errno = 0;
  int connect_errno = 0;
  int setuid_errno = 0;
};

struct Target {
  sockaddr_storage addr;
  socklen_t len;
  // For a dual-stack listener bound to ::, the child connects to 127.0.0.1.
  bool via_ipv4 = false;
};

struct Peer {
  pid_t pid = -1;
  int go = -1;  // closing it lets the child exit
  ChildReport report;
  void finish() {
    if (go >= 0) close(go);
    go = -1;
    if (pid > 0) waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~Peer() { finish(); }
};

// Forks the peer: name it, set its loginuid, move it into the cgroup, connect
// to every target as root, then drop to uid/gid `run_as` and wait.
void spawn_peer(Peer& peer, const std::vector<Target>& targets, uint32_t login_uid,
                const std::string& cgroup_dir, uid_t run_as) {
  int ready[2], go[2];
  REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
  REQUIRE(pipe2(go, O_CLOEXEC) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(ready[0]);
    close(go[1]);
    ChildReport r;
    prctl(PR_SET_NAME, kPeerComm);
    // Once per process, and only while unset (audit_set_loginuid, kernel/audit.c).
    int fd = open("/proc/self/loginuid", O_WRONLY);
    std::string v = std::to_string(login_uid);
    if (fd < 0 || write(fd, v.data(), v.size()) != static_cast<ssize_t>(v.size())) {
      r.loginuid_errno = errno;
    }
    if (fd >= 0) close(fd);
    if (!cgroup_dir.empty()) {
      fd = open((cgroup_dir + "/cgroup.procs").c_str(), O_WRONLY);
      if (fd < 0 || write(fd, "0", 1) != 1) r.cgroup_errno = errno;
      if (fd >= 0) close(fd);
    }
    for (const auto& t : targets) {
      int s = socket(t.addr.ss_family, SOCK_STREAM, 0);  // no CLOEXEC: kept on purpose
      if (s < 0 || connect(s, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0) {
        r.connect_errno = errno;
      }
    }
    if (setgroups(0, nullptr) != 0 || setresgid(run_as, run_as, run_as) != 0 ||
        setresuid(run_as, run_as, run_as) != 0) {
      r.setuid_errno = errno;
    }
    ssize_t w = write(ready[1], &r, sizeof(r));
    (void)w;
    char c;
    while (read(go[0], &c, 1) > 0) {
    }
    _exit(0);
  }
  close(ready[1]);
  close(go[0]);
  peer.pid = pid;
  peer.go = go[1];
  REQUIRE(read(ready[0], &peer.report, sizeof(peer.report)) ==
          static_cast<ssize_t>(sizeof(peer.report)));
  close(ready[0]);
}

Target target_of(const Listener& l) {
  Target t{};
  t.addr = l.addr;
  t.len = l.len;
  return t;
}

std::string text_of(const sockaddr_storage& a, uint16_t& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf));
    port = ntohs(s->sin_port);
  } else {
    auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof(buf));
    port = ntohs(s->sin6_port);
  }
  return buf;
}

// The server side of an accepted TCP connection as the agent sees it.
struct ServerConn {
  int fd = -1;
  std::string client_addr, server_addr;
  uint16_t client_port = 0, server_port = 0;
  explicit ServerConn(int listener) {
    fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(fd >= 0);
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    REQUIRE(getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    client_addr = text_of(a, client_port);
    len = sizeof(a);
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    server_addr = text_of(a, server_port);
  }
  ~ServerConn() {
    if (fd >= 0) close(fd);
  }
};

uint32_t uid_of(const char* name, uint32_t fallback) {
  passwd* pw = getpwnam(name);
  return pw ? pw->pw_uid : fallback;
}

std::string name_of(uint32_t uid) {
  passwd* pw = getpwuid(uid);
  return pw ? pw->pw_name : "";
}

void check_is_peer(const std::optional<PeerProcess>& p, const Peer& peer, uint32_t login_uid,
                   uid_t run_as, const TestCgroup& cg) {
  REQUIRE(p.has_value());
  CHECK(p->pid == static_cast<uint32_t>(peer.pid));
  CHECK(p->comm == kPeerComm);
  CHECK(p->executable == self_exe());
  if (peer.report.setuid_errno == 0) {
    CHECK(p->uid == run_as);
    CHECK(p->user_name == name_of(run_as));
  }
  if (peer.report.loginuid_errno == 0) {
    REQUIRE(p->login_uid.has_value());
    CHECK(*p->login_uid == login_uid);
    CHECK(p->login_user == name_of(login_uid));
  } else {
    WARN("the kernel refused the child's loginuid: " << std::strerror(peer.report.loginuid_errno));
  }
  if (!cg.dir.empty() && peer.report.cgroup_errno == 0) {
    CHECK(p->cgroup == cg.path);
    CHECK(p->systemd_unit == cg.path.substr(cg.path.rfind('/') + 1));
    CHECK(p->container_id.empty());
  } else {
    WARN("no test cgroup: " << std::strerror(peer.report.cgroup_errno));
  }
}

TEST_CASE("identity: TCP and unix peers of a child with loginuid, cgroup and another uid") {
  const uint32_t login_uid = uid_of("daemon", 1);
  const uid_t run_as = uid_of("nobody", 65534);
  TestCgroup cg;
  REQUIRE(!cg.dir.empty());  // root on a host with cgroup v2 mounted (unified or hybrid)

  Listener tcp4, unix_l;
  REQUIRE(listen_inet(tcp4, AF_INET, "127.0.0.1"));
  char dir_tmpl[] = "/tmp/dbw-identity-XXXXXX";
  REQUIRE(mkdtemp(dir_tmpl) != nullptr);
  std::string sock_path = std::string(dir_tmpl) + "/s";
  REQUIRE(listen_unix(unix_l, sock_path));

  Peer peer;
  spawn_peer(peer, {target_of(tcp4), target_of(unix_l)}, login_uid, cg.dir, run_as);
  CHECK(peer.report.connect_errno == 0);
  CHECK(peer.report.cgroup_errno == 0);
  CHECK(peer.report.setuid_errno == 0);
  CHECK(peer.report.loginuid_errno == 0);

  ServerConn tcp_conn(tcp4.fd);
  int unix_conn = accept4(unix_l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(unix_conn >= 0);
  struct stat st {};
  REQUIRE(fstat(unix_conn, &st) == 0);

  Resolver r;
  SECTION("tcp_peer over IPv4 loopback, then unix_peer from the same cache") {
    auto t0 = std::chrono::steady_clock::now();
    auto p = r.tcp_peer(tcp_conn.client_addr, tcp_conn.client_port, tcp_conn.server_addr,
                        tcp_conn.server_port);
    auto cold = std::chrono::steady_clock::now() - t0;
    check_is_peer(p, peer, login_uid, run_as, cg);
    CHECK(r.stats().full_scans == 1);

    auto u = r.unix_peer(st.st_ino);
    check_is_peer(u, peer, login_uid, run_as, cg);
    CHECK(r.stats().full_scans == 1);  // the child's unix socket was cached by that scan

    // Warm cost: one sock_diag round trip, one cache hit, the /proc reads.
    constexpr int kRounds = 2000;
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; i++) {
      auto again = r.tcp_peer(tcp_conn.client_addr, tcp_conn.client_port, tcp_conn.server_addr,
                              tcp_conn.server_port);
      REQUIRE(again.has_value());
    }
    auto warm = std::chrono::steady_clock::now() - t0;
    using us = std::chrono::duration<double, std::micro>;
    std::printf("identity: first tcp_peer (full /proc scan) %.1f us; warm tcp_peer %.2f us\n",
                us(cold).count(), us(warm).count() / kRounds);
    CHECK(r.stats().full_scans == 1);
    CHECK(r.stats().cache_hits >= kRounds);

    // Wrong direction of the tuple: that is the server's socket, held by this
    // process, not the child.
    auto server_side = r.tcp_peer(tcp_conn.server_addr, tcp_conn.server_port, tcp_conn.client_addr,
                                  tcp_conn.client_port);
    REQUIRE(server_side.has_value());
    CHECK(server_side->pid == static_cast<uint32_t>(getpid()));
    // A tuple nobody uses.
    CHECK(!r.tcp_peer("127.0.0.1", 1, tcp_conn.server_addr, tcp_conn.server_port));
    CHECK(r.stats().socket_not_found == 1);
  }

  SECTION("a second peer that appears within the rescan interval is found by a new-pid scan") {
    REQUIRE(r.tcp_peer(tcp_conn.client_addr, tcp_conn.client_port, tcp_conn.server_addr,
                       tcp_conn.server_port));
    Listener tcp6, dual;
    bool have_v6 = listen_inet(tcp6, AF_INET6, "::1");
    REQUIRE(listen_inet(dual, AF_INET6, "::"));
    Target via4{};
    auto* a4 = reinterpret_cast<sockaddr_in*>(&via4.addr);
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a4->sin_port = reinterpret_cast<sockaddr_in6*>(&dual.addr)->sin6_port;
    via4.len = sizeof(*a4);
    std::vector<Target> targets{via4};
    if (have_v6) targets.push_back(target_of(tcp6));
    Peer second;
    // Same loginuid rule, same cgroup: a fresh process may set it again.
    spawn_peer(second, targets, login_uid, cg.dir, run_as);
    REQUIRE(second.report.connect_errno == 0);

    ServerConn mapped(dual.fd);
    CHECK(mapped.client_addr == "::ffff:127.0.0.1");
    auto p =
        r.tcp_peer(mapped.client_addr, mapped.client_port, mapped.server_addr, mapped.server_port);
    check_is_peer(p, second, login_uid, run_as, cg);
    CHECK(r.stats().full_scans == 1);
    CHECK(r.stats().new_pid_scans == 1);
    if (have_v6) {
      ServerConn v6(tcp6.fd);
      CHECK(v6.client_addr == "::1");
      check_is_peer(r.tcp_peer(v6.client_addr, v6.client_port, v6.server_addr, v6.server_port),
                    second, login_uid, run_as, cg);
      CHECK(r.stats().full_scans == 1);
    } else {
      WARN("no IPv6 loopback: IPv6 lookup not exercised");
    }

    // The peer exits: its socket has no owner any more; answers are empty, not stale.
    second.finish();
    CHECK(!r.tcp_peer(mapped.client_addr, mapped.client_port, mapped.server_addr,
                      mapped.server_port));
  }

  SECTION("unix_peer after the peer exited, and on a listener") {
    peer.finish();
    CHECK(!r.unix_peer(st.st_ino));
    struct stat lst {};
    REQUIRE(fstat(unix_l.fd, &lst) == 0);
    CHECK(!r.unix_peer(lst.st_ino));  // a listener has no peer
    CHECK(!r.tcp_peer(tcp_conn.client_addr, tcp_conn.client_port, tcp_conn.server_addr,
                      tcp_conn.server_port));
  }

  peer.finish();
  close(unix_conn);
  unlink(sock_path.c_str());
  rmdir(dir_tmpl);
}

}  // namespace
}  // namespace dbwarden::identity

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    bool required = std::getenv("DBWARDEN_REQUIRE_KERNEL_TESTS") != nullptr;
    std::fprintf(stderr, "identity kernel tests need root (loginuid, cgroups, setuid): %s\n",
                 required ? "FAILING (DBWARDEN_REQUIRE_KERNEL_TESTS is set)" : "skipped");
    return required ? 1 : 77;
  }
  return Catch::Session().run(argc, argv);
}
