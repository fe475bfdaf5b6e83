// SPDX-License-Identifier: Apache-2.0
//
// The sd_notify protocol, hand-written because it is one datagram: tells
// systemd the agent is ready (Type=notify), pets the watchdog (WatchdogSec=)
// and says when it is stopping. A no-op when not started by systemd.
// https://www.freedesktop.org/software/systemd/man/sd_notify.html
#pragma once

#include <cstdint>
#include <string>

namespace dbwarden::agent {

class SystemdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment.
  static SystemdNotifier FromEnvironment();

  bool enabled() const { return !socket_path_.empty(); }
  // Half the watchdog timeout, as sd_watchdog_enabled() advises; 0: no watchdog.
  uint64_t watchdog_interval_ns() const { return watchdog_interval_ns_; }

  bool ready(const std::string& status);
  bool watchdog();
  bool stopping();
  // Sends `message` (e.g. "READY=1\nSTATUS=...") as one datagram.
  bool notify(const std::string& message);

 private:
  std::string socket_path_;  // "@..." is an abstract socket
  uint64_t watchdog_interval_ns_ = 0;
};

}  // namespace dbwarden::agent
