// SPDX-License-Identifier: Apache-2.0
//
// Kernel tests for the capture programs: real sockets, real syscalls, the real
// BPF programs; every field of the resulting records is checked. Needs root:
// without it the binary exits 77 (skip), or 1 when DBWARDEN_REQUIRE_KERNEL_TESTS
// is set (CI).
#define CATCH_CONFIG_RUNNER
#include "capture/capture.h"

#include <bpf/bpf.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../../unit/support/self_signed.h"

namespace dbwarden::capture {
namespace {

struct Recorded {
  std::vector<dbw_conn_event> opens, closes;
  struct Data {
    dbw_event_header hdr;
    uint64_t offset;
    uint32_t length;
    uint8_t direction;
    std::string bytes;
  };
  std::vector<Data> data;
  std::vector<dbw_proc_event> exits;
  std::vector<dbw_server_event> servers;
};

struct Recorder : EventHandler {
  Recorded r;
  void on_conn_open(const dbw_conn_event& e) override { r.opens.push_back(e); }
  void on_conn_close(const dbw_conn_event& e) override { r.closes.push_back(e); }
  void on_data(const dbw_data_event& e) override {
    r.data.push_back({e.hdr, e.offset, e.length, e.direction,
                      std::string(reinterpret_cast<const char*>(e.data), e.captured)});
  }
  void on_proc_exit(const dbw_proc_event& e) override { r.exits.push_back(e); }
  void on_server(const dbw_server_event& e) override { r.servers.push_back(e); }
};

void drain(BpfCapture& cap) {
  for (int i = 0; i < 5; i++) REQUIRE(cap.poll(20).ok());
}

uint64_t inode_of(int fd) {
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  return st.st_ino;
}

std::string ingress(const Recorded& r, uint64_t conn) {
  std::string out;
  for (const auto& d : r.data) {
    if (d.hdr.conn_id == conn && d.direction == DBW_DIR_INGRESS) out += d.bytes;
  }
  return out;
}

// An IPv4 address and port as connect(2)/bind(2) take them.
sockaddr_in ipv4(const std::string& addr, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  REQUIRE(inet_pton(AF_INET, addr.c_str(), &a.sin_addr) == 1);
  return a;
}

// The local port of a bound or connected socket.
uint16_t local_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&a)->sin6_port
                                       : reinterpret_cast<sockaddr_in*>(&a)->sin_port);
}

