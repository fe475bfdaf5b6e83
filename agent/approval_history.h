// SPDX-License-Identifier: Apache-2.0
//
// The recent decisions for the web inbox's history (issue 14): the broker forgets a request
// once the proxy has acted on it, so this sink, placed between the broker and the audit
// trail's sink, keeps the last decisions of every channel (approved, denied, expired,
// withdrawn; an approval of several counts too) in a bounded ring, and passes every event on.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "approvals/broker.h"

namespace dbwarden::agent {

struct HistoryEntry {
  int64_t unix_ns = 0;
  uint64_t id = 0;
  std::string kind, rule, by, reason, channel;
  std::string db_user, database, operation, statement;
  uint64_t grant_ns = 0;
};

class ApprovalHistory final : public approvals::EventSink {
 public:
  explicit ApprovalHistory(approvals::EventSink* next, size_t keep = 200)
      : next_(next), keep_(keep) {}
  void on_approval_event(const approvals::Event& e) override;
  // Passes the text on to the next sink, so that the trail's masking happens as without
  // this sink in between.
  void scrub_text(std::string& text) const override;
  std::vector<HistoryEntry> recent() const;  // newest first

 private:
  approvals::EventSink* next_;
  const size_t keep_;
  mutable std::mutex mu_;
  std::deque<HistoryEntry> ring_;
};

}  // namespace dbwarden::agent
