// SPDX-License-Identifier: Apache-2.0
//
// describe() on this test process (no root needed) and on a pid that is gone.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "identity/identity.h"

namespace dbwarden::identity {
namespace {

TEST_CASE("identity: describe this process") {
  Resolver r;
  PeerProcess p = r.describe(static_cast<uint32_t>(getpid()));
  CHECK(p.pid == static_cast<uint32_t>(getpid()));
  CHECK(p.uid == geteuid());
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe));
  REQUIRE(n > 0);
  CHECK(p.executable == std::string(exe, static_cast<size_t>(n)));
  std::ifstream comm("/proc/self/comm");
  std::string want;
  std::getline(comm, want);
  CHECK(p.comm == want);
  CHECK(!p.cgroup.empty());
  CHECK(p.cgroup.front() == '/');
}

TEST_CASE("identity: describe a pid that is gone") {
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(0);
  REQUIRE(waitpid(child, nullptr, 0) == child);
  Resolver r;
  PeerProcess p = r.describe(static_cast<uint32_t>(child));
  CHECK(p.pid == static_cast<uint32_t>(child));
  CHECK(p.comm.empty());
  CHECK(p.executable.empty());
  CHECK(p.cgroup.empty());
  CHECK(!p.login_uid);
}

TEST_CASE("identity: bad lookups are values, not crashes") {
  Resolver r;
  CHECK(!r.tcp_peer("not-an-address", 1, "127.0.0.1", 5432));
  CHECK(!r.tcp_peer("127.0.0.1", 1, "::1", 5432));  // mixed families
  CHECK(!r.unix_peer(0));
  CHECK(!r.unix_peer(uint64_t{1} << 40));
  CHECK(r.stats().bad_arguments == 4);
}

}  // namespace
}  // namespace dbwarden::identity