// A listener on the loopback address of `family` (AF_INET or AF_INET6) and, after
// connect_now(), both ends of one connection to it.
struct TcpPair {
  int family;
  int listener = -1, client = -1, server = -1;
  uint16_t port = 0, client_port = 0;
  explicit TcpPair(int fam = AF_INET) : family(fam) {
    listener = socket(family, SOCK_STREAM, 0);
    sockaddr_storage a = loopback(0);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(listen(listener, 8) == 0);
    port = local_port(listener);
  }
  sockaddr_storage loopback(uint16_t p) const {
    sockaddr_storage a{};
    if (family == AF_INET6) {
      auto* a6 = reinterpret_cast<sockaddr_in6*>(&a);
      a6->sin6_family = AF_INET6;
      a6->sin6_addr = in6addr_loopback;
      a6->sin6_port = htons(p);
    } else {
      auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
      a4->sin_family = AF_INET;
      a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a4->sin_port = htons(p);
    }
    return a;
  }
  void connect_now() {
    client = socket(family, SOCK_STREAM, 0);
    sockaddr_storage a = loopback(port);
    REQUIRE(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    client_port = local_port(client);
    server = accept(listener, nullptr, nullptr);
    REQUIRE(server >= 0);
  }
  ~TcpPair() {
    for (int fd : {client, server, listener}) {
      if (fd >= 0) close(fd);
    }
  }
};

std::unique_ptr<BpfCapture> open_capture(Recorder& rec) {
  auto cap = BpfCapture::Open(Options{}, rec);
  if (!cap.ok()) FAIL(cap.status().message());
  REQUIRE(cap.value()->track_process(static_cast<uint32_t>(getpid())).ok());
  return std::move(cap.value());
}

// The set-up most cases share: capture running for this process, a loopback listener
// whose port is watched, and one connection to it (accepted, so already seen).
struct WatchedTcp {
  Recorder rec;
  std::unique_ptr<BpfCapture> cap = open_capture(rec);
  TcpPair p;
  explicit WatchedTcp(int family = AF_INET) : p(family) {
    REQUIRE(cap->watch_port(p.port).ok());
    p.connect_now();
  }
};

struct WatchedTcp6 : WatchedTcp {
  WatchedTcp6() : WatchedTcp(AF_INET6) {}
};

// The data records of one capture read back in order: the bytes copied, how far the
// offsets reach, how many bytes they cover that were not copied (a counted gap), and
// whether every record starts where the previous one ended.
struct Walk {
  std::string captured;
  uint64_t next = 0, missing = 0;
  bool contiguous = true;
};

Walk walk(const std::vector<Recorded::Data>& data) {
  Walk w;
  for (const auto& d : data) {
    w.contiguous = w.contiguous && d.offset == w.next;
    w.captured += d.bytes;
    w.missing += d.length - d.bytes.size();
    w.next += d.length;
  }
  return w;
}

TEST_CASE_METHOD(WatchedTcp, "server-side TCP reads and writes are captured with offsets",
                 "[kernel]") {
  REQUIRE(write(p.client, "hello", 5) == 5);
  char buf[64];
  REQUIRE(read(p.server, buf, sizeof(buf)) == 5);
  REQUIRE(send(p.server, "world!", 6, 0) == 6);
  REQUIRE(recv(p.client, buf, sizeof(buf), 0) == 6);
  REQUIRE(write(p.client, "again", 5) == 5);
  REQUIRE(recvfrom(p.server, buf, sizeof(buf), 0, nullptr, nullptr) == 5);
  uint64_t ino = inode_of(p.server);
  close(p.server);
  p.server = -1;
  drain(*cap);

  // Only the accepted (server-side) socket is a database connection.
  REQUIRE(rec.r.opens.size() == 1);
  const dbw_conn_event& open = rec.r.opens[0];
  CHECK(open.hdr.kind == DBW_EV_CONN_OPEN);
  CHECK(open.hdr.pid == static_cast<uint32_t>(getpid()));
  CHECK(open.family == DBW_FAMILY_INET);
  CHECK(open.server_port == p.port);
  CHECK(open.client_port == p.client_port);
  CHECK(open.sock_ino == ino);
  const uint8_t loopback[4] = {127, 0, 0, 1};
  CHECK(std::memcmp(open.client_addr, loopback, 4) == 0);
  CHECK(std::memcmp(open.server_addr, loopback, 4) == 0);

  REQUIRE(rec.r.data.size() == 3);
  CHECK(rec.r.data[0].direction == DBW_DIR_INGRESS);
  CHECK(rec.r.data[0].offset == 0);
  CHECK(rec.r.data[0].length == 5);
  CHECK(rec.r.data[0].bytes == "hello");
  CHECK(rec.r.data[1].direction == DBW_DIR_EGRESS);
  CHECK(rec.r.data[1].offset == 0);
  CHECK(rec.r.data[1].bytes == "world!");
  CHECK(rec.r.data[2].direction == DBW_DIR_INGRESS);
  CHECK(rec.r.data[2].offset == 5);
  CHECK(rec.r.data[2].bytes == "again");
  for (const auto& d : rec.r.data) CHECK(d.hdr.conn_id == open.hdr.conn_id);

  REQUIRE(rec.r.closes.size() == 1);
  CHECK(rec.r.closes[0].hdr.conn_id == open.hdr.conn_id);
  CHECK(rec.r.closes[0].ingress_bytes == 10);
  CHECK(rec.r.closes[0].egress_bytes == 6);
}

// A message of `n` bytes each way: the client writes, the server reads it in one
// read(2), answers with the same bytes in one write(2), and the client reads them.
void echo_exchange(const TcpPair& p, const std::string& msg) {
  REQUIRE(write(p.client, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size()));
  std::string buf(msg.size(), '\0');
  REQUIRE(read(p.server, buf.data(), buf.size()) == static_cast<ssize_t>(msg.size()));
  REQUIRE(write(p.server, buf.data(), buf.size()) == static_cast<ssize_t>(msg.size()));
  REQUIRE(recv(p.client, buf.data(), buf.size(), MSG_WAITALL) == static_cast<ssize_t>(msg.size()));
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

TEST_CASE_METHOD(WatchedTcp,
                 "small messages take the smallest ring slot that holds them, whole at every size",
                 "[kernel]") {
  // The program reserves 64, 128 or 256 bytes of payload for a small message and
  // copies larger ones in exact-size chunks: every size on either side of each
  // step must arrive whole and in order.
  const std::vector<size_t> sizes{1, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000};
  std::vector<uint64_t> ring_growth;
  for (size_t n : sizes) {
    drain(*cap);
    const uint64_t before = cap->ring_bytes();
    echo_exchange(p, pattern(n));
    drain(*cap);
    ring_growth.push_back(cap->ring_bytes() - before);
  }
  REQUIRE(rec.r.data.size() == 2 * sizes.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < sizes.size(); i++) {
    INFO("message of " << sizes[i] << " bytes");
    const auto& in = rec.r.data[2 * i];
    const auto& out = rec.r.data[2 * i + 1];
    CHECK(in.direction == DBW_DIR_INGRESS);
    CHECK(out.direction == DBW_DIR_EGRESS);
    CHECK(in.offset == offset);
    CHECK(out.offset == offset);
    CHECK(in.length == sizes[i]);
    CHECK(in.bytes == pattern(sizes[i]));
    CHECK(out.bytes == pattern(sizes[i]));
    offset += sizes[i];
  }
  // Two records per exchange. A 1-byte message must not take the slot of a
  // 256-byte one: the ring carries what was said, not the largest slot.
  const uint64_t record_head = offsetof(dbw_data_event, data) + 8;  // + the ring's own header
  CHECK(ring_growth[0] <= 2 * (record_head + 64));
  CHECK(ring_growth[0] < ring_growth[4]);  // 1 byte < 127 bytes
  CHECK(ring_growth[4] < ring_growth[7]);  // 127 bytes < 255 bytes
}

// A producer as fast as the agent's loop must not keep poll() from returning: the
// loop also publishes metrics, pets the watchdog and flushes the trail.
TEST_CASE_METHOD(WatchedTcp, "poll() hands over at most its budget, the rest at the next call",
                 "[kernel]") {
  drain(*cap);
  const size_t before = rec.r.data.size();
  const int writes = BpfCapture::kPollBudget + 1000;
  for (int i = 0; i < writes; i++) REQUIRE(write(p.server, "x", 1) == 1);
  auto first = cap->poll(0);
  REQUIRE(first.ok());
  CHECK(first.value() == BpfCapture::kPollBudget);
  CHECK(rec.r.data.size() - before == static_cast<size_t>(BpfCapture::kPollBudget));
  int rest = 0;
  for (int i = 0; i < 5; i++) {
    auto n = cap->poll(0);
    REQUIRE(n.ok());
    rest += n.value();
  }
  CHECK(rest == 1000);
  const std::vector<Recorded::Data> egress(rec.r.data.begin() + static_cast<ptrdiff_t>(before),
                                           rec.r.data.end());
  REQUIRE(egress.size() == static_cast<size_t>(writes));
  const Walk w = walk(egress);
  CHECK(w.contiguous);
  CHECK(w.captured == std::string(static_cast<size_t>(writes), 'x'));
  CHECK(cap->drops().by_reason[DBW_DROP_RINGBUF_FULL] == 0);
}

// bench_bpf_io_cost reads per-program run counts and times through program_stats().
TEST_CASE_METHOD(WatchedTcp, "program statistics count each socket hook's runs", "[kernel]") {
  const int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);  // counted only while held
  REQUIRE(stats >= 0);
  auto runs = [&](const std::string& name) -> std::optional<uint64_t> {
    for (const ProgramStats& s : cap->program_stats()) {
      if (s.name == name) return s.run_count;
    }
    return std::nullopt;
  };
  // Writes start the socket hook, or write(2)'s own exit program on kernels without it.
  const bool socket_hooks = cap->data_hooks() == DataHooks::kSocket;
  const std::string sends = socket_hooks ? "dbw_sock_send" : "dbw_sys_write";
  const auto sends0 = runs(sends);
  REQUIRE(sends0.has_value());
  // The other set of data hooks is not loaded: it has no statistics.
  CHECK_FALSE(runs(socket_hooks ? "dbw_sys_write" : "dbw_sock_send").has_value());
  for (int i = 0; i < 3; i++) echo_exchange(p, "ping");
  close(stats);
  // Both ends are this process: 6 writes at least (other processes' socket calls start
  // the same program).
  CHECK(*runs(sends) - *sends0 >= 6);
  drain(*cap);
  CHECK(ingress(rec.r, rec.r.opens.at(0).hdr.conn_id) == "pingpingping");
}

// The socket hooks take the record's pid and tid from the task they already hold (no
// helper call): a thread other than the main one must be named as itself.
TEST_CASE_METHOD(WatchedTcp, "a record names the process and the thread that moved the bytes",
                 "[kernel]") {
  uint32_t tid = 0;
  std::thread worker([&] {
    tid = static_cast<uint32_t>(gettid());
    echo_exchange(p, "from a thread");
  });
  worker.join();
  drain(*cap);
  REQUIRE(rec.r.data.size() == 2);
  REQUIRE(tid != static_cast<uint32_t>(getpid()));
  for (const auto& d : rec.r.data) {
    CHECK(d.hdr.pid == static_cast<uint32_t>(getpid()));
    CHECK(d.hdr.tid == tid);
    CHECK(d.bytes == "from a thread");
  }
}

// bpf/tls.bpf.h finds an SSL*'s connection through the tie the thread that made its
// handshake keeps, and through tls_ssl_sock for any other thread (a thread pool). Both
// ends of the connection are this process's; the client's end is a local peer's
// (ignored), so only the server's SSL* has a connection and its plaintext is recorded.
TEST_CASE_METHOD(WatchedTcp,
                 "TLS plaintext goes to its connection whichever thread uses the SSL*",
                 "[kernel][tls]") {
  cap->tls().rescan();  // hooks the libssl this binary maps
  REQUIRE(cap->tls().stats().libraries_hooked >= 1);
  testing::SelfSigned id;
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());  // verifies nothing by default
  REQUIRE(SSL_CTX_use_certificate(sctx, id.cert) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey(sctx, id.key) == 1);
  SSL* server = SSL_new(sctx);
  SSL* client = SSL_new(cctx);
  SSL_set_fd(server, p.server);
  SSL_set_fd(client, p.client);

