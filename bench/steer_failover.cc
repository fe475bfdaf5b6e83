// SPDX-License-Identifier: Apache-2.0
//
// How long after a proxy's death (kill -9) the fail mode takes effect, for TCP
// and unix-socket steering, against the time the kernel takes to tear the
// killed process down (kill -> waitpid), measured in the same run. Also the
// mark-down path (a proxy alive but taken out from outside, as ExecStopPost=
// or a watchdog does): flag cleared -> first connect with the fail mode.
//
// The "proxy" is a forked child holding listening sockets registered in the
// steering maps, the "server" in-process listeners; everything is private to
// the run (ephemeral ports, a temporary directory, its own pin directory).
// Needs root. Usage: bench_steer_failover [rounds]
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "steering/steering.h"

namespace {

using dbwarden::UniqueFd;
using namespace dbwarden::steering;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_steer_failover: %s\n", what.c_str());
  std::exit(1);
}

UniqueFd tcp_listen(const Endpoint& e) {
  UniqueFd s(socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  socklen_t len = 0;
  sockaddr_storage a = e.to_sockaddr(&len);
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(s.get(), 1024) != 0) {
    die("tcp listen: " + std::string(std::strerror(errno)));
  }
  return s;
}

UniqueFd unix_listen(const std::string& path) {
  UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  unlink(path.c_str());
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(s.get(), 1024)) {
    die("unix listen: " + std::string(std::strerror(errno)));
  }
  return s;
}

