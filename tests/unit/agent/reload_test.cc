// SPDX-License-Identifier: Apache-2.0
#include "agent/reload.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent/resume.h"
#include "capture/pinning.h"

namespace dbwarden::agent {
namespace {

Config parse(std::vector<const char*> args) {
  args.insert(args.begin(), "run");
  std::ostringstream out;
  auto r = parse_run_config(static_cast<int>(args.size()), args.data(), out);
  REQUIRE(r.ok());
  REQUIRE(r.value());
  return *r.value();
}

struct TempConfig {
  std::string path;
  explicit TempConfig(const std::string& text) {
    char tmpl[] = "/tmp/dbw-reload-test-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    close(fd);
    path = tmpl;
    write(text);
  }
  void write(const std::string& text) const { std::ofstream(path) << text; }
  ~TempConfig() { std::remove(path.c_str()); }
};

TEST_CASE("diff_config: identical configs differ in nothing") {
  Config a = parse({"--postgres-port", "5432"});
  ConfigDiff d = diff_config(a, a);
  CHECK_FALSE(d.any());
}

TEST_CASE("diff_config: live settings are told apart from restart-only ones") {
  Config a = parse({"--postgres-port", "5432"});
  SECTION("ports, postgres or mysql") {
    CHECK(diff_config(a, parse({"--postgres-port", "5432", "--postgres-port", "5433"})).ports);
    ConfigDiff d = diff_config(a, parse({"--postgres-port", "5432", "--mysql-port", "3306"}));
    CHECK(d.ports);
    CHECK(d.needs_restart.empty());
  }
  SECTION("bound and log level") {
    ConfigDiff d = diff_config(a, parse({"--max-query-bytes", "4096", "--log-level", "debug"}));
    CHECK(d.max_query_bytes);
    CHECK(d.log_level);
    CHECK_FALSE(d.ports);
    CHECK(d.needs_restart.empty());
  }
  SECTION("ring buffer, audit file, metrics address, pin dir need a restart") {
    ConfigDiff d = diff_config(
        a, parse({"--ringbuf-bytes", "8388608", "--audit-file", "/tmp/other.jsonl",
                  "--metrics-address", "127.0.0.1:1", "--bpf-pin-dir", "/sys/fs/bpf/x"}));
    CHECK_FALSE(d.ports);
    CHECK(d.any());
    CHECK(d.needs_restart == std::vector<std::string>{"audit-file", "metrics-address",
                                                      "ringbuf-bytes", "bpf-pin-dir"});
  }
}

TEST_CASE("diff_config: mode and enforce-observer need a restart") {
  Config a, b;
  b.mode = "enforce";
  b.enforce_observer = "off";
  ConfigDiff d = diff_config(a, b);
  CHECK(d.needs_restart == std::vector<std::string>{"mode", "enforce-observer"});
}

TEST_CASE("reparse_config reads the changed config file, the command line still wins") {
  TempConfig file("postgres-port = 5432\nmax-query-bytes = 1000\n");
  Config running = parse({"--config", file.path.c_str(), "--log-level", "warning"});
  CHECK(running.postgres_ports == std::vector<uint16_t>{5432});

  file.write(
      "postgres-port = 5432\npostgres-port = 6543\nmax-query-bytes = 2000\n"
      "log-level = debug\n");
  auto next = reparse_config(running);
  REQUIRE(next.ok());
  CHECK(next.value().postgres_ports == std::vector<uint16_t>{5432, 6543});
  CHECK(next.value().max_query_bytes == 2000);
  CHECK(next.value().log_level == "warning");  // given on the command line
  ConfigDiff d = diff_config(running, next.value());
  CHECK(d.ports);
  CHECK(d.max_query_bytes);
  CHECK_FALSE(d.log_level);

  file.write("postgres-port = not-a-port\n");
  auto broken = reparse_config(running);
  CHECK_FALSE(broken.ok());
}

TEST_CASE("reparse_config without a command line is an error, not a crash") {
  Config c;
  CHECK_FALSE(reparse_config(c).ok());
}

TEST_CASE("parse_tcp_socket_line reads addresses, ports and inode") {
  TcpSocketLine t;
  // /proc/net/tcp, 127.0.0.1:5432 <- 127.0.0.2:40000, established.
  REQUIRE(
      parse_tcp_socket_line("   3: 0100007F:1538 0200007F:9C40 01 00000000:00000000 "
                            "00:00000000 00000000   108        0 123456 1 0000 20 4 30 10 -1",
                            false, t));
  CHECK(t.local_port == 5432);
  CHECK(t.remote_port == 40000);
  CHECK(t.inode == 123456);
  CHECK(std::vector<int>(t.local_addr, t.local_addr + 4) == std::vector<int>{127, 0, 0, 1});
  CHECK(std::vector<int>(t.remote_addr, t.remote_addr + 4) == std::vector<int>{127, 0, 0, 2});

  // /proc/net/tcp6, ::1 on both ends.
  REQUIRE(parse_tcp_socket_line(
      "   0: 00000000000000000000000001000000:1538 00000000000000000000000001000000:A000 01 "
      "00000000:00000000 00:00000000 00000000   108        0 77 1 0000 20 4 30 10 -1",
      true, t));
  CHECK(t.local_addr[15] == 1);
  CHECK(t.local_addr[0] == 0);
  CHECK(t.remote_port == 0xA000);
  CHECK(t.inode == 77);

  CHECK_FALSE(parse_tcp_socket_line("  sl  local_address rem_address   st", false, t));
  CHECK_FALSE(parse_tcp_socket_line("0: 0100007F:1538 0200007F:9C40", false, t));
  CHECK_FALSE(parse_tcp_socket_line("3: 0100007F:1538 0200007F:9C40 01 0:0 0:0 0 108 0 12x 1",
                                    false, t));  // bad inode
  CHECK_FALSE(parse_tcp_socket_line("3: 0100007F:1538 0200007F:9C40 01 0:0 0:0 0 108 0 12 1", true,
                                    t));  // v4 line as v6
}

TEST_CASE("object_identifier changes with the object and with every load setting") {
  std::vector<uint8_t> elf{1, 2, 3, 4};
  uint64_t base = capture::object_identifier(elf, 1u << 24, 1u << 18);
  CHECK(base == capture::object_identifier(elf, 1u << 24, 1u << 18));
  CHECK(base != capture::object_identifier(elf, 1u << 23, 1u << 18));
  CHECK(base != capture::object_identifier(elf, 1u << 24, 1u << 17));
  CHECK(base != capture::object_identifier(elf, 1u << 24, 1u << 18, 1024, 1024));
  CHECK(capture::object_identifier(elf, 1u << 24, 1u << 18, 1024, 1024) !=
        capture::object_identifier(elf, 1u << 24, 1u << 18, 1024, 2048));
  CHECK(capture::object_identifier(elf, 1u << 24, 1u << 18, 1024, 1024, 0) !=
        capture::object_identifier(elf, 1u << 24, 1u << 18, 1024, 1024, 1));
  elf[2] = 9;
  CHECK(base != capture::object_identifier(elf, 1u << 24, 1u << 18));
}

TEST_CASE("check_pins and remove_pins on a plain directory") {
  char tmpl[] = "/tmp/dbw-pins-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string dir = tmpl;
  CHECK(capture::check_pins(dir, 1, {"p"}).state == capture::PinState::kAbsent);  // empty
  std::ofstream(dir + "/pids") << "x";
  capture::PinCheck c = capture::check_pins(dir, 1, {"p"});
  CHECK(c.state == capture::PinState::kStale);
  CHECK(c.reason.find("ports") != std::string::npos);
  int removed = -1;
  REQUIRE(capture::remove_pins(dir, &removed).ok());
  CHECK(removed == 1);
  CHECK(access(dir.c_str(), F_OK) != 0);
  REQUIRE(capture::remove_pins(dir, &removed).ok());  // idempotent
  CHECK(removed == 0);
  CHECK(capture::check_pins(dir, 1, {"p"}).state == capture::PinState::kAbsent);
}

}  // namespace
}  // namespace dbwarden::agent
