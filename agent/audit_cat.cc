// SPDX-License-Identifier: Apache-2.0
#include "agent/audit_cat.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "audit/chain.h"
#include "audit/compress.h"
#include "audit/frame.h"
#include "audit/trail_reader.h"
#include "audit/verify.h"

namespace dbwarden::agent {
namespace {

constexpr int kOk = 0;
constexpr int kReadError = 1;
constexpr int kUsage = 2;

constexpr char kUsageText[] =
    "Usage: dbwarden audit cat [--follow] [FILE|DIR]\n\n"
    "Prints the audit trail as JSON Lines, complete records only: a DIR stands for its\n"
    "rotated files (oldest first, .zst decoded) and the active file, plain or framed\n"
    "(--audit-format zst: records print once their frame is sealed); the default is\n"
    "/var/log/dbwarden.\n\n"
    "Options:\n"
    "  -f, --follow  keep printing records as they are written, across rotations\n"
    "  -h, --help    this text\n";

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

// The active file a rotated name belongs to: `<name>.YYYYMMDDTHHMMSS.uuuuuuZ[.zst]` is
// `<name>` (jsonl) or, when that is not there, `<name>.zst` (a framed trail).
std::string active_of(const std::string& path) {
  std::string p = path;
  if (p.ends_with(audit::kZstdSuffix)) p.resize(p.size() - audit::kZstdSuffix.size());
  constexpr size_t kStamp = 24;  // '.' and the 23-character stamp
  if (p.size() > kStamp && p.back() == 'Z' && p[p.size() - kStamp] == '.' &&
      p[p.size() - kStamp + 9] == 'T') {
    p.resize(p.size() - kStamp);
    const std::string framed = p + std::string(audit::kZstdSuffix);
    return ::access(p.c_str(), F_OK) != 0 && ::access(framed.c_str(), F_OK) == 0 ? framed : p;
  }
  return path;  // the active file itself, plain or framed
}

}  // namespace

int audit_cat_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
                   const std::function<bool()>& stop) {
  bool follow = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out << kUsageText;
      return kOk;
    } else if (arg == "-f" || arg == "--follow") {
      follow = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      err << "dbwarden audit cat: unknown option '" << arg << "'\n" << kUsageText;
      return kUsage;
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.size() > 1) {
    err << "dbwarden audit cat: one FILE or DIR\n" << kUsageText;
    return kUsage;
  }
  if (paths.empty()) paths.push_back("/var/log/dbwarden");
  auto files = audit::expand_audit_paths(paths, nullptr);
  if (!files.ok()) {
    err << "dbwarden audit cat: " << files.status().message() << "\n";
    return kUsage;
  }
  timespec started{};
  clock_gettime(CLOCK_REALTIME, &started);
  std::optional<uint64_t> last_seq;  // of the last record printed
  const audit::LineSink sink = [&](std::string_view lines) {
    out.write(lines.data(), static_cast<std::streamsize>(lines.size()));
    if (follow) out.flush();  // a shipper tailing us sees each batch at once
    const std::string_view last = lines.substr(0, lines.size() - 1);
    if (const auto seq = audit::record_seq(last.substr(last.find_last_of('\n') + 1))) {
      last_seq = *seq;
    }
  };
  for (const std::string& file : files.value()) {
    uint64_t partial = 0;
    if (Status s = audit::cat_audit_file(file, sink, &partial); !s.ok()) {
      err << "dbwarden audit cat: " << s.message() << "\n";
      return kReadError;
    }
    // A torn record is cut by the next agent (verify-audit lists the recovery).
    if (partial > 0 && !follow) {
      err << "dbwarden audit cat: " << file << ": " << partial
          << " byte(s) of an incomplete last record left out\n";
    }
  }
  out.flush();
  if (!follow) return out.good() ? kOk : kReadError;
  const std::string active = active_of(files.value().empty() ? "" : files.value().back());
  audit::FollowOptions options;
  options.stop = [&] { return g_stop != 0 || !out.good() || (stop && stop()); };
  options.since_unix_ns = static_cast<int64_t>(started.tv_sec) * 1'000'000'000 + started.tv_nsec;
  const Status s = audit::follow_audit_file(active, last_seq, sink, options);
  if (!s.ok()) {
    err << "dbwarden audit cat: " << s.message() << "\n";
    return kReadError;
  }
  return kOk;
}

int audit_main(int argc, const char* const* argv) {
  if (argc >= 2 && !std::strcmp(argv[1], "cat")) {
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a closed pipe ends --follow through the failed write
    return audit_cat_main(argc - 1, argv + 1, std::cout, std::cerr);
  }
  std::cerr << "Usage: dbwarden audit cat [--follow] [FILE|DIR]\n";
  return kUsage;
}

}  // namespace dbwarden::agent
