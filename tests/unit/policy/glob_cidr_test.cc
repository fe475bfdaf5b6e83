// SPDX-License-Identifier: Apache-2.0
//
// The policy's globs (executables, units, containers, tables) and networks.
#include <catch2/catch.hpp>
#include <string>

#include "policy/cidr.h"
#include "policy/glob.h"

using dbwarden::policy::cidr_contains;
using dbwarden::policy::glob_error;
using dbwarden::policy::glob_match;
using dbwarden::policy::parse_address;
using dbwarden::policy::parse_cidr;

TEST_CASE("policy glob: wildcards, classes, escapes", "[policy][glob]") {
  CHECK(glob_match("*", "", false));
  CHECK(glob_match("*", "anything/at/all", false));
  CHECK(glob_match("/usr/bin/*", "/usr/bin/psql", false));
  CHECK(glob_match("/usr/bin/*", "/usr/bin/sub/dir", false));  // '*' crosses '/'
  CHECK_FALSE(glob_match("/usr/bin/*", "/usr/sbin/x", false));
  CHECK(glob_match("p?ql", "psql", false));
  CHECK_FALSE(glob_match("p?ql", "pql", false));
  CHECK(glob_match("cron-*.service", "cron-daily.service", false));
  CHECK_FALSE(glob_match("cron-*.service", "cron-daily.timer", false));
  CHECK(glob_match("*a*b", "xxaxxaxxb", false));
  CHECK_FALSE(glob_match("*a*b", "xxaxxaxxbx", false));
  CHECK(glob_match("x[0-9]", "x5", false));
  CHECK_FALSE(glob_match("x[0-9]", "xa", false));
  CHECK(glob_match("x[!0-9]", "xa", false));
  CHECK(glob_match("x[^0-9]", "xa", false));
  CHECK_FALSE(glob_match("x[!0-9]", "x1", false));
  CHECK(glob_match("[]a]", "]", false));
  CHECK(glob_match("a\\*", "a*", false));
  CHECK_FALSE(glob_match("a\\*", "ab", false));
  CHECK(glob_match("[\\]]", "]", false));
  CHECK_FALSE(glob_match("Accounts", "accounts", false));
  CHECK(glob_match("Accounts", "accounts", true));
  CHECK(glob_match("ACC[A-Z]*", "accounts", true));
  CHECK_FALSE(glob_match("abc", "ab", false));
  CHECK_FALSE(glob_match("ab", "abc", false));
  // One backtrack point: a hostile pattern stays linear-ish.
  const std::string text(20000, 'a');
  CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*b", text, false));
}

TEST_CASE("policy glob: malformed patterns", "[policy][glob]") {
  CHECK(glob_error("ok*[a-z]?\\*").empty());
  CHECK(glob_error("[]]").empty());
  CHECK(glob_error("[") == "has a '[' without its ']'");
  CHECK(glob_error("a[b") == "has a '[' without its ']'");
  CHECK(glob_error("[!]") == "has a '[' without its ']'");
  CHECK(glob_error("a\\") == "ends with a lone backslash");
  // A malformed pattern never reads out of bounds, it just does not match.
  CHECK_FALSE(glob_match("[ab", "a", false));
}

TEST_CASE("policy cidr: parse and contain", "[policy][cidr]") {
  std::string error;
  auto v4 = parse_cidr("10.0.0.0/8", &error);
  REQUIRE(v4);
  CHECK(v4->prefix == 8);
  CHECK(cidr_contains(*v4, *parse_address("10.200.3.4")));
  CHECK_FALSE(cidr_contains(*v4, *parse_address("11.0.0.0")));
  CHECK(cidr_contains(*v4, *parse_address("::ffff:10.9.9.9")));
  CHECK_FALSE(cidr_contains(*v4, *parse_address("::a00:1")));  // not mapped: v6

  auto host = parse_cidr("192.168.1.7", &error);
  REQUIRE(host);
  CHECK(host->prefix == 32);
  CHECK(cidr_contains(*host, *parse_address("192.168.1.7")));
  CHECK_FALSE(cidr_contains(*host, *parse_address("192.168.1.6")));

  auto v6 = parse_cidr("2001:db8:8000::/33", &error);
  REQUIRE(v6);
  CHECK(cidr_contains(*v6, *parse_address("2001:db8:ffff::1")));
  CHECK_FALSE(cidr_contains(*v6, *parse_address("2001:db8:7fff::1")));
  CHECK_FALSE(cidr_contains(*v6, *parse_address("10.0.0.1")));

  auto all = parse_cidr("0.0.0.0/0", &error);
  REQUIRE(all);
  CHECK(cidr_contains(*all, *parse_address("255.255.255.255")));
  CHECK_FALSE(cidr_contains(*all, *parse_address("::1")));

  for (const char* bad :
       {"", "/8", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8", "10.0.0/8", "10.0.0.0/-1",
        "10.0.0.0/33", "::/129", "host.example/24", "10.0.0.1/24", "fe80::1%eth0"}) {
    INFO(bad);
    error.clear();
    CHECK_FALSE(parse_cidr(bad, &error));
    CHECK_FALSE(error.empty());
  }
  CHECK_FALSE(parse_address(""));
  CHECK_FALSE(parse_address("localhost"));
  CHECK_FALSE(parse_address(std::string(100, '1')));
}
