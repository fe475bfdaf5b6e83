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
#pragma once

#include <sys/types.h>

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

class ThreadCredentials {
 public:
  // Takes `c` for this thread; restored when the object goes. A failure leaves the thread
  // as it was.
  static Result<ThreadCredentials> Assume(const ClientCredentials& c);
  ThreadCredentials(ThreadCredentials&& other) noexcept;
  ThreadCredentials& operator=(ThreadCredentials&&) = delete;
  ThreadCredentials(const ThreadCredentials&) = delete;
  ~ThreadCredentials();

 private:
  ThreadCredentials(uid_t uid, gid_t gid, std::vector<gid_t> groups)
      : uid_(uid), gid_(gid), groups_(std::move(groups)) {}
  uid_t uid_;
  gid_t gid_;
  std::vector<gid_t> groups_;
  bool active_ = true;
};

}  // namespace dbwarden::proxy
