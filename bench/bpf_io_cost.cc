// SPDX-License-Identifier: Apache-2.0
//
// bench_bpf_io_cost: what the capture's BPF programs cost per socket call (issue 16).
//
// A known number of request/reply exchanges over one loopback TCP connection between two
// processes shaped like `pgbench -S` against a PostgreSQL backend: the "client" sends a
// small query and reads the reply (blocking); the "server" reads like a backend (a
// non-blocking recv(2) that finds nothing, poll(2), the recv that gets the query) and
// sends the reply. Each round runs every condition once, in a rotating order:
//   none       no capture loaded: the calls alone;
//   untracked  the capture loaded and the port watched, neither process tracked: every
//              hook run leaves at its first checks (what every other process pays);
//   server     the server process tracked (the agent's case: its reads and writes of
//              the connection are copied into the ring);
//   both       the client process tracked too (a tracked local client: its calls go as
//              far as finding that its socket is no database connection);
// and the floor under `server` (bpf/io_floor.bpf.c: the server tracked, the capture not
// loaded, one pair of programs on the same two tracepoints instead):
//   empty      programs that return at once (the tracepoint's and the statistics' cost);
//   min-nots   the tracked-pid bit, the registers, a fixed-size ring reservation, the
//              length, bpf_probe_read_user of the payload (up to 128 bytes), submit;
//   minimal    the same with a time stamp (bpf_ktime_get_ns): what any program that copies
//              every byte at the socket call spends. `x minimal` is each condition's BPF ns
//              per exchange over the same round's `minimal`.
// Per condition, medians over the rounds: each program's run_time_ns / run_count (the
// kernel's BPF statistics, switched on for the run through BPF_ENABLE_STATS), program runs
// and BPF ns per exchange, and each process's thread CPU per exchange (syscalls, hooks and
// the programs together). Ratios are against `untracked` of the same round. A consumer
// thread drains the ring the way the agent does (poll every 100 ms); every round checks
// that the ring carried exactly the bytes exchanged, nothing more or less.
//
// Needs root (exit 77 otherwise). bench/README.md, "Issue 16: BPF time per audited
// statement", has figures and the command.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bpf_floor.h"
#include "capture/capture.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::FloorCapture;
using dbwarden::bench::median;
using dbwarden::bench::thread_cpu_ns;
namespace cap = dbwarden::capture;

struct Settings {
  int rounds = 7;
  int exchanges = 20000;
  int warmup = 500;
  size_t request = 61;  // 'Q' + length + "SELECT abalance FROM pgbench_accounts WHERE aid = N;"
  size_t reply = 81;    // RowDescription, DataRow, CommandComplete, ReadyForQuery
  bool blocking_server = false;
  uint32_t ring_bytes = cap::Options{}.ringbuf_bytes;  // the agent's defaults
  uint32_t wakeup_bytes = cap::Options{}.wakeup_bytes;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_bpf_io_cost: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// Counts what the ring carried, from the consumer thread.
struct Counter : cap::EventHandler {
  std::atomic<uint64_t> records{0}, bytes{0}, gaps{0}, opens{0};
  void on_conn_open(const dbw_conn_event&) override { opens++; }
  void on_conn_close(const dbw_conn_event&) override {}
  void on_data(const dbw_data_event& e) override {
    records++;
    bytes += e.captured;
    gaps += e.length - e.captured;
  }
  void on_proc_exit(const dbw_proc_event&) override {}
};

// The capture and the thread that drains it (the agent's 100 ms poll).
struct Capture {
  Counter counter;
  std::unique_ptr<cap::BpfCapture> capture;
  std::atomic<bool> stop{false};
  std::atomic<double> consumer_cpu_ns{0};
  std::thread consumer;

  Capture(uint16_t port, const Settings& s) {
    cap::Options options;
    options.ringbuf_bytes = s.ring_bytes;
    options.wakeup_bytes = s.wakeup_bytes;
    auto c = cap::BpfCapture::Open(options, counter);
    if (!c.ok()) {
      std::fprintf(stderr, "bench_bpf_io_cost: %s\n", c.status().message().c_str());
      std::exit(1);
    }
    capture = std::move(c.value());
    if (!capture->watch_port(port, true).ok()) die("watch_port");
    consumer = std::thread([this] {
      while (!stop.load()) {
        if (!capture->poll(100).ok()) die("poll");
        consumer_cpu_ns.store(thread_cpu_ns());
      }
    });
  }
  ~Capture() {
    stop = true;
    consumer.join();
  }
};

// Waits until a ring is drained: its consumer counted `want` payload bytes, or 3 s.
void settle(const std::atomic<uint64_t>& bytes, uint64_t want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (bytes.load() < want && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(250));  // anything more comes now
}

// What a condition runs under: the capture, the floor programs, or neither.
struct Loaded {
  Capture* capture = nullptr;
  FloorCapture* floor = nullptr;

