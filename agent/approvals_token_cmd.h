// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden approvals token add NAME | remove NAME | list [--tokens FILE]`: the approvers'
// tokens for the HTTP API and web inbox (agent/approval_tokens.h). `add` prints the new
// token once, on stdout; only its SHA-256 is stored. The agent reads the file again when it
// changes: no restart. Exit status: 0 done, 1 refused (why on stderr), 2 bad usage.
#pragma once

#include <iosfwd>

namespace dbwarden::agent {

inline constexpr char kDefaultTokensFile[] = "/etc/dbwarden/approval-tokens";

// argv[0] is "token".
int approvals_token_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace dbwarden::agent
