// SPDX-License-Identifier: Apache-2.0
#include "agent/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <string>

namespace dbwarden::agent {
namespace {

// A datagram socket standing in for systemd's notify socket.
struct FakeSystemd {
  int fd = -1;
  std::string path;
  FakeSystemd() {
    char dir[] = "/tmp/dbw-notify-XXXXXX";
    REQUIRE(mkdtemp(dir));
    path = std::string(dir) + "/notify";
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  }
  std::string receive() {
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  ~FakeSystemd() {
    close(fd);
    unlink(path.c_str());
    rmdir(path.substr(0, path.rfind('/')).c_str());
  }
};

TEST_CASE("ready, watchdog and stopping reach the notify socket", "[agent][systemd]") {
  FakeSystemd systemd;
  setenv("NOTIFY_SOCKET", systemd.path.c_str(), 1);
  setenv("WATCHDOG_USEC", "30000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  SystemdNotifier n = SystemdNotifier::FromEnvironment();
  REQUIRE(n.enabled());
  CHECK(n.watchdog_interval_ns() == 15'000'000'000ull);
  REQUIRE(n.ready("observing"));
  CHECK(systemd.receive() == "READY=1\nSTATUS=observing");
  REQUIRE(n.watchdog());
  CHECK(systemd.receive() == "WATCHDOG=1");
  REQUIRE(n.stopping());
  CHECK(systemd.receive() == "STOPPING=1");
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}

TEST_CASE("without systemd the notifier does nothing", "[agent][systemd]") {
  unsetenv("NOTIFY_SOCKET");
  setenv("WATCHDOG_USEC", "30000000", 1);
  setenv("WATCHDOG_PID", "1", 1);  // the watchdog is someone else's
  SystemdNotifier n = SystemdNotifier::FromEnvironment();
  CHECK_FALSE(n.enabled());
  CHECK(n.watchdog_interval_ns() == 0);
  CHECK_FALSE(n.ready("x"));
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}

}  // namespace
}  // namespace dbwarden::agent
