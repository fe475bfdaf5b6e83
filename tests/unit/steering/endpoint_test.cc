// SPDX-License-Identifier: Apache-2.0
//
// The steering library's settings and address conversions (no kernel needed).
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/un.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>

#include "steering/steering.h"

namespace dbwarden::steering {
namespace {

TEST_CASE("fail-mode and enforce-existing take exactly the documented words", "[steering]") {
  CHECK(*parse_fail_mode("closed") == FailMode::kClosed);
  CHECK(*parse_fail_mode("open") == FailMode::kOpen);
  for (const char* bad : {"", "Closed", "fail-open", "open "}) {
    INFO(bad);
    auto r = parse_fail_mode(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("'closed' or 'open'") != std::string::npos);
  }
  CHECK(std::string(fail_mode_name(FailMode::kOpen)) == "open");
  CHECK(std::string(fail_mode_name(FailMode::kClosed)) == "closed");
  CHECK(*parse_enforce_existing("keep") == ExistingPolicy::kKeep);
  CHECK(*parse_enforce_existing("terminate") == ExistingPolicy::kTerminate);
  CHECK_FALSE(parse_enforce_existing("kill").ok());
}

TEST_CASE("endpoints parse, print and convert both families", "[steering]") {
  auto v4 = Endpoint::parse("127.0.0.1", 5432);
  REQUIRE(v4.ok());
  CHECK(v4->family == AF_INET);
  CHECK(v4->addr[0] == 127);
  CHECK(v4->addr[3] == 1);
  CHECK(v4->addr[4] == 0);
  CHECK(v4->to_string() == "127.0.0.1:5432");
  CHECK_FALSE(v4->wildcard());

  auto v6 = Endpoint::parse("[::1]", 3306);
  REQUIRE(v6.ok());
  CHECK(v6->family == AF_INET6);
  CHECK(v6->addr[15] == 1);
  CHECK(v6->to_string() == "[::1]:3306");
  CHECK(*Endpoint::parse("::1", 3306) == *v6);

  CHECK(Endpoint::parse("0.0.0.0", 1)->wildcard());
  CHECK(Endpoint::parse("::", 1)->wildcard());
  CHECK_FALSE(Endpoint::parse("localhost", 1).ok());
  CHECK_FALSE(Endpoint::parse("127.0.0.256", 1).ok());

  for (const Endpoint& e : {*v4, *v6}) {
    socklen_t len = 0;
    sockaddr_storage ss = e.to_sockaddr(&len);
    CHECK(len == (e.family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)));
    auto back = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    REQUIRE(back.ok());
    CHECK(*back == e);
    CHECK(Endpoint::from_sockaddr_unmapped(ss) == e);
  }
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  CHECK_FALSE(Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&un), sizeof(un)).ok());
}

TEST_CASE("a v4-mapped address is the IPv4 endpoint the kernel looks up", "[steering]") {
  sockaddr_storage ss{};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(5432);
  REQUIRE(inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6->sin6_addr) == 1);
  CHECK(Endpoint::from_sockaddr_unmapped(ss) == *Endpoint::parse("10.1.2.3", 5432));
}

TEST_CASE("unix path aliases: the path first, then the spellings steering must also match",
          "[steering]") {
  auto plain = unix_path_aliases("/nonexistent-dir/mysqld.sock");
  CHECK(plain == std::vector<std::string>{"/nonexistent-dir/mysqld.sock"});
  auto pg = unix_path_aliases("/var/run/postgresql/.s.PGSQL.5432");
  REQUIRE_FALSE(pg.empty());
  CHECK(pg.front() == "/var/run/postgresql/.s.PGSQL.5432");
  char real[PATH_MAX];
  if (realpath("/var/run", real) && std::strcmp(real, "/run") == 0) {
    CHECK(std::find(pg.begin(), pg.end(), "/run/postgresql/.s.PGSQL.5432") != pg.end());
    auto run = unix_path_aliases("/run/mysqld/mysqld.sock");
    CHECK(std::find(run.begin(), run.end(), "/var/run/mysqld/mysqld.sock") != run.end());
  }
  // No duplicates.
  std::vector<std::string> sorted = pg;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
}

}  // namespace
}  // namespace dbwarden::steering
