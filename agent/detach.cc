// SPDX-License-Identifier: Apache-2.0
#include "agent/detach.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "agent/run.h"
#include "capture/pinning.h"

namespace dbwarden::agent {

int detach_main(int argc, const char* const* argv) {
  std::string dir = capture::kDefaultPinDir;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf(
          "Usage: dbwarden detach [--bpf-pin-dir DIR]\n\n"
          "Removes the capture programs and maps that `dbwarden run` leaves pinned in the\n"
          "kernel (default %s) so that a restart resumes where it stopped. Run it after\n"
          "stopping the agent for good; a running agent keeps capturing until it exits.\n",
          capture::kDefaultPinDir);
      return kExitOk;
    }
    if (!std::strcmp(argv[i], "--bpf-pin-dir") && i + 1 < argc) {
      dir = argv[++i];
    } else if (!std::strncmp(argv[i], "--bpf-pin-dir=", 14)) {
      dir = argv[i] + 14;
    } else {
      std::fprintf(stderr, "dbwarden detach: unexpected argument '%s' (try --help)\n", argv[i]);
      return kExitUsage;
    }
  }
  if (dir.empty()) {
    std::fprintf(stderr, "dbwarden detach: --bpf-pin-dir must not be empty\n");
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
  return kExitOk;
}

}  // namespace dbwarden::agent
