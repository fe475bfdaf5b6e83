// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "agent/config.h"

namespace dbwarden::agent {

// Exit codes of `dbwarden run`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNoPrivilege = 77;

// Observes until SIGINT/SIGTERM; returns the process exit code.
int run(const Config& config);

// Decodes a recording into an audit file; returns the process exit code.
int replay(const ReplayConfig& config);

}  // namespace dbwarden::agent
