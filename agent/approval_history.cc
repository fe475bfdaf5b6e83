// SPDX-License-Identifier: Apache-2.0
#include "agent/approval_history.h"

#include <time.h>

namespace dbwarden::agent {
void ApprovalHistory::scrub_text(std::string& text) const {
  if (next_ != nullptr) next_->scrub_text(text);
}

void ApprovalHistory::on_approval_event(const approvals::Event& e) {
  if (next_ != nullptr) next_->on_approval_event(e);
  if (e.kind != "approved" && e.kind != "denied" && e.kind != "expired" && e.kind != "withdrawn") {
    return;
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  HistoryEntry h;
  h.unix_ns = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  h.id = e.id;
  h.kind = e.kind;
  h.rule = e.rule;
  h.by = e.by;
  h.reason = e.reason;
  h.channel = e.channel;
  h.grant_ns = e.grant_ns;
  if (e.request != nullptr) {
    h.db_user = e.request->who.db_user;
    h.database = e.request->who.database;
    h.operation = e.request->operation;
    h.statement = e.request->text.substr(0, 2000);
  }
  std::lock_guard<std::mutex> lock(mu_);
  ring_.push_back(std::move(h));
  while (ring_.size() > keep_) ring_.pop_front();
}

std::vector<HistoryEntry> ApprovalHistory::recent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {ring_.rbegin(), ring_.rend()};
}

}  // namespace dbwarden::agent
