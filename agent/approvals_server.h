// SPDX-License-Identifier: Apache-2.0
//
// The approvers' local channel (issue 14): a unix socket, by default
// /run/dbwarden/approvals.sock, that `dbwarden approvals ...` talks to. The caller is who
// the kernel says (SO_PEERCRED): its uid, mapped to a user name through the passwd
// database (a uid without an entry is named by its number), and its process's audit login
// uid, so that nobody approves their own request through sudo either. The socket is
// mode 0600 (root only) or, with `approvals-group`, 0660 owned by that group: only root
// and that group's members can connect at all; the broker then checks the rule's
// approver groups.
//
// One request per connection, one line: VERB \t ID \t FOR_SECONDS \t REASON \n, VERB one of
// list, show, approve, deny. The reply's first line is "ok" or "error: <why>", then text
// for people. kApprovalsWorkers connections are served at once, each given two seconds to
// send its line: a slow or stuck caller holds one worker, never every approver.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/approval_refusals.h"
#include "approvals/broker.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace dbwarden::agent {

inline constexpr size_t kApprovalsWorkers = 4;

// One request line from `who`: the whole reply. A refused approve or deny (or a malformed
// request) goes to `refusals` (may be null): counted, and recorded in the trail.
std::string HandleApprovalsRequest(approvals::Broker& broker, const approvals::Approver& who,
                                   std::string_view line, uint64_t now_ns,
                                   ApprovalRefusals* refusals = nullptr);

// The caller of a connected unix socket, as the kernel and the passwd database name it.
Result<approvals::Approver> ApproverOfPeer(int fd);

class ApprovalsServer {
 public:
  // `group`: a unix group name, or "" (root only).
  static Result<std::unique_ptr<ApprovalsServer>> Start(const std::string& path,
                                                        const std::string& group,
                                                        approvals::Broker& broker,
                                                        ApprovalRefusals* refusals = nullptr);
  ~ApprovalsServer();
  ApprovalsServer(const ApprovalsServer&) = delete;
  ApprovalsServer& operator=(const ApprovalsServer&) = delete;

 private:
  ApprovalsServer(approvals::Broker& broker, ApprovalRefusals* refusals)
      : broker_(broker), refusals_(refusals) {}
  void run();
  void serve(int fd);

  approvals::Broker& broker_;
  ApprovalRefusals* refusals_;
  std::string path_;
  UniqueFd listen_, stop_;
  std::vector<std::thread> workers_;
};

}  // namespace dbwarden::agent
