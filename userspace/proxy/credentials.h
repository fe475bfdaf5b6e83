// SPDX-License-Identifier: Apache-2.0
//
// Connecting upstream as the client. PostgreSQL's `peer` authentication and MariaDB's
// `unix_socket` plugin read the credentials of whoever called connect(2) on the server's
// unix socket (SO_PEERCRED: the effective uid and gid at connect), and the socket file's
// permissions are checked with the caller's fsuid and groups. So around connect() the
// proxy's thread takes the client's effective uid, gid and supplementary groups.
//
// Only the calling thread changes: these are the raw system calls, not glibc's wrappers,
// which change every thread of the process (POSIX semantics, via a signal to each thread).
// The real and saved uid stay 0, which is what lets the thread change back.
//
// A locked server socket (enforce mode narrows it to its owner, so that no path steering
// misses reaches the server: steering.h, "Locking") is reached with CAP_DAC_OVERRIDE, which
// stays in this thread's permitted set while its effective uid is the client's (the real and
// saved uids stay 0) and is raised in its effective set for that one connect() only.
// Before it, the client is checked as the kernel would have checked it without the lock:
// search permission on the socket's directories (by the kernel, as the client) and write
// permission by the socket's old bits. So the proxy opens nothing the server's own
// permissions kept shut; SO_PEERCRED still names the client.
#pragma once

#include <sys/types.h>
#include <sys/un.h>

#include <functional>
#include <vector>

#include "common/status.h"

namespace dbwarden::proxy {

struct ClientCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// Reads a connected unix socket's peer: SO_PEERCRED (pid, uid, gid) and SO_PEERGROUPS.
Status PeerCredentials(int fd, pid_t* pid, ClientCredentials* out);

// A server socket locked to its owner: its owner, group and permission bits before the lock.
struct LockedSocket {
  uid_t owner = 0;
  gid_t group = 0;
  mode_t mode = 0;
};

// Whether `c` may connect to a socket with these owner, group and bits (write permission,
// the kernel's owner / group / other order; ACLs are not read).
bool MayConnect(const ClientCredentials& c, const LockedSocket& s);

class ThreadCredentials {
 public:
  // Takes `c` for this thread; restored when the object goes. A failure leaves the thread
  // as it was.
  static Result<ThreadCredentials> Assume(const ClientCredentials& c);
  ThreadCredentials(ThreadCredentials&& other) noexcept;
  ThreadCredentials& operator=(ThreadCredentials&&) = delete;
  ThreadCredentials(const ThreadCredentials&) = delete;
  ~ThreadCredentials();

  // connect(2) of `fd` to `un` as the client. `locked` (null: not locked): the socket's
  // state before its lock, checked first (see the top). Returns what connect() returns, with
  // errno set: EACCES when the client may not, EPERM when the thread lacks CAP_DAC_OVERRIDE.
  int connect_unix(int fd, const sockaddr_un& un, const LockedSocket* locked) const;
  // Runs `f` with CAP_DAC_OVERRIDE in effect: the agent's own connect (a library's, which
  // cannot be handed a socket) to a server socket locked to its owner. No client check: the
  // agent connects for itself. False (errno EPERM) when the capability is not permitted.
  bool run_with_dac_override(const std::function<void()>& f) const;

 private:
  ThreadCredentials(uid_t uid, gid_t gid, std::vector<gid_t> groups, ClientCredentials client)
      : uid_(uid), gid_(gid), groups_(std::move(groups)), client_(std::move(client)) {}
  uid_t uid_;
  gid_t gid_;
  std::vector<gid_t> groups_;
  ClientCredentials client_;
  bool active_ = true;
};

}  // namespace dbwarden::proxy
