// SPDX-License-Identifier: Apache-2.0
//
// `dbwarden verify-audit [--state FILE] [--hmac-key FILE] [--partial] FILE|DIR...`
// Checks the audit trail's hash chain (userspace/audit/verify.h) and names
// the first bad record. Exit status: 0 valid, 1 invalid, 2 usage or I/O error.
#pragma once

#include <iosfwd>

namespace dbwarden::agent {

// argv[0] is "verify-audit". Writes the verdict to `out`, errors to `err`.
int verify_audit_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err);
// The same on stdout/stderr.
int verify_audit_main(int argc, const char* const* argv);

}  // namespace dbwarden::agent
