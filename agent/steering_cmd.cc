// SPDX-License-Identifier: Apache-2.0
#include "agent/steering_cmd.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "agent/run.h"
#include "steering/steering.h"

namespace dbwarden::agent {
namespace {

void usage() {
  std::printf(
      "Usage: dbwarden steering <status|mark-down|detach> [--steer-pin-dir DIR]\n\n"
      "  status     the proxy-alive flag, the fail mode, what is protected, the counters\n"
      "  mark-down  clear the proxy-alive flag: new connections get the fail mode until the\n"
      "             proxy sets it again (ExecStopPost=, or a watchdog for a hung proxy); in\n"
      "             fail mode open, also give the servers' sockets their permissions back\n"
      "  detach     remove the steering programs and maps and give the servers' sockets their\n"
      "             permissions back: connections go to the servers\n\n"
      "DIR defaults to %s.\n",
      steering::kDefaultPinDir);
}

int status(const steering::Steering& s, const std::string& dir) {
  auto st = s.state();
  auto c = s.counters();
  auto tcp = s.protected_tcp();
  auto unix_paths = s.protected_unix();
  if (!st.ok() || !c.ok() || !tcp.ok() || !unix_paths.ok()) {
    const Status& bad = !st.ok()    ? st.status()
                        : !c.ok()   ? c.status()
                        : !tcp.ok() ? tcp.status()
                                    : unix_paths.status();
    std::fprintf(stderr, "dbwarden steering: %s\n", bad.message().c_str());
    return kExitError;
  }
  const bool up = st->proxy_alive && st->life_socket;
  std::printf("steering at %s: proxy %s (alive flag %s, life socket %s), fail mode %s\n",
              dir.c_str(), up ? "up" : "DOWN", st->proxy_alive ? "set" : "clear",
              st->life_socket ? "held" : "gone", steering::fail_mode_name(st->fail_mode));
  for (const steering::Endpoint& e : *tcp) std::printf("protected tcp %s\n", e.to_string().c_str());
  for (const std::string& p : *unix_paths) std::printf("protected unix %s\n", p.c_str());
  if (auto locks = s.unix_locks(); locks.ok()) {
    for (const steering::UnixLock& l : *locks) {
      std::printf("locked unix %s: mode %04o (was %04o), owner %u\n", l.path.c_str(), l.locked_mode,
                  l.mode, l.uid);
    }
  }
  std::printf(
      "tcp: steered %llu, exempt %llu, fail-open %llu, fail-closed %llu, assign errors %llu\n"
      "unix: steered %llu, exempt %llu, fail-open %llu, fail-closed %llu, rewrite errors %llu\n",
      static_cast<unsigned long long>(c->tcp_steered),
      static_cast<unsigned long long>(c->tcp_exempt),
      static_cast<unsigned long long>(c->tcp_fail_open),
      static_cast<unsigned long long>(c->tcp_fail_closed),
      static_cast<unsigned long long>(c->tcp_assign_error),
      static_cast<unsigned long long>(c->unix_steered),
      static_cast<unsigned long long>(c->unix_exempt),
      static_cast<unsigned long long>(c->unix_fail_open),
      static_cast<unsigned long long>(c->unix_fail_closed),
      static_cast<unsigned long long>(c->unix_rewrite_error));
  return kExitOk;
}

}  // namespace

int steering_main(int argc, const char* const* argv) {
  std::string dir = steering::kDefaultPinDir, command;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      usage();
      return kExitOk;
    }
    if (!std::strcmp(argv[i], "--steer-pin-dir") && i + 1 < argc) {
      dir = argv[++i];
    } else if (!std::strncmp(argv[i], "--steer-pin-dir=", 16)) {
      dir = argv[i] + 16;
    } else if (command.empty() && argv[i][0] != '-') {
      command = argv[i];
    } else {
      std::fprintf(stderr, "dbwarden steering: unexpected argument '%s' (try --help)\n", argv[i]);
      return kExitUsage;
    }
  }
  if (dir.empty() || (command != "status" && command != "mark-down" && command != "detach")) {
    std::fprintf(stderr,
                 "dbwarden steering: say status, mark-down or detach, with a non-empty "
                 "--steer-pin-dir (try --help)\n");
    return kExitUsage;
  }
  if (command == "detach") {
    int removed = 0;
    if (Status s = steering::Steering::detach(dir, &removed); !s.ok()) {
      std::fprintf(stderr, "dbwarden steering: %s\n", s.message().c_str());
      return kExitError;
    }
    std::printf("dbwarden steering: removed %d pins from %s; nothing is steered any more\n",
                removed, dir.c_str());
    return kExitOk;
  }
  auto s = steering::Steering::open_pinned(dir);
  if (!s.ok()) {
    // Nothing pinned: nothing is steered, and nothing is to be marked down.
    std::printf("dbwarden steering: not attached (%s)\n", s.status().message().c_str());
    return command == "mark-down" ? kExitOk : kExitError;
  }
  if (command == "status") return status(**s, dir);
  if (Status st = (*s)->set_proxy_alive(false); !st.ok()) {
    std::fprintf(stderr, "dbwarden steering: %s\n", st.message().c_str());
    return kExitError;
  }
  std::printf("dbwarden steering: proxy marked down at %s\n", dir.c_str());
  // Fail open means clients reach the servers directly: their sockets, locked to their
  // owners while enforcing, open up again (the agent locks them again when it is back).
  auto st = (*s)->state();
  if (st.ok() && st->fail_mode == steering::FailMode::kOpen) {
    auto n = (*s)->unlock_all();
    if (!n.ok()) {
      std::fprintf(stderr, "dbwarden steering: fail mode open: %s\n", n.status().message().c_str());
      return kExitError;
    }
    std::printf("dbwarden steering: fail mode open: %d server socket(s) unlocked\n", *n);
  }
  return kExitOk;
}

}  // namespace dbwarden::agent
