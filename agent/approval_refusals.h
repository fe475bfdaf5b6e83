// SPDX-License-Identifier: Apache-2.0
//
// Every refused request of an approver (issue 14, items 3 and 5), whatever the channel: the
// CLI's socket ("cli"), the HTTP API ("api") and the web inbox ("web"). Each refusal is
//   - counted, by channel and reason, for dbwarden_approvals_refused_total{channel,reason};
//   - an approval record `refused` in the audit trail (the channel, the approver when known,
//     and what was asked and why it was refused), at most a burst of 50 and 10 a second over
//     all channels together: what a flood sends beyond that is counted, and the count is
//     carried in the next record, so that a flood cannot flood the trail.
// Thread-safe: the socket's and the HTTP server's threads call it.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "agent/approval_history.h"
#include "approvals/broker.h"
#include "metrics/exporter.h"

namespace dbwarden::agent {

// In the order of metrics::kApprovalRefusalReasonNames.
enum class RefusalReason : uint8_t {
  kNoToken,
  kWrongToken,
  kCrossSite,
  kCsrf,
  kBadRequest,
  kOwnRequest,
  kNotApprover,
  kUnknownRequest,
  kAlreadyDecided,
  kAlreadyApproved,
  kNoReason,
};
static_assert(static_cast<size_t>(RefusalReason::kNoReason) + 1 ==
              metrics::kApprovalRefusalReasons);

// The broker's own refusal as a reason (kNone and unknown values: kBadRequest).
RefusalReason reason_of(approvals::Refusal r);

class ApprovalRefusals {
 public:
  // `events`: where the records go (the history, which passes them on to the trail).
  // `history`: the recent decisions, to tell "already decided" from "no such request" once
  // the proxy has forgotten a decided request (may be null).
  ApprovalRefusals(const approvals::Broker& broker, approvals::EventSink& events,
                   const ApprovalHistory* history);

  // Counts a refusal and records it unless the rate bound says no. `channel` is "cli",
  // "api" or "web"; `by` the approver when known; `what` says what was asked and why it was
  // refused; `id` the request it named (0: none).
  void refuse(std::string_view channel, RefusalReason reason, uint64_t id, const std::string& by,
              std::string what, uint64_t now_ns);
  // Whether request `id`, no longer in the broker, was decided: its event kind, else "".
  std::string decided_as(uint64_t id) const;

  uint64_t unrecorded() const;  // refusals past the rate bound, all time
  void snapshot(metrics::ApprovalCounters& out) const;

 private:
  const approvals::Broker& broker_;
  approvals::EventSink& events_;
  const ApprovalHistory* history_;
  mutable std::mutex mu_;
  double bucket_;
  uint64_t bucket_ns_ = 0;
  uint64_t unrecorded_ = 0;
  uint64_t unrecorded_since_ = 0;  // ... since the last recorded one
  uint64_t counts_[metrics::kApprovalChannels][metrics::kApprovalRefusalReasons] = {};
};

}  // namespace dbwarden::agent
