// SPDX-License-Identifier: Apache-2.0
#include "agent/log.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dbwarden::agent::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<const LineFilter*> g_filter{nullptr};

// systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connected to
// stderr; only then are priority prefixes understood rather than printed.
bool stderr_is_journal() {
  static const bool journal = [] {
    const char* env = std::getenv("JOURNAL_STREAM");
    struct stat st {};
    if (!env || fstat(2, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
    return dev == static_cast<unsigned long long>(st.st_dev) &&
           ino == static_cast<unsigned long long>(st.st_ino);
  }();
  return journal;
}

const char* level_word(Level level) {
  switch (level) {
    case Level::kError: return "error: ";
    case Level::kWarning: return "warning: ";
    case Level::kDebug: return "debug: ";
    case Level::kInfo: break;
  }
  return "";
}

}  // namespace

void set_filter(const LineFilter* filter) { g_filter.store(filter, std::memory_order_release); }

void set_level(Level level) { g_level.store(static_cast<int>(level)); }

bool enabled(Level level) { return static_cast<int>(level) <= g_level.load(); }

bool parse_level(std::string_view name, Level& out) {
  if (name == "error") out = Level::kError;
  else if (name == "warning") out = Level::kWarning;
  else if (name == "info") out = Level::kInfo;
  else if (name == "debug") out = Level::kDebug;
  else return false;
  return true;
}

void write(Level level, const char* format, ...) {
  char message[2048];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  std::string line;
  if (stderr_is_journal()) line = "<" + std::to_string(static_cast<int>(level)) + ">";
  line += "dbwarden: ";
  line += level_word(level);
  std::string text = message;
  if (const LineFilter* f = g_filter.load(std::memory_order_acquire)) f->filter(text);
  line += text;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);  // one write: lines from threads stay whole
}

}  // namespace dbwarden::agent::log
