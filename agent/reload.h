// SPDX-License-Identifier: Apache-2.0
//
// SIGHUP: read the config again with the same parser and command line, apply
// what can change while connections stay open (ports, statement bound, log
// level) and keep the rest, saying which settings need a restart. A config
// that does not parse is logged and the running one kept.
#pragma once

#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/observer.h"
#include "agent/server_watcher.h"
#include "common/status.h"
#include "metrics/exporter.h"

namespace dbwarden::agent {

struct ConfigDiff {
  bool ports = false;            // postgres or mysql port lists differ
  bool max_query_bytes = false;  // for connections opened from now on
  bool log_level = false;
  std::vector<std::string> needs_restart;  // option names that differ but stay as they were
  bool any() const { return ports || max_query_bytes || log_level || !needs_restart.empty(); }
};

// Compares two parsed configs.
ConfigDiff diff_config(const Config& running, const Config& next);

// Parses running.args again (the config file may have changed since).
Result<Config> reparse_config(const Config& running);

class Reloader {
 public:
  // `watcher` null: no capture (enforce mode, observer off); port changes need a restart.
  Reloader(Config& config, ServerWatcher* watcher, Observer& observer, metrics::Exporter* metrics)
      : config_(config), watcher_(watcher), observer_(observer), metrics_(metrics) {}

  // Reads and applies the config; logs what changed and what needs a restart.
  // On error the running config is kept (the error is returned and logged).
  Status reload();

 private:
  Config& config_;
  ServerWatcher* watcher_;
  Observer& observer_;
  metrics::Exporter* metrics_;
};

}  // namespace dbwarden::agent
