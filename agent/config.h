// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden run` settings: command line first, then the config file (same
// keys, `key = value` lines), then built-in defaults.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace dbwarden::agent {

struct Config {
  std::string config_file;  // empty: none
  std::string audit_file = "/var/log/dbwarden/audit.jsonl";
  std::string metrics_address = "127.0.0.1:9977";
  std::vector<uint16_t> postgres_ports{5432};
  uint64_t max_query_bytes = 1u << 20;
  uint32_t ringbuf_bytes = 16u << 20;
  std::string record_file;  // non-empty: also record raw capture records (for replay)
};

// Parses `dbwarden run` arguments (argv[0] is "run"). Returns nullopt after
// printing --help or --version to `out`; an error Status names the problem.
Result<std::optional<Config>> parse_run_config(int argc, const char* const* argv,
                                               std::ostream& out);

// `dbwarden replay FILE --audit-file PATH`: decodes a recording offline.
struct ReplayConfig {
  std::string recording;
  std::string audit_file;
  uint64_t max_query_bytes = 1u << 20;
};
Result<std::optional<ReplayConfig>> parse_replay_config(int argc, const char* const* argv,
                                                        std::ostream& out);

}  // namespace dbwarden::agent
