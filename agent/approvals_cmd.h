// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden approvals list | show ID | approve ID [--for 30m] [--reason TEXT] |
// deny ID --reason TEXT [--socket PATH]`: the approvers' command line, a client of the
// running agent's approvals socket (agent/approvals_server.h). Exit status: 0 done,
// 1 refused by the agent (the reason on stderr), 2 bad usage or no agent to talk to.
#pragma once

#include <iosfwd>

namespace dbwarden::agent {

int approvals_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err);
int approvals_main(int argc, const char* const* argv);

}  // namespace dbwarden::agent
