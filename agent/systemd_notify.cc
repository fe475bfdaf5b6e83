// SPDX-License-Identifier: Apache-2.0
#include "agent/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace dbwarden::agent {

SystemdNotifier SystemdNotifier::FromEnvironment() {
  SystemdNotifier n;
  if (const char* s = std::getenv("NOTIFY_SOCKET"); s && (s[0] == '/' || s[0] == '@')) {
    n.socket_path_ = s;
  }
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  // WATCHDOG_PID, when set, names the process the watchdog is meant for.
  bool for_us = pid == nullptr || std::strtoul(pid, nullptr, 10) == static_cast<unsigned long>(getpid());
  if (usec && for_us) {
    uint64_t us = std::strtoull(usec, nullptr, 10);
    n.watchdog_interval_ns_ = us * 1000 / 2;
  }
  return n;
}

bool SystemdNotifier::notify(const std::string& message) {
  if (!enabled()) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                     reinterpret_cast<const sockaddr*>(&addr), len);
  close(fd);
  return n == static_cast<ssize_t>(message.size());
}

bool SystemdNotifier::ready(const std::string& status) {
  return notify("READY=1\nSTATUS=" + status);
}
bool SystemdNotifier::watchdog() { return notify("WATCHDOG=1"); }
bool SystemdNotifier::stopping() { return notify("STOPPING=1"); }

}  // namespace dbwarden::agent
