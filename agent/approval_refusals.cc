// SPDX-License-Identifier: Apache-2.0
#include "agent/approval_refusals.h"

#include <algorithm>
#include <iterator>
#include <optional>

namespace dbwarden::agent {
namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000ull;
constexpr double kBucketSize = 50, kBucketPerSecond = 10;

size_t channel_index(std::string_view channel) {
  const auto* names = metrics::kApprovalChannelNames;
  const auto* end = names + metrics::kApprovalChannels;
  const auto* it = std::find(names, end, channel);
  // Unknown channels count as the API's: the set is fixed, a label never grows.
  return it != end ? static_cast<size_t>(it - names) : 1;
}

}  // namespace

RefusalReason reason_of(approvals::Refusal r) {
  switch (r) {
    case approvals::Refusal::kUnknownRequest:
      return RefusalReason::kUnknownRequest;
    case approvals::Refusal::kAlreadyDecided:
      return RefusalReason::kAlreadyDecided;
    case approvals::Refusal::kOwnRequest:
      return RefusalReason::kOwnRequest;
    case approvals::Refusal::kNotApprover:
      return RefusalReason::kNotApprover;
    case approvals::Refusal::kAlreadyApproved:
      return RefusalReason::kAlreadyApproved;
    case approvals::Refusal::kNoReason:
      return RefusalReason::kNoReason;
    case approvals::Refusal::kNone:
      break;
  }
  return RefusalReason::kBadRequest;
}

ApprovalRefusals::ApprovalRefusals(const approvals::Broker& broker, approvals::EventSink& events,
                                   const ApprovalHistory* history)
    : broker_(broker), events_(events), history_(history), bucket_(kBucketSize) {}

std::string ApprovalRefusals::decided_as(uint64_t id) const {
  if (history_ == nullptr) return "";
  for (const HistoryEntry& h : history_->recent()) {
    if (h.id == id) return h.kind;
  }
  return "";
}

void ApprovalRefusals::refuse(std::string_view channel, RefusalReason reason, uint64_t id,
                              const std::string& by, std::string what, uint64_t now_ns) {
  uint64_t carried = 0;
  bool record = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[channel_index(channel)][static_cast<size_t>(reason)];
    if (bucket_ns_ != 0 && now_ns > bucket_ns_) {
      bucket_ = std::min(kBucketSize, bucket_ + static_cast<double>(now_ns - bucket_ns_) /
                                                    kNsPerSecond * kBucketPerSecond);
    }
    bucket_ns_ = now_ns;
    if (bucket_ >= 1) {
      bucket_ -= 1;
      record = true;
      carried = unrecorded_since_;
      unrecorded_since_ = 0;
    } else {
      ++unrecorded_;
      ++unrecorded_since_;
    }
  }
  if (!record) return;
  approvals::Event e;
  e.kind = "refused";
  e.id = id;
  e.by = by;
  e.reason = std::move(what);
  if (carried) e.reason += " (and " + std::to_string(carried) + " refusal(s) before not recorded)";
  e.channel.assign(channel);
  std::optional<approvals::RequestView> view;
  if (id != 0) view = broker_.show(id);
  e.rule = view ? view->spec.rule : "";
  e.request = view ? &view->spec : nullptr;
  events_.on_approval_event(e);
}

uint64_t ApprovalRefusals::unrecorded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unrecorded_;
}

void ApprovalRefusals::snapshot(metrics::ApprovalCounters& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t c = 0; c < metrics::kApprovalChannels; ++c) {
    std::copy(std::begin(counts_[c]), std::end(counts_[c]), out.refused[c]);
  }
}

}  // namespace dbwarden::agent