  // name -> (runs, ns) of every loaded program.
  std::map<std::string, std::pair<uint64_t, uint64_t>> stats() const {
    std::map<std::string, std::pair<uint64_t, uint64_t>> out;
    if (capture) {
      for (auto& p : capture->capture->program_stats()) out[p.name] = {p.run_count, p.run_time_ns};
    }
    if (floor) {
      for (auto& [name, v] : floor->stats()) out[name] = v;
    }
    return out;
  }
  const std::atomic<uint64_t>* bytes() const {
    return capture ? &capture->counter.bytes : floor ? &floor->bytes : nullptr;
  }
  uint64_t gaps() const {
    return capture ? capture->counter.gaps.load() : floor ? floor->gaps.load() : 0;
  }
  double consumer_cpu_ns() const {
    return capture ? capture->consumer_cpu_ns.load() : floor ? floor->consumer_cpu_ns.load() : 0.0;
  }
};

void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, 0);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) _exit(2);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// The server's read: a backend reads until EAGAIN and then waits in poll (epoll in
// PostgreSQL), so a query costs one empty recv and one that gets it.
void read_all(int fd, char* p, size_t n, bool nonblocking) {
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && nonblocking) {
      pollfd w{fd, POLLIN, 0};
      poll(&w, 1, -1);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) _exit(3);
    p += r;
    n -= static_cast<size_t>(r);
  }
}

enum class Role { kServer, kClient };

// One side of the exchanges, in a child: waits for the go byte, runs the warm-up and the
// timed exchanges, reports its thread CPU for the timed ones on `report`.
[[noreturn]] void run_side(Role role, int fd, int go, int report, const Settings& s,
                           char* buf) {
  char c;
  if (read(go, &c, 1) != 1) _exit(4);
  const bool nb = role == Role::kServer && !s.blocking_server;
  if (nb) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  double t0 = 0;
  for (int i = 0; i < s.warmup + s.exchanges; i++) {
    if (i == s.warmup) t0 = thread_cpu_ns();
    if (role == Role::kServer) {
      read_all(fd, buf, s.request, nb);
      write_all(fd, buf, s.reply);
    } else {
      write_all(fd, buf, s.request);
      read_all(fd, buf, s.reply, false);
    }
  }
  const double ns = thread_cpu_ns() - t0;
  close(fd);  // close(2) of the last reference: the capture sees the connection end
  if (write(report, &ns, sizeof(ns)) != sizeof(ns)) _exit(5);
  _exit(0);
}

enum Condition { kNone, kUntracked, kServer, kBoth, kEmpty, kMinNoTs, kMinimal, kConditions };
const char* const kConditionName[kConditions] = {"none",  "untracked", "server", "both",
                                                 "empty", "min-nots",  "minimal"};

struct Sample {
  double server_ns = 0, client_ns = 0;  // thread CPU per exchange
  double consumer_ns = 0;               // the consumer thread's CPU per exchange
  std::map<std::string, std::pair<uint64_t, uint64_t>> progs;  // name -> (runs, ns)
  uint64_t ring_bytes = 0, expected_bytes = 0, gaps = 0;
  // A measuring build's step profile (DBWARDEN_BPF_PROFILE): ns and count per step.
  std::array<uint64_t, DBW_PROF_STEPS> step_ns{}, step_count{};
};

struct Connection {
  int client = -1, server = -1;
};

Connection connect_pair(int listener, uint16_t port) {
  Connection c;
  c.client = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c.client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) die("connect");
  c.server = accept(listener, nullptr, nullptr);
  if (c.server < 0) die("accept");
  return c;
}

