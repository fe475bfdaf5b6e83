// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden policy check FILE` and `dbwarden policy explain FILE --user U
// --database D [identity ...] [--dialect postgresql|mysql] --sql "..."`:
// validate a policy file the way the proxy loads it, and show which rule a
// statement from a given client meets and why (userspace/policy/policy.h).
// Exit status: 0 valid / explained, 2 a bad file or usage.
#pragma once

#include <iosfwd>

namespace dbwarden::agent {

// argv[0] is "policy". Output to `out`, errors to `err`.
int policy_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err);
int policy_main(int argc, const char* const* argv);

}  // namespace dbwarden::agent
