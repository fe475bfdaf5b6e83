// SPDX-License-Identifier: Apache-2.0
//
// dbwarden: database activity monitor. Subcommands: run, version.
#include <cstdio>
#include <cstring>
#include <iostream>

#include "agent/approvals_cmd.h"
#include "agent/audit_cat.h"
#include "agent/config.h"
#include "agent/detach.h"
#include "agent/policy_cmd.h"
#include "agent/run.h"
#include "agent/steering_cmd.h"
#include "agent/verify_audit.h"
#include "agent/version.h"

namespace {

void usage(std::FILE* out) {
  std::fprintf(
      out,
      "Usage: dbwarden <command> [options]\n\n"
      "Commands:\n"
      "  run       observe database traffic on this host (see `dbwarden run --help`)\n"
      "  replay    decode a recording made with `run --record` into an audit file\n"
      "  detach    remove the capture programs a stopped agent left pinned\n"
      "  verify-audit  check the audit trail's hash chain (`dbwarden verify-audit --help`)\n"
      "  audit cat [--follow] [FILE|DIR]  print the audit trail as JSON Lines\n"
      "  steering  enforce mode's steering: status, mark-down, detach\n"
      "  policy    check a policy file, or explain its decision on a statement\n"
      "            (`dbwarden policy --help`)\n"
      "  approvals list, show, approve or deny held statements (`dbwarden approvals --help`)\n"
      "  version   print the version\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dbwarden::agent;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (!std::strcmp(argv[1], "version") || !std::strcmp(argv[1], "--version")) {
    std::printf("dbwarden %s\n", kVersion);
    return kExitOk;
  }
  if (!std::strcmp(argv[1], "detach")) return detach_main(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "steering")) return steering_main(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "verify-audit")) return verify_audit_main(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "policy")) return policy_main(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "approvals")) return approvals_main(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "audit")) return audit_main(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "replay")) {
    auto config = parse_replay_config(argc - 1, argv + 1, std::cout);
    if (!config.ok()) {
      std::fprintf(stderr, "dbwarden: %s\n", config.status().message().c_str());
      return kExitUsage;
    }
    if (!config.value()) return kExitOk;
    return replay(*config.value());
  }
  if (!std::strcmp(argv[1], "run")) {
    auto config = parse_run_config(argc - 1, argv + 1, std::cout);
    if (!config.ok()) {
      std::fprintf(stderr, "dbwarden: %s\n", config.status().message().c_str());
      return kExitUsage;
    }
    if (!config.value()) return kExitOk;  // --help / --version
    return run(*config.value());
  }
  std::fprintf(stderr, "dbwarden: unknown command '%s' (try `dbwarden --help`)\n", argv[1]);
  return kExitUsage;
}