Sample run_condition(Condition cond, const Loaded& loaded, int listener, uint16_t port,
                     const Settings& s, char* buf) {
  Capture* capture = loaded.capture;
  Sample out;
  Connection c = connect_pair(listener, port);
  int go[2], report[2][2];
  if (pipe(go) != 0 || pipe(report[0]) != 0 || pipe(report[1]) != 0) die("pipe");
  const pid_t server = fork();
  if (server == 0) {
    close(c.client);
    run_side(Role::kServer, c.server, go[0], report[0][1], s, buf);
  }
  const pid_t client = fork();
  if (client == 0) {
    close(c.server);
    run_side(Role::kClient, c.client, go[0], report[1][1], s, buf);
  }
  close(c.server);
  close(c.client);
  if (cond == kServer || cond == kBoth) {
    if (!capture->capture->track_process(static_cast<uint32_t>(server)).ok()) die("track");
  }
  if (cond == kBoth) {
    if (!capture->capture->track_process(static_cast<uint32_t>(client)).ok()) die("track");
  }
  if (loaded.floor) loaded.floor->track(static_cast<uint32_t>(server));
  const auto before = loaded.stats();
  std::optional<cap::BpfCapture::StepProfile> steps0;
  if (capture) steps0 = capture->capture->step_profile();
  const uint64_t bytes0 = loaded.bytes() ? loaded.bytes()->load() : 0;
  const uint64_t gaps0 = loaded.gaps();
  const double consumer0 = loaded.consumer_cpu_ns();
  if (write(go[1], "gg", 2) != 2) die("go");
  double ns[2];
  for (int side = 0; side < 2; side++) {
    if (read(report[side][0], &ns[side], sizeof(double)) != sizeof(double)) die("child report");
  }
  for (pid_t p : {server, client}) waitpid(p, nullptr, 0);
  for (int fd : {go[0], go[1], report[0][0], report[0][1], report[1][0], report[1][1]}) {
    close(fd);
  }
  out.server_ns = ns[0] / s.exchanges;
  out.client_ns = ns[1] / s.exchanges;
  const uint64_t total = static_cast<uint64_t>(s.warmup + s.exchanges);
  const size_t floor_slot = DBW_FLOOR_BYTES;
  out.expected_bytes =
      cond == kServer || cond == kBoth ? total * (s.request + s.reply)
      : cond == kMinNoTs || cond == kMinimal
          ? total * (std::min(s.request, floor_slot) + std::min(s.reply, floor_slot))
          : 0;
  if (loaded.bytes()) {
    settle(*loaded.bytes(), bytes0 + out.expected_bytes);
    out.ring_bytes = loaded.bytes()->load() - bytes0;
    out.gaps = loaded.gaps() - gaps0;
    out.consumer_ns = (loaded.consumer_cpu_ns() - consumer0) / static_cast<double>(total);
    for (auto& [name, after] : loaded.stats()) {
      auto it = before.find(name);
      const auto b = it == before.end() ? std::pair<uint64_t, uint64_t>{} : it->second;
      out.progs[name] = {after.first - b.first, after.second - b.second};
    }
  }
  if (capture) {
    if (auto steps1 = capture->capture->step_profile(); steps0 && steps1) {
      for (size_t i = 0; i < DBW_PROF_STEPS; i++) {
        out.step_ns[i] = steps1->ns[i] - steps0->ns[i];
        out.step_count[i] = steps1->count[i] - steps0->count[i];
      }
    }
  }
  return out;
}

// BPF ns and program runs per exchange, over every program.
std::pair<double, double> bpf_per_exchange(const Sample& x, const Settings& s) {
  uint64_t runs = 0, ns = 0;
  for (auto& [name, v] : x.progs) {
    runs += v.first;
    ns += v.second;
  }
  const double total = s.warmup + s.exchanges;
  return {static_cast<double>(ns) / total, static_cast<double>(runs) / total};
}

