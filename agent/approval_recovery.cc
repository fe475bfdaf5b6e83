// SPDX-License-Identifier: Apache-2.0
#include "agent/approval_recovery.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "agent/enforcer.h"
#include "approvals/journal.h"

namespace dbwarden::agent {

std::string approvals_journal_path(const Config& config) {
  return learn_state_dir(config) + "/approvals-pending.journal";
}

Result<size_t> recover_pending_approvals(const std::string& path, approvals::EventSink* events) {
  if (access(path.c_str(), F_OK) != 0) {
    if (errno == ENOENT) return size_t{0};
    return Status::Error("approvals journal " + path + ": " + std::strerror(errno));
  }
  std::vector<approvals::RequestView> left;
  auto journal = approvals::Journal::Open(path, &left);
  if (!journal.ok()) return journal.status();
  if (!left.empty()) {
    approvals::BrokerOptions o;
    o.journal = journal.value().get();
    approvals::Broker broker(events, o);
    broker.recover(left, "agent_restart");
  }
  // The journal goes last: its "done" lines are written and synced as it closes.
  journal.value().reset();
  return left.size();
}

}  // namespace dbwarden::agent
