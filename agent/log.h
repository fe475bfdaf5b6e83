// SPDX-License-Identifier: Apache-2.0
//
// The agent's own log: one line per event on stderr, which systemd sends to
// the journal. Under journald each line starts with its syslog priority
// ("<3>"), so `journalctl -p err` works; on a terminal it reads
// "dbwarden: error: ...". Never pass statement text, parameters or
// credentials to it: the audit log is the place for what clients did.
#pragma once

#include <string>
#include <string_view>

namespace dbwarden::agent::log {

enum class Level { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };  // syslog priorities

// Rewrites a line before it is written (the policy's content detectors:
// agent/content_scrub.h), so that a value that slipped into a message is masked.
class LineFilter {
 public:
  virtual ~LineFilter() = default;
  virtual void filter(std::string& line) const = 0;
};
// Null: lines go out as written. The filter must outlive its use (clear it first).
void set_filter(const LineFilter* filter);

void set_level(Level level);
bool parse_level(std::string_view name, Level& out);  // "error", "warning", "info", "debug"
bool enabled(Level level);
void write(Level level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace dbwarden::agent::log

#define DBW_LOG(level, ...)                                                              \
  do {                                                                                   \
    if (::dbwarden::agent::log::enabled(::dbwarden::agent::log::Level::level)) {          \
      ::dbwarden::agent::log::write(::dbwarden::agent::log::Level::level, __VA_ARGS__);  \
    }                                                                                    \
  } while (0)