  auto read_some = [](SSL* ssl, size_t want) {
    std::string out;
    char buf[256];
    while (out.size() < want) {
      int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  };
  // The handshake and a first read on one thread (its tie), the client on another.
  uint32_t tid_a = 0, tid_b = 0;
  std::string got_a, got_b;
  bool peer_ok = false, answered = false;
  std::thread peer([&] {
    peer_ok = SSL_connect(client) == 1 && SSL_write(client, "first query", 11) == 11;
  });
  std::thread a([&] {
    tid_a = static_cast<uint32_t>(gettid());
    if (SSL_accept(server) == 1) got_a = read_some(server, 11);
  });
  a.join();
  peer.join();
  REQUIRE(peer_ok);
  REQUIRE(got_a == "first query");
  // Then another thread that never saw the handshake reads and answers.
  REQUIRE(SSL_write(client, "second", 6) == 6);
  std::thread b([&] {
    tid_b = static_cast<uint32_t>(gettid());
    got_b = read_some(server, 6);
    answered = got_b == "second" && SSL_write(server, "answer from b", 13) == 13;
  });
  b.join();
  REQUIRE(got_b == "second");
  REQUIRE(answered);
  REQUIRE(read_some(client, 13) == "answer from b");
  drain(*cap);

  REQUIRE(rec.r.opens.size() == 1);
  const uint64_t conn = rec.r.opens[0].hdr.conn_id;
  CHECK(rec.r.opens[0].sock_ino == inode_of(p.server));
  // Plaintext only, in order, each record naming the thread that moved it.
  REQUIRE(rec.r.data.size() == 3);
  const Walk in = walk({rec.r.data[0], rec.r.data[1]});
  CHECK(in.contiguous);
  CHECK(in.captured == "first querysecond");
  CHECK(rec.r.data[2].offset == 0);
  CHECK(rec.r.data[0].hdr.tid == tid_a);
  CHECK(rec.r.data[1].hdr.tid == tid_b);
  CHECK(rec.r.data[2].direction == DBW_DIR_EGRESS);
  CHECK(rec.r.data[2].bytes == "answer from b");
  CHECK(rec.r.data[2].hdr.tid == tid_b);
  for (const auto& d : rec.r.data) CHECK(d.hdr.conn_id == conn);
  TlsStats st = cap->tls().stats();
  CHECK(st.connections == 1);
  CHECK(st.plaintext_calls == 3);
  CHECK(st.ciphertext_suppressed > 0);

  SSL_free(server);
  SSL_free(client);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

// The enforcement proxy's upstream connection (Observer mutes it): no byte of it is
// copied by any data call, its close still ends it.
TEST_CASE_METHOD(WatchedTcp, "a muted connection copies nothing, and its close still comes",
                 "[kernel]") {
  echo_exchange(p, "before");
  drain(*cap);
  REQUIRE(rec.r.opens.size() == 1);
  REQUIRE(rec.r.data.size() == 2);
  CHECK_FALSE(cap->mute_socket(inode_of(p.client)));  // not a tracked connection
  REQUIRE(cap->mute_socket(inode_of(p.server)));
  echo_exchange(p, "read and write");
  char buf[32];
  REQUIRE(send(p.client, "sendto", 6, 0) == 6);
  REQUIRE(recvfrom(p.server, buf, sizeof(buf), 0, nullptr, nullptr) == 6);
  REQUIRE(sendto(p.server, "recvfrom", 8, 0, nullptr, 0) == 8);
  REQUIRE(recv(p.client, buf, 8, MSG_WAITALL) == 8);
  iovec v{const_cast<char*>("writev"), 6};
  REQUIRE(writev(p.server, &v, 1) == 6);
  REQUIRE(recv(p.client, buf, 6, MSG_WAITALL) == 6);
  close(p.server);
  p.server = -1;
  drain(*cap);
  CHECK(rec.r.data.size() == 2);
  REQUIRE(rec.r.closes.size() == 1);
  CHECK(rec.r.closes[0].hdr.conn_id == rec.r.opens[0].hdr.conn_id);
}

TEST_CASE("a port that is not watched produces nothing", "[kernel]") {
  Recorder rec;
  auto cap = open_capture(rec);
  TcpPair p;
  p.connect_now();
  REQUIRE(write(p.client, "x", 1) == 1);
  char c;
  REQUIRE(read(p.server, &c, 1) == 1);
  drain(*cap);
  CHECK(rec.r.opens.empty());
  CHECK(rec.r.data.empty());
}

TEST_CASE_METHOD(WatchedTcp,
                 "a socket shared across fork is one connection; the child's I/O is captured",
                 "[kernel]") {
  pid_t child = fork();
  if (child == 0) {
    // Like a PostgreSQL backend: read the inherited socket, answer, exit.
    char buf[16];
    ssize_t n = read(p.server, buf, sizeof(buf));
    _exit(n == 4 && write(p.server, "pong", 4) == 4 ? 0 : 1);
  }
  close(p.server);  // like the postmaster: not the last reference
  p.server = -1;
  REQUIRE(write(p.client, "ping", 4) == 4);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WEXITSTATUS(status) == 0);
  drain(*cap);

  REQUIRE(rec.r.opens.size() == 1);
  // accept(2) in the parent is the first sighting; the child does the I/O.
  CHECK(rec.r.opens[0].hdr.pid == static_cast<uint32_t>(getpid()));
  CHECK(rec.r.closes.empty());  // the parent's close was not the last reference
  REQUIRE(rec.r.data.size() == 2);
  CHECK(rec.r.data[0].hdr.pid == static_cast<uint32_t>(child));
  CHECK(rec.r.data[0].bytes == "ping");
  CHECK(rec.r.data[1].bytes == "pong");
  bool child_exit_seen = false;
  for (const auto& e : rec.r.exits) child_exit_seen |= e.hdr.pid == static_cast<uint32_t>(child);
  CHECK(child_exit_seen);  // the fork hook tracked it, the exit hook reported it
}

TEST_CASE("unix sockets accepted on a watched path are captured", "[kernel]") {
  Recorder rec;
  auto cap = open_capture(rec);
  char dir[] = "/tmp/dbw-kernel-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string path = std::string(dir) + "/.s.PGSQL.6543";
  int listener = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(listen(listener, 4) == 0);
  REQUIRE(cap->watch_unix_path(path, 6543).ok());
  int client = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  int server = accept(listener, nullptr, nullptr);
  REQUIRE(write(client, "over unix", 9) == 9);
  char buf[32];
  REQUIRE(read(server, buf, sizeof(buf)) == 9);
  // The client end has no bound address: its writes are not captured.
  drain(*cap);
  REQUIRE(rec.r.opens.size() == 1);
  CHECK(rec.r.opens[0].family == DBW_FAMILY_UNIX);
  CHECK(rec.r.opens[0].server_port == 6543);
  CHECK(rec.r.opens[0].client_port == 0);
  CHECK(ingress(rec.r, rec.r.opens[0].hdr.conn_id) == "over unix");
  close(client);
  close(server);
  close(listener);
  unlink(path.c_str());
  rmdir(dir);
}

TEST_CASE_METHOD(WatchedTcp,
                 "a write larger than the per-syscall bound is chunked and the rest counted",
                 "[kernel]") {
  const size_t bound = size_t{DBW_CHUNK_BYTES} * DBW_MAX_CHUNKS;
  std::string big(bound + 1000, 'q');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>('a' + i % 26);
  uint64_t truncated_before = cap->drops().by_reason[DBW_DROP_TRUNCATED];
  // A reader drains the client side so the server's write completes at once.
  pid_t child = fork();
  if (child == 0) {
    char sink[65536];
    size_t got = 0;
    while (got < big.size()) {
      ssize_t n = read(p.client, sink, sizeof(sink));
      if (n <= 0) _exit(1);
      got += static_cast<size_t>(n);
    }
    _exit(0);
  }
  size_t sent = 0;
  while (sent < big.size()) {
    ssize_t n = write(p.server, big.data() + sent, big.size() - sent);
    REQUIRE(n > 0);
    sent += static_cast<size_t>(n);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  drain(*cap);

  for (const auto& d : rec.r.data) {
    REQUIRE(d.direction == DBW_DIR_EGRESS);
    REQUIRE(d.bytes.size() <= DBW_CHUNK_BYTES);
  }
  const Walk w = walk(rec.r.data);
  REQUIRE(w.contiguous);  // contiguous offsets, nothing unaccounted
  CHECK(w.next == big.size());
  CHECK(w.captured.size() + w.missing == big.size());
  CHECK(big.compare(0, w.captured.size(), w.captured) == 0);
  if (w.missing > 0) {
    CHECK(cap->drops().by_reason[DBW_DROP_TRUNCATED] > truncated_before);
  }
}

std::string egress(const Recorded& r, uint64_t conn) {
  std::string out;
  for (const auto& d : r.data) {
    if (d.hdr.conn_id == conn && d.direction == DBW_DIR_EGRESS) out += d.bytes;
  }
  return out;
}

// Offsets of each direction are contiguous from 0 and every byte was copied.
void check_contiguous(const Recorded& r, uint64_t conn) {
  uint64_t next[2] = {0, 0};
  for (const auto& d : r.data) {
    if (d.hdr.conn_id != conn) continue;
    CHECK(d.offset == next[d.direction]);
    CHECK(d.length == d.bytes.size());
    next[d.direction] += d.length;
  }
}

TEST_CASE_METHOD(WatchedTcp,
                 "readv/writev on the server side: every iovec, in order, contiguous offsets",
                 "[kernel]") {
  REQUIRE(write(p.client, "hello world", 11) == 11);
  char a[3], b[100];
  iovec in[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
  REQUIRE(readv(p.server, in, 2) == 11);
  char x[] = "ab", y[] = "cdef";
  iovec out[3] = {{x, 2}, {nullptr, 0}, {y, 4}};  // an empty iovec in the middle
  REQUIRE(writev(p.server, out, 3) == 6);
  char buf[16];
  REQUIRE(read(p.client, buf, sizeof(buf)) == 6);
  drain(*cap);
  REQUIRE(rec.r.opens.size() == 1);
  uint64_t id = rec.r.opens[0].hdr.conn_id;
  CHECK(rec.r.opens[0].side == DBW_SIDE_SERVER);
  CHECK(ingress(rec.r, id) == "hello world");
  CHECK(egress(rec.r, id) == "abcdef");
  check_contiguous(rec.r, id);
}

TEST_CASE_METHOD(WatchedTcp6, "recvmsg/sendmsg on the server side (IPv6)", "[kernel]") {
  const int client = p.client, server = p.server;
  REQUIRE(send(client, "query-bytes", 11, 0) == 11);
  char p1[5], p2[64];
  iovec in[2] = {{p1, sizeof(p1)}, {p2, sizeof(p2)}};
  msghdr m{};
  m.msg_iov = in;
  m.msg_iovlen = 2;
  REQUIRE(recvmsg(server, &m, 0) == 11);
  char r1[] = "row", r2[] = "-data";
  iovec out[2] = {{r1, 3}, {r2, 5}};
  msghdr w{};
  w.msg_iov = out;
  w.msg_iovlen = 2;
  REQUIRE(sendmsg(server, &w, 0) == 8);
  char buf[16];
  REQUIRE(recv(client, buf, sizeof(buf), 0) == 8);
  drain(*cap);
  REQUIRE(rec.r.opens.size() == 1);
  const dbw_conn_event& open = rec.r.opens[0];
  CHECK(open.family == DBW_FAMILY_INET6);
  CHECK(open.server_port == p.port);
  CHECK(std::memcmp(open.server_addr, &in6addr_loopback, 16) == 0);
  CHECK(std::memcmp(open.client_addr, &in6addr_loopback, 16) == 0);
  CHECK(ingress(rec.r, open.hdr.conn_id) == "query-bytes");
  CHECK(egress(rec.r, open.hdr.conn_id) == "row-data");
  check_contiguous(rec.r, open.hdr.conn_id);
}

TEST_CASE_METHOD(WatchedTcp,
                 "recvmmsg/sendmmsg on the server side: each message, msg_len bytes each",
                 "[kernel]") {
  REQUIRE(write(p.client, "abcdefgh", 8) == 8);
  char m1[3], m2[64];
  iovec in[2] = {{m1, sizeof(m1)}, {m2, sizeof(m2)}};
  mmsghdr rv[2]{};
  rv[0].msg_hdr.msg_iov = &in[0];
  rv[0].msg_hdr.msg_iovlen = 1;
  rv[1].msg_hdr.msg_iov = &in[1];
  rv[1].msg_hdr.msg_iovlen = 1;
  int k = recvmmsg(p.server, rv, 2, MSG_WAITFORONE, nullptr);
  REQUIRE(k == 2);  // 3 bytes, then the 5 already queued
  REQUIRE(rv[0].msg_len + rv[1].msg_len == 8);
  char o1[] = "one", o2[] = "two", o3[] = "three";
  iovec out[3] = {{o1, 3}, {o2, 3}, {o3, 5}};
  mmsghdr sv[2]{};
  sv[0].msg_hdr.msg_iov = &out[0];
  sv[0].msg_hdr.msg_iovlen = 1;
  sv[1].msg_hdr.msg_iov = &out[1];
  sv[1].msg_hdr.msg_iovlen = 2;  // a message of two iovecs
  REQUIRE(sendmmsg(p.server, sv, 2, 0) == 2);
  char buf[32];
  size_t got = 0;
  while (got < 11) {
    ssize_t n = read(p.client, buf + got, sizeof(buf) - got);
    REQUIRE(n > 0);
    got += static_cast<size_t>(n);
  }
  drain(*cap);
  REQUIRE(rec.r.opens.size() == 1);
  uint64_t id = rec.r.opens[0].hdr.conn_id;
  CHECK(ingress(rec.r, id) == "abcdefgh");
  CHECK(egress(rec.r, id) == "onetwothree");
  check_contiguous(rec.r, id);
}

// A server socket and its client on a watched port or unix path, for cases that choose
// their own capture options.
struct AnyPair {
  int client = -1, server = -1, listener = -1;
  std::string dir, path;
  AnyPair(BpfCapture& cap, bool unix_socket) {
    if (!unix_socket) {
      tcp.emplace();
      REQUIRE(cap.watch_port(tcp->port).ok());
      tcp->connect_now();
      client = tcp->client;
      server = tcp->server;
      return;
    }
    char tmpl[] = "/tmp/dbw-kernel-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    dir = tmpl;
    path = dir + "/.s.PGSQL.6544";
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(listen(listener, 4) == 0);
    REQUIRE(cap.watch_unix_path(path, 6544).ok());
    client = socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    server = accept(listener, nullptr, nullptr);
    REQUIRE(server >= 0);
  }
  ~AnyPair() {
    if (!tcp) {
      for (int fd : {client, server, listener}) {
        if (fd >= 0) close(fd);
      }
      unlink(path.c_str());
      rmdir(dir.c_str());
    }
  }
  std::optional<TcpPair> tcp;
};

// The client sends `s`, which the server then reads whole in one call.
void send_to_server(const AnyPair& p, const std::string& s) {
  REQUIRE(write(p.client, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
}

// Every data call family the capture decodes, on TCP and on a unix socket, with each set
// of data hooks (bpf/io_hooks.bpf.h): the socket tracepoints (the default on this kernel)
// and the per-syscall exits used on kernels without them. Peeked bytes are read again by
// the next call: recorded once.
TEST_CASE("every data call family is captured by either set of data hooks", "[kernel]") {
  const DataHooks hooks = GENERATE(DataHooks::kSocket, DataHooks::kSyscall);
  const bool unix_socket = GENERATE(false, true);
  CAPTURE(data_hooks_name(hooks), unix_socket);
  Recorder rec;
  Options options;
  options.data_hooks = hooks;
  auto opened = BpfCapture::Open(options, rec);
  if (!opened.ok()) FAIL(opened.status().message());
  std::unique_ptr<BpfCapture> cap = std::move(opened.value());
  CHECK(cap->data_hooks() == hooks);
  REQUIRE(cap->track_process(static_cast<uint32_t>(getpid())).ok());
  AnyPair p(*cap, unix_socket);

  char buf[64];
  send_to_server(p, "peek-me");
  REQUIRE(recv(p.server, buf, sizeof(buf), MSG_PEEK) == 7);
  REQUIRE(read(p.server, buf, sizeof(buf)) == 7);
  send_to_server(p, "recvfrom");
  REQUIRE(recvfrom(p.server, buf, sizeof(buf), 0, nullptr, nullptr) == 8);
  send_to_server(p, "readv-it");
  char a[3], b[64];
  iovec in[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
  REQUIRE(readv(p.server, in, 2) == 8);
  send_to_server(p, "recvmsg!");
  msghdr m{};
  m.msg_iov = in;
  m.msg_iovlen = 2;
  REQUIRE(recvmsg(p.server, &m, MSG_PEEK) == 8);
  REQUIRE(recvmsg(p.server, &m, 0) == 8);

  REQUIRE(write(p.server, "w1", 2) == 2);
  REQUIRE(send(p.server, "s2", 2, 0) == 2);
  REQUIRE(sendto(p.server, "t3", 2, 0, nullptr, 0) == 2);
  char v[] = "v", four[] = "4";
  iovec out[2] = {{v, 1}, {four, 1}};
  REQUIRE(writev(p.server, out, 2) == 2);
  char m5[] = "m5";
  iovec one = {m5, 2};
  msghdr w{};
  w.msg_iov = &one;
  w.msg_iovlen = 1;
  REQUIRE(sendmsg(p.server, &w, 0) == 2);
  REQUIRE(recv(p.client, buf, 10, MSG_WAITALL) == 10);
  drain(*cap);

  REQUIRE(rec.r.opens.size() == 1);
  const uint64_t id = rec.r.opens[0].hdr.conn_id;
  CHECK(rec.r.opens[0].family == (unix_socket ? DBW_FAMILY_UNIX : DBW_FAMILY_INET));
  CHECK(ingress(rec.r, id) == "peek-merecvfromreadv-itrecvmsg!");
  CHECK(egress(rec.r, id) == "w1s2t3v4m5");
  check_contiguous(rec.r, id);
}

TEST_CASE_METHOD(WatchedTcp, "more iovecs than the bound: the rest is a gap of exact length",
                 "[kernel]") {
  constexpr int kIov = 12;  // > DBW_MAX_IOV (8)
  std::string pieces[kIov];
  iovec out[kIov];
  std::string all;
  for (int i = 0; i < kIov; i++) {
    pieces[i] = std::string(static_cast<size_t>(i + 1), static_cast<char>('a' + i));
    out[i] = {pieces[i].data(), pieces[i].size()};
    all += pieces[i];
  }
  uint64_t truncated_before = cap->drops().by_reason[DBW_DROP_TRUNCATED];
  REQUIRE(writev(p.server, out, kIov) == static_cast<ssize_t>(all.size()));
  drain(*cap);
  REQUIRE(rec.r.opens.size() == 1);
  const Walk w = walk(rec.r.data);
  CHECK(w.contiguous);
  CHECK(w.next == all.size());
  CHECK(all.compare(0, w.captured.size(), w.captured) == 0);
  CHECK(w.captured.size() == 36);  // 1 + 2 + ... + 8
  CHECK(w.missing == all.size() - 36);
  CHECK(cap->drops().by_reason[DBW_DROP_TRUNCATED] > truncated_before);
}

TEST_CASE_METHOD(WatchedTcp,
                 "accept is the earliest sighting; the last close ends the connection, "
                 "not shutdown(2)",
                 "[kernel]") {
  drain(*cap);  // accept(2), no I/O yet
  REQUIRE(rec.r.opens.size() == 1);
  CHECK(rec.r.opens[0].client_port == p.client_port);
  CHECK(rec.r.opens[0].sock_ino == inode_of(p.server));
  CHECK(rec.r.data.empty());
  REQUIRE(write(p.client, "bye", 3) == 3);
  char buf[8];
  REQUIRE(read(p.server, buf, sizeof(buf)) == 3);
  REQUIRE(shutdown(p.server, SHUT_WR) == 0);  // one direction only: still open
  drain(*cap);
  CHECK(rec.r.closes.empty());
  // MariaDB shuts its client sockets down at its own shutdown to wake their threads, which
  // then still read the statement in flight: the same connection, not a new one.
  REQUIRE(shutdown(p.server, SHUT_RDWR) == 0);
  REQUIRE(read(p.server, buf, sizeof(buf)) == 0);
  drain(*cap);
  CHECK(rec.r.closes.empty());
  close(p.server);
  p.server = -1;
  drain(*cap);
  REQUIRE(rec.r.closes.size() == 1);
  CHECK(rec.r.closes[0].hdr.conn_id == rec.r.opens[0].hdr.conn_id);
  CHECK(rec.r.closes[0].ingress_bytes == 3);
  CHECK(rec.r.opens.size() == 1);  // never taken for a new connection
}

// This process is both ends: connect(2) to a local watched port (in the fixture) must not
// add a client-side connection; the server side records the bytes once.
TEST_CASE_METHOD(WatchedTcp,
                 "a local client of a watched port is not captured on the client side (dedupe)",
                 "[kernel]") {
  REQUIRE(write(p.client, "once", 4) == 4);
  char buf[8];
  REQUIRE(read(p.server, buf, sizeof(buf)) == 4);
  drain(*cap);
  REQUIRE(rec.r.opens.size() == 1);
  CHECK(rec.r.opens[0].side == DBW_SIDE_SERVER);
  CHECK(ingress(rec.r, rec.r.opens[0].hdr.conn_id) == "once");
  CHECK(rec.r.data.size() == 1);
}

#if defined(__x86_64__)
// One system call through the 32-bit entry (int 0x80: eax the 32-bit number, ebx, ecx, edx
// its first three arguments), as a 32-bit process makes it. The kernel may change r8-r11
// across int 0x80 (kernels before 4.20 did not preserve them), so all four are clobbered.
long int80_syscall(long nr, uint32_t a, uint32_t b, uint32_t c) {
  long ret = nr;
  asm volatile("int $0x80"
               : "+a"(ret)
               : "b"(a), "c"(b), "d"(c)
               : "r8", "r9", "r10", "r11", "cc", "memory");
  return ret;
}

// Whether this kernel takes 32-bit system calls from a 64-bit process. Tried in a forked
// child first: with IA32 emulation compiled in but disabled at boot (ia32_emulation=0) the
// kernel does not answer -ENOSYS, the int 0x80 vector itself is missing and the instruction
// raises a general protection fault (SIGSEGV); a kernel built without it may do the same or
// answer -ENOSYS. Only a child that made the call (32-bit getpid, number 20) and got its
// own pid back proves the entry exists.
bool compat_syscalls_available() {
  const pid_t child = fork();
  if (child < 0) return false;
  if (child == 0) {
    // The fault must end the child quietly: no sanitizer report, no core file.
    signal(SIGSEGV, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    const rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    const long pid = int80_syscall(20, 0, 0, 0);
    _exit(pid == static_cast<long>(getpid()) ? 0 : 1);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// write(2) through the 32-bit entry (32-bit number 4). The buffer must sit below 4 GiB.
// Call only after compat_syscalls_available() said yes.
long compat_write(int fd, const char* text, size_t len) {
  void* low =
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  REQUIRE(low != MAP_FAILED);
  std::memcpy(low, text, len);
  const long ret = int80_syscall(4, static_cast<uint32_t>(fd),
                                 static_cast<uint32_t>(reinterpret_cast<uintptr_t>(low)),
                                 static_cast<uint32_t>(len));
  munmap(low, 4096);
  return ret;
}

TEST_CASE_METHOD(WatchedTcp, "a 32-bit syscall of a tracked process is counted, never misread",
                 "[kernel]") {
  // Its number 4 is write for the 32-bit table but stat for the 64-bit one, and its
  // arguments are in other registers: decoding it as x86-64 would be wrong. It is
  // counted (reason compat_syscall); the 64-bit traffic around it is captured as usual.
  if (!compat_syscalls_available()) {
    WARN("32-bit syscalls not available on this kernel: case not run");
    return;
  }
  const uint64_t before = cap->drops().by_reason[DBW_DROP_COMPAT_SYSCALL];
  REQUIRE(write(p.server, "sixty-four", 10) == 10);
  const long ret = compat_write(p.server, "thirty-two", 10);
  REQUIRE(ret == 10);
  char buf[64];
  REQUIRE(read(p.client, buf, sizeof(buf)) > 0);
  drain(*cap);
  CHECK(cap->drops().by_reason[DBW_DROP_COMPAT_SYSCALL] > before);
  std::string egress;
  for (const auto& d : rec.r.data) egress += d.direction == DBW_DIR_EGRESS ? d.bytes : "";
  CHECK(egress == "sixty-four");
}
#endif

// A network namespace joined to this one by a veth pair: a server in it is, for
// this namespace, on another host. Torn down by the destructor.
struct RemoteNetns {
  std::string ns, host_if;
  bool ok = false;
  std::string host_addr, ns_addr;
  RemoteNetns() {
    std::string id = std::to_string(getpid());
    ns = "dbwkt" + id;
    host_if = "dbwkh" + id;
    host_addr = "10.232." + std::to_string(getpid() % 200 + 20) + ".1";
    ns_addr = "10.232." + std::to_string(getpid() % 200 + 20) + ".2";
    std::string cmd = "ip netns add " + ns + " && ip link add " + host_if +
                      " type veth peer name dbwkn" + id + " && ip link set dbwkn" + id + " netns " +
                      ns + " && ip addr add " + host_addr + "/24 dev " + host_if +
                      " && ip link set " + host_if + " up && ip netns exec " + ns +
                      " ip addr add " + ns_addr + "/24 dev dbwkn" + id + " && ip netns exec " + ns +
                      " ip link set dbwkn" + id + " up";
    ok = std::system((cmd + " 2>/dev/null").c_str()) == 0;
  }
  ~RemoteNetns() {
    std::system(
        ("ip netns del " + ns + " 2>/dev/null; ip link del " + host_if + " 2>/dev/null").c_str());
  }
};

TEST_CASE(
    "client side: a connection to a watched port on another host is captured in the "
    "client, directions and addresses seen from the server",
    "[kernel]") {
  RemoteNetns net;
  if (!net.ok) {
    WARN("cannot create a network namespace with a veth pair: client-side case not run");
    return;
  }
  constexpr uint16_t kPort = 5433;
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  // The server is forked before capture starts, so it is not tracked: it stands for
  // a database on another host.
  pid_t server = fork();
  if (server == 0) {
    int nsfd = open(("/run/netns/" + net.ns).c_str(), O_RDONLY);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) _exit(2);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = ipv4(net.ns_addr, kPort);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(l, 1) != 0) _exit(3);
    if (write(ready[1], "r", 1) != 1) _exit(4);
    int c = accept(l, nullptr, nullptr);
    char buf[16];
    if (c < 0 || read(c, buf, sizeof(buf)) != 5 || write(c, "pong", 4) != 4) _exit(5);
    _exit(read(c, buf, sizeof(buf)) == 0 ? 0 : 6);
  }
  char r;
  REQUIRE(read(ready[0], &r, 1) == 1);
  Recorder rec;
  auto cap = open_capture(rec);
  REQUIRE(cap->watch_port(kPort).ok());
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = ipv4(net.ns_addr, kPort);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  const uint16_t client_port = local_port(fd);
  REQUIRE(send(fd, "query", 5, 0) == 5);
  char buf[8];
  REQUIRE(recv(fd, buf, sizeof(buf), 0) == 4);
  uint64_t ino = inode_of(fd);
  close(fd);
  int status = 0;
  REQUIRE(waitpid(server, &status, 0) == server);
  CHECK(WEXITSTATUS(status) == 0);
  drain(*cap);

  REQUIRE(rec.r.opens.size() == 1);
  const dbw_conn_event& open = rec.r.opens[0];
  CHECK(open.side == DBW_SIDE_CLIENT);
  CHECK(open.hdr.pid == static_cast<uint32_t>(getpid()));
  CHECK(open.sock_ino == ino);
  CHECK(open.family == DBW_FAMILY_INET);
  CHECK(open.server_port == kPort);
  CHECK(open.client_port == client_port);
  const sockaddr_in want_server = ipv4(net.ns_addr, kPort), want_client = ipv4(net.host_addr, 0);
  CHECK(std::memcmp(open.server_addr, &want_server.sin_addr, 4) == 0);
  CHECK(std::memcmp(open.client_addr, &want_client.sin_addr, 4) == 0);
  // The client's send is client -> server (ingress), its recv server -> client.
  CHECK(ingress(rec.r, open.hdr.conn_id) == "query");
  CHECK(egress(rec.r, open.hdr.conn_id) == "pong");
  check_contiguous(rec.r, open.hdr.conn_id);
  REQUIRE(rec.r.closes.size() == 1);
  CHECK(rec.r.closes[0].ingress_bytes == 5);
  CHECK(rec.r.closes[0].egress_bytes == 4);
  close(ready[0]);
  close(ready[1]);
}

// --- the kernel finds servers on its own -------------------------------------------------
// The capturing process is the agent, whose own sockets the kernel never takes for a
// server's: each "server" below is a forked child, never tracked by userspace.

// A unix socket bound to `path` and listening.
int unix_listener(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 4) != 0) {
    return -1;
  }
  return fd;
}

int unix_connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  return fd;
}

// In a forked server: accept one connection on `listener`, read `n` bytes, answer "ok".
int serve_one(int listener, size_t n) {
  int c = accept(listener, nullptr, nullptr);
  std::string buf(n, '\0');
  size_t got = 0;
  while (c >= 0 && got < n) {
    ssize_t r = read(c, buf.data() + got, n - got);
    if (r <= 0) return 2;
    got += static_cast<size_t>(r);
  }
  return c >= 0 && write(c, "ok", 2) == 2 ? 0 : 3;
}

std::string temp_dir() {
  char dir[] = "/tmp/dbw-kernel-XXXXXX";
  REQUIRE(mkdtemp(dir));
  return dir;
}

const dbw_conn_event* open_of_pid(const Recorded& r, pid_t pid) {
  for (const auto& o : r.opens) {
    if (o.hdr.pid == static_cast<uint32_t>(pid)) return &o;
  }
  return nullptr;
}

// Forks a server whose `listen_unix()` returns a listening unix socket (or -1), waits until
// it listens, sends `message` over a connection to `path` and waits for its "ok" and its
// exit. Returns the server's pid.
template <typename ListenUnix>
pid_t exchange_with_unix_server(const std::string& path, const std::string& message,
                                ListenUnix listen_unix) {
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  pid_t server = fork();
  if (server == 0) {
    int u = listen_unix();
    if (u < 0 || write(ready[1], "r", 1) != 1) _exit(5);
    _exit(serve_one(u, message.size()));
  }
  char r;
  REQUIRE(read(ready[0], &r, 1) == 1);
  int client = unix_connect(path);
  REQUIRE(write(client, message.data(), message.size()) == ssize_t(message.size()));
  char ok[2];
  REQUIRE(read(client, ok, 2) == 2);
  int status = 0;
  REQUIRE(waitpid(server, &status, 0) == server);
  CHECK(WEXITSTATUS(status) == 0);
  for (int fd : {client, ready[0], ready[1]}) close(fd);
  return server;
}

TEST_CASE(
    "an untracked process accepting on a watched port is tracked at once; the connection "
    "is captured from its first byte, sent before the accept",
    "[kernel]") {
  Recorder rec;
  auto opened = BpfCapture::Open(Options{}, rec);  // nothing tracked by userspace
  if (!opened.ok()) FAIL(opened.status().message());
  BpfCapture& cap = *opened.value();
  TcpPair p;
  REQUIRE(cap.watch_port(p.port).ok());
  // The client connects and sends its startup message before the server accepts.
  p.client = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_storage a = p.loopback(p.port);
  REQUIRE(connect(p.client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  const std::string startup = "startup: user=alice database=shop";
  REQUIRE(write(p.client, startup.data(), startup.size()) == ssize_t(startup.size()));
  pid_t server = fork();
  if (server == 0) _exit(serve_one(p.listener, startup.size()));
  char ok[2];
  REQUIRE(read(p.client, ok, 2) == 2);
  int status = 0;
  REQUIRE(waitpid(server, &status, 0) == server);
  CHECK(WEXITSTATUS(status) == 0);
  drain(cap);

  REQUIRE(rec.r.servers.size() == 1);
  CHECK(rec.r.servers[0].how == DBW_SERVER_ACCEPT);
  CHECK(rec.r.servers[0].hdr.pid == static_cast<uint32_t>(server));
  CHECK(rec.r.servers[0].port == p.port);
  CHECK(rec.r.servers[0].family == DBW_FAMILY_INET);
  const dbw_conn_event* open = open_of_pid(rec.r, server);
  REQUIRE(open != nullptr);
  CHECK(open->side == DBW_SIDE_SERVER);
  CHECK(open->server_port == p.port);
  CHECK(ingress(rec.r, open->hdr.conn_id) == startup);
  CHECK(egress(rec.r, open->hdr.conn_id) == "ok");
  check_contiguous(rec.r, open->hdr.conn_id);
  CHECK_FALSE(cap.is_tracked(static_cast<uint32_t>(getpid())));  // the agent never is
}

TEST_CASE("an untracked process accepting on a port that is not watched stays untracked",
          "[kernel]") {
  Recorder rec;
  auto opened = BpfCapture::Open(Options{}, rec);
  if (!opened.ok()) FAIL(opened.status().message());
  TcpPair p;  // not watched
  p.client = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_storage a = p.loopback(p.port);
  REQUIRE(connect(p.client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(write(p.client, "x", 1) == 1);
  pid_t server = fork();
  if (server == 0) _exit(serve_one(p.listener, 1));
  char ok[2];
  REQUIRE(read(p.client, ok, 2) == 2);
  int status = 0;
  REQUIRE(waitpid(server, &status, 0) == server);
  drain(*opened.value());
  CHECK(rec.r.servers.empty());
  CHECK(rec.r.opens.empty());
  CHECK(rec.r.data.empty());
}

TEST_CASE(
    "a unix socket of a process listening on a watched port is watched from its listen, "
    "whatever its name (MySQL's socket path is a setting)",
    "[kernel]") {
  Recorder rec;
  auto opened = BpfCapture::Open(Options{}, rec);
  if (!opened.ok()) FAIL(opened.status().message());
  BpfCapture& cap = *opened.value();
  const std::string dir = temp_dir(), path = dir + "/mysqld.sock";
  // Bound now, listened on in the server (listen(2) is the hook).
  int tcp = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in any = ipv4("127.0.0.1", 0);
  REQUIRE(bind(tcp, reinterpret_cast<sockaddr*>(&any), sizeof(any)) == 0);
  const uint16_t port = local_port(tcp);
  REQUIRE(cap.watch_port(port).ok());
  const std::string query = "SELECT 1 over a socket nobody told the agent about";
  // Like mysqld: TCP first, then the unix socket.
  pid_t server = exchange_with_unix_server(
      path, query, [&] { return listen(tcp, 4) == 0 ? unix_listener(path) : -1; });
  drain(cap);

  REQUIRE(rec.r.servers.size() == 2);
  CHECK(rec.r.servers[0].how == DBW_SERVER_UNIX_PATH);
  CHECK(rec.r.servers[0].port == port);
  CHECK(rec.r.servers[0].family == DBW_FAMILY_UNIX);
  CHECK(std::string(rec.r.servers[0].path) == path);
  CHECK(rec.r.servers[1].how == DBW_SERVER_ACCEPT);
  CHECK(rec.r.servers[1].hdr.pid == static_cast<uint32_t>(server));
  const dbw_conn_event* open = open_of_pid(rec.r, server);
  REQUIRE(open != nullptr);
  CHECK(open->family == DBW_FAMILY_UNIX);
  CHECK(open->server_port == port);
  CHECK(ingress(rec.r, open->hdr.conn_id) == query);
  close(tcp);
  unlink(path.c_str());
  rmdir(dir.c_str());
}

TEST_CASE("a unix socket named .s.PGSQL.<watched port> is watched from its listen",
          "[kernel]") {
  Recorder rec;
  auto opened = BpfCapture::Open(Options{}, rec);
  if (!opened.ok()) FAIL(opened.status().message());
  BpfCapture& cap = *opened.value();
  REQUIRE(cap.watch_port(6544).ok());  // watched, nothing listens on it over TCP
  const std::string dir = temp_dir();
  const std::string path = dir + "/.s.PGSQL.6544", other = dir + "/.s.PGSQL.6545";
  pid_t server = exchange_with_unix_server(path, "startup", [&] {
    // Another port's name first: not watched.
    return unix_listener(other) >= 0 ? unix_listener(path) : -1;
  });
  drain(cap);

  REQUIRE(rec.r.servers.size() == 2);
  CHECK(rec.r.servers[0].how == DBW_SERVER_UNIX_PATH);
  CHECK(rec.r.servers[0].port == 6544);
  CHECK(std::string(rec.r.servers[0].path) == path);
  CHECK(rec.r.servers[1].how == DBW_SERVER_ACCEPT);
  const dbw_conn_event* open = open_of_pid(rec.r, server);
  REQUIRE(open != nullptr);
  CHECK(open->server_port == 6544);
  CHECK(ingress(rec.r, open->hdr.conn_id) == "startup");
  unlink(path.c_str());
  unlink(other.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace dbwarden::capture

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    bool required = std::getenv("DBWARDEN_REQUIRE_KERNEL_TESTS") != nullptr;
    std::fprintf(stderr, "kernel capture tests need root to load BPF programs: %s\n",
                 required ? "FAILING (DBWARDEN_REQUIRE_KERNEL_TESTS is set)" : "skipped");
    return required ? 1 : 77;
  }
  return Catch::Session().run(argc, argv);
}
