// SPDX-License-Identifier: Apache-2.0
#include "agent/detach.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "agent/run.h"
#include "capture/pinning.h"
#include "steering/steering.h"

namespace dbwarden::agent {

namespace {

// "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past a separate value.
bool take_value(const char* name, int argc, const char* const* argv, int* i, std::string* out) {
  const size_t n = std::strlen(name);
  if (!std::strcmp(argv[*i], name) && *i + 1 < argc) {
    *out = argv[++*i];
    return true;
  }
  if (!std::strncmp(argv[*i], name, n) && argv[*i][n] == '=') {
    *out = argv[*i] + n + 1;
    return true;
  }
  return false;
}

}  // namespace

int detach_main(int argc, const char* const* argv) {
  std::string dir = capture::kDefaultPinDir;
  std::string steer_dir = steering::kDefaultPinDir;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf(
          "Usage: dbwarden detach [--bpf-pin-dir DIR] [--steer-pin-dir DIR]\n\n"
          "Removes the capture programs and maps that `dbwarden run` leaves pinned in the\n"
          "kernel (default %s) so that a restart resumes where it stopped, and the\n"
          "enforcement steering (default %s): client connections then reach the database\n"
          "directly again. Run it after stopping the agent for good; a running agent keeps\n"
          "capturing until it exits.\n",
          capture::kDefaultPinDir, steering::kDefaultPinDir);
      return kExitOk;
    }
    if (take_value("--bpf-pin-dir", argc, argv, &i, &dir)) continue;
    if (take_value("--steer-pin-dir", argc, argv, &i, &steer_dir)) continue;
    std::fprintf(stderr, "dbwarden detach: unexpected argument '%s' (try --help)\n", argv[i]);
    return kExitUsage;
  }
  if (dir.empty() || steer_dir.empty()) {
    std::fprintf(stderr, "dbwarden detach: the pin directories must not be empty\n");
    return kExitUsage;
  }
  int removed = 0;
  if (Status s = capture::remove_pins(dir, &removed); !s.ok()) {
    std::fprintf(stderr, "dbwarden detach: %s\n", s.message().c_str());
    return kExitError;
  }
  if (removed == 0) {
    std::printf("dbwarden detach: nothing pinned at %s\n", dir.c_str());
  } else {
    std::printf("dbwarden detach: removed %d pins from %s; the capture programs are detached\n",
                removed, dir.c_str());
  }
  int steer_removed = 0;
  if (Status s = steering::Steering::detach(steer_dir, &steer_removed); !s.ok()) {
    std::fprintf(stderr, "dbwarden detach: %s\n", s.message().c_str());
    return kExitError;
  }
  if (steer_removed > 0) {
    std::printf("dbwarden detach: removed %d steering pins from %s; connections reach the "
                "database directly again\n",
                steer_removed, steer_dir.c_str());
  }
  return kExitOk;
}

}  // namespace dbwarden::agent
