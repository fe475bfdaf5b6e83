// SPDX-License-Identifier: Apache-2.0
//
// Keeps the servers' sockets locked across server restarts. A restarted server
// makes a new socket with its own mode (PostgreSQL: bind() under umask 077,
// then chmod to unix_socket_permissions, then listen()); until it is locked
// again, another path to it reaches the server. inotify in the sockets'
// directories reports the new socket (IN_CREATE) and every later chmod
// (IN_ATTRIB) as they happen, so the lock follows within the time of one
// wake-up, not the agent's once-a-second tick. lock_unix() takes the mode it
// finds after the server's own chmod as the one to give back; its own chmod
// comes back as one more event, which finds the socket locked already.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "steering/steering.h"

namespace dbwarden::steering {

namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

constexpr uint32_t kEvents = IN_CREATE | IN_ATTRIB | IN_MOVED_TO;

std::pair<std::string, std::string> split(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

Result<std::unique_ptr<LockWatcher>> LockWatcher::Start(const std::vector<std::string>& paths,
                                                        Changed changed) {
  std::unique_ptr<LockWatcher> w(new LockWatcher());
  w->inotify_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  w->wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->inotify_ < 0 || w->wake_ < 0) {
    return Status::Error("cannot watch the servers' socket directories: " + errno_text(errno));
  }
  for (const std::string& p : paths) {
    const auto [dir, name] = split(p);
    const int wd = inotify_add_watch(w->inotify_, dir.c_str(), kEvents);
    if (wd < 0) {
      return Status::Error("cannot watch " + dir + " (inotify): " + errno_text(errno));
    }
    w->watched_.push_back({wd, dir, name, p});
  }
  w->thread_ = std::thread([raw = w.get(), changed = std::move(changed)] { raw->run(changed); });
  return w;
}

void LockWatcher::run(const Changed& changed) {
  alignas(inotify_event) char buf[4096];
  for (;;) {
    pollfd fds[2] = {{inotify_, POLLIN, 0}, {wake_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // stop
    const ssize_t n = read(inotify_, buf, sizeof(buf));
    if (n <= 0) continue;
    // The paths named in this batch, each locked once.
    std::map<std::string, bool> due;  // path -> made anew
    std::lock_guard<std::mutex> hold(mu_);
    for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->len == 0) continue;
      for (const Watched& w : watched_) {
        if (w.wd == ev->wd && w.name == ev->name) {
          due[w.path] |= (ev->mask & (IN_CREATE | IN_MOVED_TO)) != 0;
        }
      }
    }
    for (const auto& [path, created] : due) {
      ++events_;
      changed(path, created);
    }
  }
}

void LockWatcher::rewatch() {
  std::lock_guard<std::mutex> hold(mu_);
  for (Watched& w : watched_) {
    // The same directory keeps its watch descriptor; one made again gets a new one.
    const int wd = inotify_add_watch(inotify_, w.dir.c_str(), kEvents);
    if (wd >= 0) w.wd = wd;
  }
}

LockWatcher::~LockWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (write(wake_, &one, sizeof(one)) != sizeof(one)) std::abort();  // would never join
    thread_.join();
  }
  if (inotify_ >= 0) close(inotify_);
  if (wake_ >= 0) close(wake_);
}

}  // namespace dbwarden::steering
