// SPDX-License-Identifier: Apache-2.0
//
// InodeOwners over a made-up /proc tree: <root>/<pid>/fd/<n> are symlinks to
// "socket:[<inode>]", as in proc(5), so which scan finds which socket is exact.
#include "identity/inode_owners.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>

#include "../support/temp_dir.h"

namespace dbwarden::identity {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::milliseconds;

void hold_socket(const std::string& root, uint32_t pid, int fd, uint64_t inode) {
  fs::path dir = fs::path(root) / std::to_string(pid) / "fd";
  fs::create_directories(dir);
  fs::create_symlink("socket:[" + std::to_string(inode) + "]", dir / std::to_string(fd));
}

void close_socket(const std::string& root, uint32_t pid, int fd) {
  fs::remove(fs::path(root) / std::to_string(pid) / "fd" / std::to_string(fd));
}

void exit_process(const std::string& root, uint32_t pid) {
  fs::remove_all(fs::path(root) / std::to_string(pid));
}

TEST_CASE("inode owners: a known client's next socket is found before the full rescan") {
  dbw_test::TempDir proc;
  hold_socket(proc.path, 100, 3, 5001);  // a pool's first connection
  hold_socket(proc.path, 200, 4, 7000);  // an unrelated process
  InodeOwners owners(proc.path, hours(1), 1024);

  auto first = owners.find(5001);
  REQUIRE(first);
  CHECK(first->pid == 100);
  CHECK(first->fd == 3);
  CHECK(owners.counters().full_scans == 1);

  // The same process opens more connections: no full rescan is due for an
  // hour, yet each is found, by rescanning the processes known as clients.
  for (int i = 0; i < 5; i++) {
    hold_socket(proc.path, 100, 10 + i, 5100 + i);
    auto next = owners.find(5100 + i);
    REQUIRE(next);
    CHECK(next->pid == 100);
    CHECK(next->fd == 10 + i);
  }
  CHECK(owners.counters().full_scans == 1);
  CHECK(owners.counters().client_pid_scans == 5);

  // A process never found as a client gets a socket: it waits for the full rescan
  // (the bound on scan cost), and a miss is a miss, not a wrong answer.
  hold_socket(proc.path, 200, 5, 7001);
  CHECK(!owners.find(7001));
}

TEST_CASE("inode owners: a new process is found by the new-pid scan") {
  dbw_test::TempDir proc;
  hold_socket(proc.path, 100, 3, 5001);
  InodeOwners owners(proc.path, hours(1), 1024);
  REQUIRE(owners.find(5001));
  hold_socket(proc.path, 300, 7, 9001);
  auto p = owners.find(9001);
  REQUIRE(p);
  CHECK(p->pid == 300);
  CHECK(owners.counters().full_scans == 1);
  CHECK(owners.counters().new_pid_scans == 1);
}

TEST_CASE("inode owners: stale answers are dropped, exited clients forgotten") {
  dbw_test::TempDir proc;
  hold_socket(proc.path, 100, 3, 5001);
  InodeOwners owners(proc.path, hours(1), 1024);
  REQUIRE(owners.find(5001));

  // The fd now names another socket: the cached owner of 5001 is not returned.
  close_socket(proc.path, 100, 3);
  hold_socket(proc.path, 100, 3, 5002);
  CHECK(!owners.find(5001));
  auto reused = owners.find(5002);
  REQUIRE(reused);
  CHECK(reused->fd == 3);

  // The client exits; its pid is dropped from the rescan set on the next miss
  // and a later process with the same pid is not confused with it.
  exit_process(proc.path, 100);
  CHECK(!owners.find(5002));
  CHECK(!owners.find(5003));
}

TEST_CASE("inode owners: the full rescan interval still applies") {
  dbw_test::TempDir proc;
  hold_socket(proc.path, 100, 3, 5001);
  hold_socket(proc.path, 200, 4, 7000);
  InodeOwners owners(proc.path, milliseconds(0), 1024);
  REQUIRE(owners.find(5001));
  hold_socket(proc.path, 200, 5, 7001);  // not a known client, not new: needs a full scan
  auto p = owners.find(7001);
  REQUIRE(p);
  CHECK(p->pid == 200);
  CHECK(owners.counters().full_scans == 2);
}

TEST_CASE("inode owners: held_by reads only the named process and checks it") {
  dbw_test::TempDir proc;
  hold_socket(proc.path, 100, 3, 5001);
  InodeOwners owners(proc.path, hours(1), 1024);
  REQUIRE(owners.find(5001));  // the first full scan: 100 is known, without socket 5002

  // A known process connects again: the connect hook names it, no scan is needed.
  hold_socket(proc.path, 100, 4, 5002);
  auto p = owners.held_by(100, 5002);
  REQUIRE(p);
  CHECK(p->fd == 4);
  CHECK(owners.counters().full_scans == 1);
  CHECK(owners.counters().new_pid_scans == 0);

  // A wrong or stale hint is not believed: another pid, a pid that is gone.
  hold_socket(proc.path, 300, 5, 9001);
  CHECK(!owners.held_by(100, 9001));
  CHECK(!owners.held_by(400, 9001));
  auto right = owners.held_by(300, 9001);
  REQUIRE(right);
  CHECK(right->pid == 300);
}

}  // namespace
}  // namespace dbwarden::identity
