// SPDX-License-Identifier: Apache-2.0
#include "proxy/credentials.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

// This thread's capability sets (capget/capset with pid 0 act on the calling thread only).
struct ThreadCaps {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
};

bool get_caps(ThreadCaps* c) { return syscall(SYS_capget, &c->header, c->data) == 0; }
bool set_caps(ThreadCaps* c) { return syscall(SYS_capset, &c->header, c->data) == 0; }

// The directory part of a socket path: search permission on it (and so on every directory
// above it) is what connect() needs besides write permission on the socket.
std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

bool MayConnect(const ClientCredentials& c, const LockedSocket& s) {
  if (c.uid == 0) return true;  // root passes permission checks (CAP_DAC_OVERRIDE)
  if (c.uid == s.owner) return (s.mode & S_IWUSR) != 0;
  const bool member =
      c.gid == s.group || std::find(c.groups.begin(), c.groups.end(), s.group) != c.groups.end();
  if (member) return (s.mode & S_IWGRP) != 0;
  return (s.mode & S_IWOTH) != 0;
}

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
  return ThreadCredentials(uid, gid, std::move(groups), c);
}

int ThreadCredentials::connect_unix(int fd, const sockaddr_un& un,
                                    const LockedSocket* locked) const {
  const auto* sa = reinterpret_cast<const sockaddr*>(&un);
  if (locked == nullptr) return connect(fd, sa, sizeof(un));
  // As the client, with no capability in effect (a non-zero effective uid cleared them):
  // the kernel's own verdict on the directories, ACLs and all.
  const std::string path(un.sun_path, strnlen(un.sun_path, sizeof(un.sun_path)));
  if (syscall(SYS_faccessat2, AT_FDCWD, directory_of(path).c_str(), X_OK, AT_EACCESS) != 0) {
    return -1;
  }
  if (!MayConnect(client_, *locked)) {
    errno = EACCES;
    return -1;
  }
  int rc = -1;
  // EPERM: not in the permitted set.
  if (!run_with_dac_override([&] { rc = connect(fd, sa, sizeof(un)); })) return -1;
  return rc;
}

bool ThreadCredentials::run_with_dac_override(const std::function<void()>& f) const {
  ThreadCaps before;
  if (!get_caps(&before)) return false;
  ThreadCaps raised = before;
  raised.data[CAP_TO_INDEX(CAP_DAC_OVERRIDE)].effective |= CAP_TO_MASK(CAP_DAC_OVERRIDE);
  if (!set_caps(&raised)) return false;
  f();
  const int err = errno;
  // Dropped again at once; the uid's return to 0 would restore the whole set anyway.
  if (!set_caps(&before)) std::abort();
  errno = err;
  return true;
}

ThreadCredentials::ThreadCredentials(ThreadCredentials&& other) noexcept
    : uid_(other.uid_),
      gid_(other.gid_),
      groups_(std::move(other.groups_)),
      client_(std::move(other.client_)) {
  other.active_ = false;
}

ThreadCredentials::~ThreadCredentials() {
  if (active_) restore_or_die(uid_, gid_, groups_);
}

}  // namespace dbwarden::proxy
