// SPDX-License-Identifier: Apache-2.0
//
// The TLS rescan reads a server process's maps again only when the vsize of
// its /proc/<pid>/stat moved; the vsize must be field 23 whatever the command
// name holds (proc(5): "(2) comm ... (23) vsize").
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "capture/tls_attach.h"
#include "common/read_file.h"

namespace dbwarden::capture {
namespace {

std::string stat_line(const std::string& comm, uint64_t vsize) {
  // Fields 3..22 as a postgres backend shows them, then vsize and the rest.
  return "4242 (" + comm + ") S 4100 4100 4100 0 -1 4194368 512 0 0 0 3 5 0 0 20 0 1 0 123456 " +
         std::to_string(vsize) + " 4096 18446744073709551615 1 1 0 0 0 0 4194304 0 0 0 17 1 0 0\n";
}

TEST_CASE("tls rescan: vsize from /proc/<pid>/stat", "[capture][tls]") {
  CHECK(parse_stat_vsize(stat_line("postgres", 225341440)) == 225341440);
  // A command name with spaces and parentheses does not shift the fields.
  CHECK(parse_stat_vsize(stat_line("a) b (c", 77)) == 77);
  CHECK(parse_stat_vsize(stat_line(") ) )", 1)) == 1);
  // Not a stat text: no value rather than a wrong one.
  CHECK_FALSE(parse_stat_vsize(""));
  CHECK_FALSE(parse_stat_vsize("4242 postgres S 1 2 3"));
  CHECK_FALSE(parse_stat_vsize("4242 (postgres) S 4100 4100"));  // cut short
  std::string bad = stat_line("postgres", 123);
  bad.replace(bad.find(" 123 "), 5, " 12x ");
  CHECK_FALSE(parse_stat_vsize(bad));
}

TEST_CASE("tls rescan: this process's vsize is what the kernel reports", "[capture][tls]") {
  const auto v = parse_stat_vsize(read_whole_file("/proc/self/stat"));
  REQUIRE(v);
  // /proc/self/statm's first field is the same size in pages.
  const std::string statm = read_whole_file("/proc/self/statm");
  const uint64_t pages = std::stoull(statm.substr(0, statm.find(' ')));
  // Both are read at slightly different moments; allocations in between are small.
  const uint64_t from_statm = pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  CHECK(*v >= from_statm / 2);
  CHECK(*v <= from_statm * 2);
}

}  // namespace
}  // namespace dbwarden::capture
