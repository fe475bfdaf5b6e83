// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <sstream>
#include <vector>

#include "agent/config.h"

namespace dbwarden::agent {
namespace {

Result<std::optional<ReplayConfig>> parse_replay(std::vector<const char*> args) {
  args.insert(args.begin(), "replay");
  std::ostringstream out;
  return parse_replay_config(static_cast<int>(args.size()), args.data(), out);
}

TEST_CASE("replay config: metrics are fed by default, as in run", "[agent][config]") {
  auto r = parse_replay({"rec.bin", "--audit-file", "a.jsonl"});
  REQUIRE(r.ok());
  REQUIRE(r.value().has_value());
  const ReplayConfig& c = *r.value();
  CHECK(c.recording == "rec.bin");
  CHECK(c.audit_file == "a.jsonl");
  CHECK(c.audit_format == "jsonl");
  CHECK(c.metrics);
  CHECK(c.metrics_file.empty());
  CHECK(c.mysql_ports.empty());
}

TEST_CASE("replay config: --no-metrics, --metrics-file, --mysql-port", "[agent][config]") {
  auto off = parse_replay({"rec.bin", "--audit-file", "a.jsonl", "--no-metrics"});
  REQUIRE(off.ok());
  CHECK_FALSE(off.value()->metrics);

  auto file = parse_replay({"rec.bin", "--audit-file", "a.jsonl", "--metrics-file", "m.txt",
                            "--mysql-port", "3306", "--mysql-port", "3307"});
  REQUIRE(file.ok());
  CHECK(file.value()->metrics);
  CHECK(file.value()->metrics_file == "m.txt");
  CHECK(file.value()->mysql_ports == std::vector<uint16_t>{3306, 3307});
}

TEST_CASE("replay config: contradictions and missing arguments are named errors",
          "[agent][config]") {
  auto both = parse_replay(
      {"rec.bin", "--audit-file", "a.jsonl", "--no-metrics", "--metrics-file", "m.txt"});
  REQUIRE_FALSE(both.ok());
  CHECK(both.status().message().find("--metrics-file") != std::string::npos);
  auto missing = parse_replay({"rec.bin"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("--audit-file") != std::string::npos);
}

}  // namespace
}  // namespace dbwarden::agent
