// SPDX-License-Identifier: Apache-2.0
#include "proxy/credentials.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace dbwarden::proxy {

namespace {

long set_groups(const std::vector<gid_t>& groups) {
  return syscall(SYS_setgroups, groups.size(), groups.empty() ? nullptr : groups.data());
}

// Back to what the thread had; a failure here would leave a thread running as a client,
// which must never serve another connection: stop the process.
void restore_or_die(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  if (syscall(SYS_setresuid, -1, uid, -1) != 0 || syscall(SYS_setresgid, -1, gid, -1) != 0 ||
      set_groups(groups) != 0) {
    std::abort();
  }
}

}  // namespace

Status PeerCredentials(int fd, pid_t* pid, ClientCredentials* out) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::Error(std::string("SO_PEERCRED: ") + std::strerror(errno));
  }
  *pid = cred.pid;
  out->uid = cred.uid;
  out->gid = cred.gid;
  out->groups.assign(64, 0);
  len = static_cast<socklen_t>(out->groups.size() * sizeof(gid_t));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, out->groups.data(), &len) != 0) {
    if (errno != ERANGE) return Status::Error(std::string("SO_PEERGROUPS: ") + std::strerror(errno));
    out->groups.assign(len / sizeof(gid_t), 0);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, out->groups.data(), &len) != 0) {
      return Status::Error(std::string("SO_PEERGROUPS: ") + std::strerror(errno));
    }
  }
  out->groups.resize(len / sizeof(gid_t));
  return Status::Ok();
}

Result<ThreadCredentials> ThreadCredentials::Assume(const ClientCredentials& c) {
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  std::vector<gid_t> groups(static_cast<size_t>(std::max(getgroups(0, nullptr), 0)));
  if (!groups.empty() && getgroups(static_cast<int>(groups.size()), groups.data()) < 0) {
    return Status::Error(std::string("getgroups: ") + std::strerror(errno));
  }
  // Groups and gid first: once the uid is no longer 0 the thread may not change them.
  if (set_groups(c.groups) != 0) {
    return Status::Error(std::string("setgroups: ") + std::strerror(errno));
  }
  if (syscall(SYS_setresgid, -1, c.gid, -1) != 0) {
    const int e = errno;
    restore_or_die(uid, gid, groups);
    return Status::Error(std::string("setresgid: ") + std::strerror(e));
  }
  if (syscall(SYS_setresuid, -1, c.uid, -1) != 0) {
    const int e = errno;
    restore_or_die(uid, gid, groups);
    return Status::Error(std::string("setresuid: ") + std::strerror(e));
  }
  return ThreadCredentials(uid, gid, std::move(groups));
}

ThreadCredentials::ThreadCredentials(ThreadCredentials&& other) noexcept
    : uid_(other.uid_), gid_(other.gid_), groups_(std::move(other.groups_)) {
  other.active_ = false;
}

ThreadCredentials::~ThreadCredentials() {
  if (active_) restore_or_die(uid_, gid_, groups_);
}

}  // namespace dbwarden::proxy
