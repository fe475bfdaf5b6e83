// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden audit cat [--follow] [FILE|DIR]`: prints the audit trail as JSON
// Lines (rotated .zst files decoded, in chain order), complete records only;
// with --follow it keeps printing what the agent appends, across rotations,
// until SIGINT/SIGTERM or the reader of stdout goes away. What a log shipper
// runs or tails. Exit status: 0 done, 1 a file could not be read or is
// damaged, 2 usage.
#pragma once

#include <functional>
#include <iosfwd>

namespace dbwarden::agent {

// argv[0] is "cat". `stop` (optional) ends --follow when it returns true.
int audit_cat_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
                   const std::function<bool()>& stop = nullptr);
// `dbwarden audit ...` on stdout/stderr: argv[0] is "audit".
int audit_main(int argc, const char* const* argv);

}  // namespace dbwarden::agent