// One connect: 0 or the errno.
int connect_to(const Endpoint* tcp, const std::string& path) {
  UniqueFd s(socket(tcp ? tcp->family : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int rc;
  if (tcp) {
    socklen_t len = 0;
    sockaddr_storage a = tcp->to_sockaddr(&len);
    rc = connect(s.get(), reinterpret_cast<sockaddr*>(&a), len);
  } else {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    rc = connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  return rc == 0 ? 0 : errno;
}

// Takes every connection waiting on a non-blocking listener; true if any.
bool drain(int listener) {
  bool any = false;
  for (;;) {
    int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return any;
    close(c);
    any = true;
  }
}

struct Setup {
  std::string pin_dir, dir, server_path, proxy_path;
  std::unique_ptr<Steering> steering;
  UniqueFd tcp_server, unix_server;
  Endpoint dst;
};

// A proxy process: listeners registered, alive flag set. Returns its pid once ready.
pid_t start_proxy(const Setup& s) {
  int ready[2];
  if (pipe(ready) != 0) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    auto st = Steering::open_pinned(s.pin_dir);
    if (!st.ok()) _exit(1);
    UniqueFd v4 = tcp_listen(*Endpoint::parse("127.0.0.1", 0));
    UniqueFd ul = unix_listen(s.proxy_path);
    if (!(*st)->set_proxy_socket(1, v4.get()).ok() ||
        !(*st)->set_proxy_socket(kLifeSlot, v4.get()).ok() || !(*st)->set_proxy_alive(true).ok())
      _exit(2);
    if (write(ready[1], "r", 1) != 1) _exit(3);
    for (;;) pause();
  }
  close(ready[1]);  // a child that fails before it is ready ends the read
  char r;
  if (read(ready[0], &r, 1) != 1) die("proxy did not start");
  close(ready[0]);
  return pid;
}

// Microseconds from t0 until a connect shows the fail mode.
double until_fail_mode(const Setup& s, bool tcp, FailMode mode, Clock::time_point t0) {
  const int server = tcp ? s.tcp_server.get() : s.unix_server.get();
  for (;;) {
    int err = connect_to(tcp ? &s.dst : nullptr, s.server_path);
    bool effect = mode == FailMode::kClosed ? err == ECONNREFUSED : err == 0 && drain(server);
    if (effect) return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    // Leave the CPU to the dying process: on 2 cores a tight loop slows its exit.
    usleep(20);
  }
}

struct Stats {
  double p50, p99, max;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&v](double q) {
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
  };
  return {at(0.5), at(0.99), v.back()};
}

void print(const char* what, const std::vector<double>& v) {
  Stats s = stats(v);
  std::printf("  %-44s p50 %8.1f us  p99 %8.1f us  max %8.1f us\n", what, s.p50, s.p99, s.max);
}

// Nanoseconds per connect + accept + close of a connection steering does not
// touch, to `tcp` or to the unix socket at `path`.
double unrelated_connect_ns(const Endpoint* tcp, const std::string& path, int listener, int n) {
  auto t0 = Clock::now();
  for (int i = 0; i < n; i++) {
    if (connect_to(tcp, path) != 0) die("unrelated connect failed");
    drain(listener);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / n;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// What steering costs connections it does not steer: every TCP lookup and
// every unix stream connect on the host runs a program once steering is
// attached. Alternated rounds with steering attached (one protected endpoint
// and path, none of them used) and with nothing attached.
void unrelated_cost(const Setup& s) {
  UniqueFd tcp = tcp_listen(*Endpoint::parse("127.0.0.1", 0));
  const std::string path = s.dir + "/unrelated.sock";
  UniqueFd un = unix_listen(path);
  for (int fd : {tcp.get(), un.get()}) fcntl(fd, F_SETFL, O_NONBLOCK);
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  getsockname(tcp.get(), reinterpret_cast<sockaddr*>(&a), &len);
  const Endpoint dst = Endpoint::from_sockaddr_unmapped(a);
  const std::string pin_dir = s.pin_dir + "-unrelated";
  constexpr int kRounds = 9, kConnects = 5000;
  std::vector<double> on_tcp, off_tcp, on_unix, off_unix;
  // BPF run time of the programs themselves: the CPU figure, not noisy like
  // the wall-clock one on a shared machine. The fd keeps statistics on while
  // held, without touching the kernel.bpf_stats_enabled sysctl.
  UniqueFd stats(bpf_enable_stats(BPF_STATS_RUN_TIME));
  if (!stats.valid()) die("BPF_ENABLE_STATS: " + std::string(std::strerror(errno)));
  std::vector<ProgramStats> total;
  for (int r = 0; r < kRounds; r++) {
    for (int k = 0; k < 2; k++) {
      const bool on = (r + k) % 2 == 0;
      std::unique_ptr<Steering> st;
      if (on) {
        auto at = Steering::attach(Options{pin_dir, "", "/proc/self/ns/net"});
        if (!at.ok()) die(at.status().message());
        st = std::move(at.value());
        if (!st->protect_tcp(s.dst, 1).ok() || !st->protect_unix(s.server_path, s.proxy_path).ok())
          die("protect");
      }
      (on ? on_tcp : off_tcp).push_back(unrelated_connect_ns(&dst, "", tcp.get(), kConnects));
      (on ? on_unix : off_unix).push_back(unrelated_connect_ns(nullptr, path, un.get(), kConnects));
      if (on) {
        auto ps = st->program_stats();
        if (!ps.ok()) die(ps.status().message());
        if (total.empty()) total.resize(ps->size());
        for (size_t i = 0; i < ps->size(); i++) {
          total[i].name = (*ps)[i].name;
          total[i].run_count += (*ps)[i].run_count;
          total[i].run_time_ns += (*ps)[i].run_time_ns;
        }
        st.reset();
        Steering::detach(pin_dir);
      }
    }
  }
  std::printf(
      "unrelated connections, %d alternated rounds of %d connects (median ns per "
      "connect+accept+close)\n",
      kRounds, kConnects);
  std::printf("  tcp:  nothing attached %7.0f ns, steering attached %7.0f ns, ratio %.3f\n",
              median(off_tcp), median(on_tcp), median(on_tcp) / median(off_tcp));
  std::printf("  unix: nothing attached %7.0f ns, steering attached %7.0f ns, ratio %.3f\n",
              median(off_unix), median(on_unix), median(on_unix) / median(off_unix));
  for (const ProgramStats& p : total) {
    std::printf("  %-24s %9llu runs, %6.1f ns per run (BPF run time)\n", p.name.c_str(),
                static_cast<unsigned long long>(p.run_count),
                p.run_count ? static_cast<double>(p.run_time_ns) / p.run_count : 0.0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  if (geteuid() != 0) die("needs root (BPF programs)");
  Setup s;
  s.pin_dir = "/sys/fs/bpf/dbwarden-steer-bench-" + std::to_string(getpid());
  char tmpl[] = "/tmp/dbw-steer-bench-XXXXXX";
  if (!mkdtemp(tmpl)) die("mkdtemp");
  s.dir = tmpl;
  s.server_path = s.dir + "/.s.PGSQL.5432";
  s.proxy_path = s.dir + "/proxy.sock";
  auto attached = Steering::attach(Options{s.pin_dir, "", "/proc/self/ns/net"});
  if (!attached.ok()) die(attached.status().message());
  s.steering = std::move(attached.value());
  s.tcp_server = tcp_listen(*Endpoint::parse("127.0.0.1", 0));
  s.unix_server = unix_listen(s.server_path);
  for (int fd : {s.tcp_server.get(), s.unix_server.get()}) {
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) die("fcntl");
  }
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  getsockname(s.tcp_server.get(), reinterpret_cast<sockaddr*>(&a), &len);
  s.dst = Endpoint::from_sockaddr_unmapped(a);
  if (!s.steering->protect_tcp(s.dst, 1).ok() ||
      !s.steering->protect_unix(s.server_path, s.proxy_path).ok())
    die("protect");

  std::printf("steering fail-mode latency, %d rounds each (bench/README.md, \"Steering\")\n",
              rounds);
  std::vector<double> teardown;
  for (int i = 0; i < rounds; i++) {
    pid_t pid = start_proxy(s);
    auto t0 = Clock::now();
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    teardown.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  print("baseline: kill -9 -> waitpid returns", teardown);
  const double base = stats(teardown).p50;
  for (FailMode mode : {FailMode::kClosed, FailMode::kOpen}) {
    if (!s.steering->set_fail_mode(mode).ok()) die("set_fail_mode");
    for (bool tcp : {true, false}) {
      std::vector<double> killed, marked;
      for (int i = 0; i < rounds; i++) {
        pid_t pid = start_proxy(s);
        auto t0 = Clock::now();
        kill(pid, SIGKILL);
        killed.push_back(until_fail_mode(s, tcp, mode, t0));
        waitpid(pid, nullptr, 0);
        drain(s.tcp_server.get());
        drain(s.unix_server.get());
      }
      for (int i = 0; i < rounds; i++) {
        pid_t pid = start_proxy(s);
        auto t0 = Clock::now();
        if (!s.steering->set_proxy_alive(false).ok()) die("mark down");
        marked.push_back(until_fail_mode(s, tcp, mode, t0));
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        drain(s.tcp_server.get());
        drain(s.unix_server.get());
      }
      std::string what = std::string(tcp ? "tcp" : "unix") + " fail-" + fail_mode_name(mode);
      print((what + ": kill -9 -> first connect in mode").c_str(), killed);
      std::printf("  %-44s ratio to baseline p50: %.2f\n", "", stats(killed).p50 / base);
      print((what + ": mark-down -> first connect in mode").c_str(), marked);
    }
  }
  s.steering.reset();
  Steering::detach(s.pin_dir);
  unrelated_cost(s);
  std::filesystem::remove_all(s.dir);
  return 0;
}
