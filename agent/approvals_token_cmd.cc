// SPDX-License-Identifier: Apache-2.0
#include "agent/approvals_token_cmd.h"

#include <ostream>
#include <string>

#include "agent/approval_tokens.h"

namespace dbwarden::agent {
namespace {

constexpr char kUsage[] =
    "Usage: dbwarden approvals token add NAME      print a new token for approver NAME, once\n"
    "       dbwarden approvals token remove NAME   revoke NAME's token (sessions end too)\n"
    "       dbwarden approvals token list          the approvers that have a token\n"
    "Options: --tokens FILE   the agent's approvals-tokens file (default "
    "/etc/dbwarden/approval-tokens)\n"
    "NAME is the approver's login name, as in the policy's approver_groups. The file keeps\n"
    "SHA-256 hashes only: a lost token cannot be shown again; remove it and add a new one.\n";

}  // namespace

int approvals_token_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  std::string verb, name, file = kDefaultTokensFile;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      out << kUsage;
      return 0;
    } else if (a == "--tokens" && i + 1 < argc) {
      file = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      err << "dbwarden approvals token: unknown option " << a << "\n" << kUsage;
      return 2;
    } else if (verb.empty()) {
      verb = a;
    } else if (name.empty()) {
      name = a;
    } else {
      err << "dbwarden approvals token: unexpected argument " << a << "\n" << kUsage;
      return 2;
    }
  }
  if (verb == "list" && name.empty()) {
    auto entries = read_tokens(file);
    if (!entries.ok()) {
      err << "dbwarden approvals token: " << entries.status().message() << "\n";
      return 1;
    }
    for (const TokenEntry& e : entries.value()) out << e.name << "\n";
    return 0;
  }
  if ((verb != "add" && verb != "remove") || name.empty()) {
    err << kUsage;
    return 2;
  }
  if (verb == "remove") {
    if (Status s = remove_token(file, name); !s.ok()) {
      err << "dbwarden approvals token: " << s.message() << "\n";
      return 1;
    }
    err << "token of " << name << " removed from " << file << "\n";
    return 0;
  }
  auto token = new_token();
  if (!token.ok()) {
    err << "dbwarden approvals token: " << token.status().message() << "\n";
    return 1;
  }
  if (Status s = add_token(file, name, token.value()); !s.ok()) {
    err << "dbwarden approvals token: " << s.message() << "\n";
    return 1;
  }
  // The token alone on stdout (scripts take it from there); what it is on stderr.
  out << token.value() << "\n";
  err << "token for " << name << " added to " << file << "; it is shown only now: give it to "
      << name << " (Authorization: Bearer TOKEN, or the inbox's login)\n";
  return 0;
}

}  // namespace dbwarden::agent
