// SPDX-License-Identifier: Apache-2.0
//
// The approvals broker's steps (approvals/broker.h) as audit records in the hash-chained
// trail. The broker calls from the proxy's and the approvals socket's threads; the audit
// writer is the pipeline thread's, so each event is formatted at once and queued (bounded,
// drops counted) until run.cc drains it into the writer, as the proxy's statements are.
//
//   {"time":"...","dbwarden.record_type":"approval","dbwarden.approval.event":"approved",
//    "dbwarden.approval.request_id":7,"dbwarden.policy.rule":"big-deletes",
//    "dbwarden.approval.by":"alice","dbwarden.approval.reason":"...",
//    "dbwarden.approval.channel":"cli","dbwarden.approval.grant_seconds":1800,
//    "db.user":"app","db.namespace":"shop","client.user.id":1000, ...}
// A "requested" record also carries the statement (db.query.text), its operation,
// fingerprint, the approvals needed and the timeout. The webhook (approval_webhook.h) adds
// "notified" and "notify_failed" records (channel "webhook", the reason says what happened).
//
// The statement's own record carries the request id in dbwarden.policy.action
// ("approved:7", "denied:7", "expired:7", "granted" under a JIT grant).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "agent/content_scrub.h"
#include "approvals/broker.h"
#include "audit/jsonl_writer.h"

namespace dbwarden::agent {

class ApprovalEvents final : public approvals::EventSink {
 public:
  explicit ApprovalEvents(size_t max_queued = 65536) : max_queued_(max_queued) {}
  void on_approval_event(const approvals::Event& e) override;
  // Requests' statement texts go through `scrub` (content_scrub.h; null: kept as they are).
  void set_scrub(const ContentScrub* scrub) { scrub_ = scrub; }
  void scrub_text(std::string& text) const override {
    if (scrub_ != nullptr) (void)scrub_->scrub(text);
  }
  // The pipeline's thread: everything queued, in order, into the audit trail.
  void drain(audit::JsonlWriter& to);
  uint64_t dropped() const;

  // One event as its record (without the line end); public for tests.
  static std::string format(const approvals::Event& e, int64_t unix_ns);

 private:
  const size_t max_queued_;
  const ContentScrub* scrub_ = nullptr;
  mutable std::mutex mu_;
  std::vector<std::string> queued_, draining_;
  uint64_t dropped_ = 0;
};

}  // namespace dbwarden::agent
