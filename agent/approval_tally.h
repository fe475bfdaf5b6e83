// SPDX-License-Identifier: Apache-2.0
//
// The approval path's numbers for /metrics (issue 14, item 7), kept from the broker's own
// events: the pending requests and when each was made, the decisions by outcome and how long
// each took. The broker calls from the proxy's and the approvers' threads; the agent's main
// thread takes a snapshot once a second for the exporter (metrics::ApprovalCounters).
//
// Also ApprovalFanOut: the broker has one event sink; the trail, this tally and the webhook
// each get every event through it.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "approvals/broker.h"
#include "metrics/exporter.h"

namespace dbwarden::agent {

class ApprovalTally final : public approvals::EventSink {
 public:
  // `clock`: the broker's clock (CLOCK_MONOTONIC ns), read at each decision.
  explicit ApprovalTally(std::function<uint64_t()> clock);
  void on_approval_event(const approvals::Event& e) override;
  // The totals so far, the pending requests at `now_ns` (the webhook's fields untouched).
  void snapshot(uint64_t now_ns, metrics::ApprovalCounters& out) const;

 private:
  std::function<uint64_t()> clock_;
  mutable std::mutex mu_;
  // Pending request id -> when it was made. As bounded as the broker's pending requests.
  std::unordered_map<uint64_t, uint64_t> pending_;
  metrics::ApprovalCounters totals_;
};

class ApprovalFanOut final : public approvals::EventSink {
 public:
  void add(approvals::EventSink* sink) {
    if (sink != nullptr) sinks_.push_back(sink);
  }
  void on_approval_event(const approvals::Event& e) override {
    for (approvals::EventSink* s : sinks_) s->on_approval_event(e);
  }
  // Each sink's masking of a new request's text (the trail's sink masks; the others keep).
  void scrub_text(std::string& text) const override {
    for (const approvals::EventSink* s : sinks_) s->scrub_text(text);
  }

 private:
  std::vector<approvals::EventSink*> sinks_;
};

}  // namespace dbwarden::agent
