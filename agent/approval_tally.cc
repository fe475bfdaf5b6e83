// SPDX-License-Identifier: Apache-2.0
#include "agent/approval_tally.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace dbwarden::agent {
namespace {

// The outcome's index in metrics::kApprovalOutcomeNames; -1: not a decision.
int outcome(approvals::State s) {
  switch (s) {
    case approvals::State::kApproved:
      return 0;
    case approvals::State::kDenied:
      return 1;
    case approvals::State::kExpired:
      return 2;
    case approvals::State::kWithdrawn:
      return 3;
    case approvals::State::kPending:
      break;
  }
  return -1;
}

}  // namespace

ApprovalTally::ApprovalTally(std::function<uint64_t()> clock) : clock_(std::move(clock)) {}

void ApprovalTally::on_approval_event(const approvals::Event& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (e.kind == "requested") {
    ++totals_.requests;
    pending_[e.id] = e.created_ns;
    return;
  }
  const int i = outcome(e.state);
  // One approval of several (still pending), or a step that is no decision (notified).
  if (i < 0 || !pending_.erase(e.id)) return;
  const uint64_t now = clock_();
  const double seconds = now > e.created_ns ? static_cast<double>(now - e.created_ns) / 1e9 : 0;
  ++totals_.decisions[i];
  totals_.decision_seconds[i] += seconds;
  const auto* bounds = metrics::kApprovalDecisionBuckets;
  const size_t b = static_cast<size_t>(
      std::lower_bound(bounds, bounds + metrics::kApprovalDecisionBucketCount, seconds) - bounds);
  ++totals_.decision_buckets[i][b];
}

void ApprovalTally::snapshot(uint64_t now_ns, metrics::ApprovalCounters& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  out.pending = pending_.size();
  uint64_t oldest = now_ns;
  for (const auto& [id, created] : pending_) oldest = std::min(oldest, created);
  out.oldest_pending_seconds = static_cast<double>(now_ns - oldest) / 1e9;
  out.requests = totals_.requests;
  std::copy(std::begin(totals_.decisions), std::end(totals_.decisions), out.decisions);
  std::copy(std::begin(totals_.decision_seconds), std::end(totals_.decision_seconds),
            out.decision_seconds);
  for (size_t i = 0; i < metrics::kApprovalOutcomes; ++i) {
    std::copy(std::begin(totals_.decision_buckets[i]), std::end(totals_.decision_buckets[i]),
              out.decision_buckets[i]);
  }
}

}  // namespace dbwarden::agent
