// SPDX-License-Identifier: Apache-2.0
//
// Endpoint conversions, the fail-mode setting and unix path aliases.
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>

#include <cstring>

#include "steering/steering.h"

namespace dbwarden::steering {

Result<FailMode> parse_fail_mode(std::string_view text) {
  if (text == "closed") return FailMode::kClosed;
  if (text == "open") return FailMode::kOpen;
  return Status::Error("fail-mode must be 'closed' or 'open', not '" + std::string(text) + "'");
}

Result<ExistingPolicy> parse_enforce_existing(std::string_view text) {
  if (text == "keep") return ExistingPolicy::kKeep;
  if (text == "terminate") return ExistingPolicy::kTerminate;
  return Status::Error("enforce-existing must be 'keep' or 'terminate', not '" + std::string(text) +
                       "'");
}

const char* fail_mode_name(FailMode mode) { return mode == FailMode::kOpen ? "open" : "closed"; }

Result<Endpoint> Endpoint::parse(const std::string& host, uint16_t port) {
  Endpoint e;
  e.port = port;
  if (inet_pton(AF_INET, host.c_str(), e.addr.data()) == 1) {
    e.family = AF_INET;
    return e;
  }
  std::string h = host.size() > 2 && host.front() == '[' && host.back() == ']'
                      ? host.substr(1, host.size() - 2)
                      : host;
  if (inet_pton(AF_INET6, h.c_str(), e.addr.data()) == 1) {
    e.family = AF_INET6;
    return e;
  }
  return Status::Error("'" + host + "' is not an IPv4 or IPv6 address");
}

Result<Endpoint> Endpoint::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Endpoint e;
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    e.family = AF_INET;
    e.port = ntohs(in->sin_port);
    std::memcpy(e.addr.data(), &in->sin_addr, 4);
    return e;
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    e.family = AF_INET6;
    e.port = ntohs(in6->sin6_port);
    std::memcpy(e.addr.data(), &in6->sin6_addr, 16);
    return e;
  }
  return Status::Error("not an IPv4 or IPv6 socket address");
}

Endpoint Endpoint::from_sockaddr_unmapped(const sockaddr_storage& ss) {
  auto r = from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), sizeof(ss));
  if (!r.ok()) return Endpoint{};
  Endpoint e = *r;
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (e.family == AF_INET6 && std::memcmp(e.addr.data(), kMapped, 12) == 0) {
    Endpoint v4;
    v4.family = AF_INET;
    v4.port = e.port;
    std::memcpy(v4.addr.data(), e.addr.data() + 12, 4);
    return v4;
  }
  return e;
}

sockaddr_storage Endpoint::to_sockaddr(socklen_t* len) const {
  sockaddr_storage ss{};
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, addr.data(), 16);
    *len = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, addr.data(), 4);
    *len = sizeof(sockaddr_in);
  }
  return ss;
}

bool Endpoint::wildcard() const {
  for (uint8_t b : addr) {
    if (b) return false;
  }
  return true;
}

std::string Endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family == AF_INET6) {
    inet_ntop(AF_INET6, addr.data(), buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(port);
  }
  inet_ntop(AF_INET, addr.data(), buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(port);
}

std::vector<std::string> unix_path_aliases(const std::string& path) {
  std::vector<std::string> out{path};
  auto add = [&out](const std::string& p) {
    for (const std::string& have : out) {
      if (have == p) return;
    }
    out.push_back(p);
  };
  // The socket's directory with symlinks resolved; the file itself may not
  // exist yet (a server that is starting).
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    char real[PATH_MAX];
    if (realpath(path.substr(0, slash).c_str(), real)) add(std::string(real) + path.substr(slash));
  }
  // Debian: /var/run is a symlink to /run; clients use both spellings.
  char var_run[PATH_MAX];
  if (realpath("/var/run", var_run) && std::strcmp(var_run, "/run") == 0) {
    // By index over the paths found so far: add() appends (and may reallocate) as we go.
    const size_t found = out.size();
    for (size_t i = 0; i < found; ++i) {
      const std::string p = out[i];
      if (p.rfind("/run/", 0) == 0) add("/var" + p);
      if (p.rfind("/var/run/", 0) == 0) add(p.substr(4));
    }
  }
  return out;
}

}  // namespace dbwarden::steering
