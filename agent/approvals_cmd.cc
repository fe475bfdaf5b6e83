// SPDX-License-Identifier: Apache-2.0
#include "agent/approvals_cmd.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <iostream>
#include <string>

#include "agent/approvals_token_cmd.h"
#include "common/unique_fd.h"
#include "policy/approval_keys.h"

namespace dbwarden::agent {
namespace {

constexpr int kOk = 0;
constexpr int kRefused = 1;
constexpr int kBad = 2;
constexpr char kDefaultSocket[] = "/run/dbwarden/approvals.sock";

constexpr char kUsage[] =
    "Usage: dbwarden approvals list\n"
    "       dbwarden approvals show ID\n"
    "       dbwarden approvals approve ID [--for DURATION] [--reason TEXT]\n"
    "       dbwarden approvals deny ID --reason TEXT\n"
    "       dbwarden approvals token add|remove NAME | list   (the HTTP API's tokens)\n"
    "Options: --socket PATH   the agent's approvals socket (default /run/dbwarden/approvals.sock)\n"
    "You act as your uid; nobody approves their own request. --for 30m also lets the same\n"
    "statement shape from the same identity run without a request for 30 minutes.\n";

// Tabs and line ends separate the request's fields: a reason keeps neither.
std::string field(std::string s) {
  for (char& c : s) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace

int approvals_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  if (argc >= 2 && std::string(argv[1]) == "token") {
    return approvals_token_main(argc - 1, argv + 1, out, err);
  }
  std::string verb, id, reason, socket_path = kDefaultSocket;
  uint64_t for_ms = 0;
  bool have_reason = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--help" || a == "-h") {
      out << kUsage;
      return kOk;
    } else if (a == "--socket" && has_value) {
      socket_path = argv[++i];
    } else if (a == "--reason" && has_value) {
      reason = argv[++i];
      have_reason = true;
    } else if (a == "--for" && has_value) {
      if (!policy::parse_duration_ms(argv[++i], &for_ms) || for_ms < 1000) {
        err << "dbwarden approvals: --for takes a duration such as 90s, 30m or 2h\n";
        return kBad;
      }
    } else if (!a.empty() && a[0] == '-') {
      err << "dbwarden approvals: unknown option " << a << "\n" << kUsage;
      return kBad;
    } else if (verb.empty()) {
      verb = a;
    } else if (id.empty()) {
      id = a;
    } else {
      err << "dbwarden approvals: unexpected argument " << a << "\n" << kUsage;
      return kBad;
    }
  }
  const bool needs_id = verb == "show" || verb == "approve" || verb == "deny";
  if (!(verb == "list" || needs_id) || needs_id == id.empty() ||
      (verb == "deny" && (!have_reason || reason.empty())) || (for_ms != 0 && verb != "approve")) {
    err << kUsage;
    return kBad;
  }
  const std::string line = verb + "\t" + id + "\t" + (for_ms ? std::to_string(for_ms / 1000) : "") +
                           "\t" + field(reason) + "\n";

  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(un.sun_path)) {
    err << "dbwarden approvals: socket path too long\n";
    return kBad;
  }
  std::memcpy(un.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid() || connect(fd.get(), reinterpret_cast<sockaddr*>(&un), sizeof un) != 0) {
    err << "dbwarden approvals: cannot reach the agent at " << socket_path << ": "
        << std::strerror(errno)
        << (errno == EACCES ? " (only root and the approvals-group may connect)" : "") << "\n";
    return kBad;
  }
  if (write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    err << "dbwarden approvals: write: " << std::strerror(errno) << "\n";
    return kBad;
  }
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = read(fd.get(), buf, sizeof buf)) > 0;) {
    reply.append(buf, static_cast<size_t>(n));
  }
  if (reply.rfind("ok\n", 0) == 0) {
    out << reply.substr(3);
    return kOk;
  }
  if (reply.rfind("error: ", 0) == 0) {
    err << "dbwarden approvals: " << reply.substr(7);
    return kRefused;
  }
  err << "dbwarden approvals: no answer from the agent\n";
  return kBad;
}

int approvals_main(int argc, const char* const* argv) {
  return approvals_main(argc, argv, std::cout, std::cerr);
}

}  // namespace dbwarden::agent