template <typename F>
double median_of(const std::vector<Sample>& v, F f) {
  std::vector<double> xs;
  for (const Sample& x : v) xs.push_back(f(x));
  return xs.empty() ? 0.0 : median(xs);
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto next = [&]() -> long {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_bpf_io_cost: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::strtol(argv[++i], nullptr, 10);
    };
    if (a == "--rounds") {
      s.rounds = static_cast<int>(next());
    } else if (a == "--exchanges") {
      s.exchanges = static_cast<int>(next());
    } else if (a == "--request") {
      s.request = static_cast<size_t>(next());
    } else if (a == "--reply") {
      s.reply = static_cast<size_t>(next());
    } else if (a == "--ring-bytes") {
      s.ring_bytes = static_cast<uint32_t>(next());
    } else if (a == "--wakeup-bytes") {
      s.wakeup_bytes = static_cast<uint32_t>(next());
    } else if (a == "--blocking-server") {
      s.blocking_server = true;
    } else {
      std::fprintf(stderr,
                   "usage: bench_bpf_io_cost [--rounds N] [--exchanges N] [--request BYTES] "
                   "[--reply BYTES] [--ring-bytes N] [--wakeup-bytes N] [--blocking-server]\n");
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench_bpf_io_cost: needs root (it loads the capture's programs)\n");
    return 77;
  }
  if (s.rounds < 1 || s.exchanges < 1 || s.request < 1 || s.reply < 1 ||
      s.request > 65536 || s.reply > 65536) {
    std::fprintf(stderr, "bench_bpf_io_cost: bad settings\n");
    return 2;
  }
  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats_fd < 0) die("BPF_ENABLE_STATS");
  std::vector<char> buf(std::max(s.request, s.reply), 'q');

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) die("bind");
  if (listen(listener, 16) != 0) die("listen");
  socklen_t len = sizeof(a);
  getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  const uint16_t port = ntohs(a.sin_port);

  std::vector<Sample> samples[kConditions];
  for (int r = 0; r < s.rounds; r++) {
    // Five loads per round in a rotating order: nothing, the capture (whose three
    // conditions rotate among themselves) and each floor pair.
    std::vector<Condition> order{kUntracked, kServer, kBoth};
    std::rotate(order.begin(), order.begin() + r % 3, order.end());
    std::vector<Condition> units{kNone, kUntracked, kEmpty, kMinNoTs, kMinimal};
    std::rotate(units.begin(), units.begin() + r % units.size(), units.end());
    for (Condition unit : units) {
      if (unit == kNone) {
        samples[kNone].push_back(run_condition(kNone, {}, listener, port, s, buf.data()));
      } else if (unit == kUntracked) {
        Capture capture(port, s);
        for (Condition c : order) {
          samples[c].push_back(
              run_condition(c, {&capture, nullptr}, listener, port, s, buf.data()));
        }
      } else {
        FloorCapture floor(unit == kEmpty     ? FloorCapture::Kind::kEmpty
                           : unit == kMinNoTs ? FloorCapture::Kind::kMinimalNoTimestamp
                                              : FloorCapture::Kind::kMinimal,
                           s.ring_bytes);
        samples[unit].push_back(
            run_condition(unit, {nullptr, &floor}, listener, port, s, buf.data()));
      }
    }
    std::fprintf(stderr, "round %d/%d done\n", r + 1, s.rounds);
  }
  close(listener);
  close(stats_fd);

  bool exact = true;
  std::printf("bench_bpf_io_cost: %d rounds of %d exchanges (%zu-byte request, %zu-byte reply, "
              "%s server reads, ring %u bytes, wake-up past %u), medians\n\n",
              s.rounds, s.exchanges, s.request, s.reply,
              s.blocking_server ? "blocking" : "non-blocking", s.ring_bytes, s.wakeup_bytes);
  std::printf("%-10s %10s %10s %10s %10s %12s %12s %10s %10s\n", "condition", "server ns",
              "client ns", "consumer", "BPF runs", "BPF ns/exch", "x untracked", "x minimal",
              "ring ok");
  std::string json = "{\"bench\": \"bpf_io_cost\", \"rounds\": " + std::to_string(s.rounds) +
                     ", \"exchanges\": " + std::to_string(s.exchanges) + ", \"conditions\": {";
  for (int c = 0; c < kConditions; c++) {
    const auto& v = samples[c];
    bool ok = true;
    for (const Sample& x : v) {
      if (x.ring_bytes == x.expected_bytes && x.gaps == 0) continue;
      ok = false;
      std::fprintf(stderr,
                   "bench_bpf_io_cost: %s: the ring carried %llu bytes (%llu gaps), "
                   "%llu expected\n",
                   kConditionName[c], static_cast<unsigned long long>(x.ring_bytes),
                   static_cast<unsigned long long>(x.gaps),
                   static_cast<unsigned long long>(x.expected_bytes));
    }
    exact = exact && ok;
    const double server = median_of(v, [](const Sample& x) { return x.server_ns; });
    const double client = median_of(v, [](const Sample& x) { return x.client_ns; });
    const double consumer = median_of(v, [](const Sample& x) { return x.consumer_ns; });
    const double runs = median_of(v, [&](const Sample& x) { return bpf_per_exchange(x, s).second; });
    const double bpf = median_of(v, [&](const Sample& x) { return bpf_per_exchange(x, s).first; });
    // Ratio of the server's thread CPU to the same round's untracked run.
    std::vector<double> ratio;
    for (size_t i = 0; i < v.size() && i < samples[kUntracked].size(); i++) {
      ratio.push_back(v[i].server_ns / samples[kUntracked][i].server_ns);
    }
    const double rmed = ratio.empty() ? 0 : median(ratio);
    // BPF ns per exchange over the same round's minimal floor.
    std::vector<double> vs_min;
    for (size_t i = 0; i < v.size() && i < samples[kMinimal].size(); i++) {
      const double m = bpf_per_exchange(samples[kMinimal][i], s).first;
      if (m > 0) vs_min.push_back(bpf_per_exchange(v[i], s).first / m);
    }
    const double mmed = vs_min.empty() ? 0 : median(vs_min);
    std::printf("%-10s %10.0f %10.0f %10.0f %10.2f %12.0f %12.3f %10.3f %10s\n", kConditionName[c],
                server, client, consumer, runs, bpf, rmed, mmed,
                c >= kServer ? (ok ? "yes" : "NO") : "-");
    json += std::string(c ? ", " : "") + "\"" + kConditionName[c] +
            "\": {\"server_cpu_ns\": " + std::to_string(server) +
            ", \"client_cpu_ns\": " + std::to_string(client) +
            ", \"consumer_cpu_ns\": " + std::to_string(consumer) +
            ", \"bpf_runs_per_exchange\": " + std::to_string(runs) +
            ", \"bpf_ns_per_exchange\": " + std::to_string(bpf) +
            ", \"server_cpu_vs_untracked\": " + std::to_string(rmed) +
            ", \"bpf_vs_minimal\": " + std::to_string(mmed) + ", \"programs\": {";
    // Per program: runs per exchange and ns per run, where it ran.
    std::map<std::string, int> names;
    for (const Sample& x : v) {
      for (auto& [name, rv] : x.progs) {
        if (rv.first) names[name] = 1;
      }
    }
    bool first = true;
    for (auto& [name, one] : names) {
      const std::string n = name;
      const double per_run = median_of(v, [&](const Sample& x) {
        auto it = x.progs.find(n);
        return it == x.progs.end() || !it->second.first
                   ? 0.0
                   : static_cast<double>(it->second.second) / static_cast<double>(it->second.first);
      });
      const double per_ex = median_of(v, [&](const Sample& x) {
        auto it = x.progs.find(n);
        return it == x.progs.end() ? 0.0
                                   : static_cast<double>(it->second.first) / (s.warmup + s.exchanges);
      });
      std::printf("    %-24s %6.2f runs/exchange %8.1f ns/run\n", n.c_str(), per_ex, per_run);
      json += std::string(first ? "" : ", ") + "\"" + n + "\": {\"runs_per_exchange\": " +
              std::to_string(per_ex) + ", \"ns_per_run\": " + std::to_string(per_run) + "}";
      first = false;
    }
    json += "}}";
    // The step profile of a measuring build, where this condition ran the steps.
    static const char* const kStep[DBW_PROF_STEPS] = {
        "clock read", "filter", "fd -> socket", "conns lookup", "TLS check",
        "offset, bulk bound", "ringbuf reserve", "header", "payload copy", "submit"};
    for (size_t i = 0; i < DBW_PROF_STEPS; i++) {
      const double count = median_of(v, [&](const Sample& x) {
        return static_cast<double>(x.step_count[i]) / (s.warmup + s.exchanges);
      });
      if (count == 0) continue;
      const double ns = median_of(v, [&](const Sample& x) {
        return x.step_count[i] ? static_cast<double>(x.step_ns[i]) /
                                     static_cast<double>(x.step_count[i])
                               : 0.0;
      });
      std::printf("      step %-20s %6.2f /exchange %8.1f ns\n", kStep[i], count, ns);
    }
  }
  json += "}, \"ring_exact\": " + std::string(exact ? "true" : "false") + "}";
  std::printf("\nRESULT %s\n", json.c_str());
  if (!exact) {
    std::fprintf(stderr, "bench_bpf_io_cost: the ring did not carry exactly the bytes "
                         "exchanged (or carried gaps): a capture loss\n");
    return 1;
  }
  return 0;
}
