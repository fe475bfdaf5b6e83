// SPDX-License-Identifier: Apache-2.0
#include "agent/content_scrub.h"

#include <vector>

#include "policy/policy.h"

namespace dbwarden::agent {

void ContentScrub::set(std::shared_ptr<const policy::Policy> policy) {
  masking::DetectorSet detectors = 0;
  if (policy != nullptr && policy->masker() != nullptr) {
    std::vector<const policy::MaskRule*> rules;
    policy->all_mask_rules(rules);
    for (const policy::MaskRule* r : rules) detectors |= r->detectors;
  }
  std::lock_guard<std::mutex> hold(mu_);
  policy_ = detectors != 0 ? std::move(policy) : nullptr;
  detectors_ = detectors;
  active_.store(detectors != 0, std::memory_order_release);
}

std::shared_ptr<const policy::Policy> ContentScrub::current(masking::DetectorSet& detectors) const {
  std::lock_guard<std::mutex> hold(mu_);
  detectors = detectors_;
  return policy_;
}

size_t ContentScrub::scrub(std::string& text) const {
  if (!active() || text.empty()) return 0;
  masking::DetectorSet detectors = 0;
  const auto policy = current(detectors);
  return policy != nullptr ? scrub_with(*policy->masker(), detectors, text) : 0;
}

size_t ContentScrub::scrub(Statement& s) const {
  if (!active()) return 0;
  masking::DetectorSet detectors = 0;
  const auto policy = current(detectors);
  if (policy == nullptr) return 0;
  const masking::Masker& m = *policy->masker();
  size_t items = scrub_with(m, detectors, s.text) + scrub_with(m, detectors, s.error_message) +
                 scrub_with(m, detectors, s.summary);
  for (auto& p : s.parameters) {
    if (p) items += scrub_with(m, detectors, *p);
  }
  return items;
}

size_t ContentScrub::scrub_with(const masking::Masker& masker, masking::DetectorSet detectors,
                                std::string& text) const {
  if (text.empty()) return 0;
  thread_local std::vector<masking::Span> spans;
  spans.clear();
  if (masker.scan_text(text, detectors, spans) == 0) return 0;
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  for (const masking::Span& s : spans) {
    out.append(text, at, s.begin - at);
    out += "[masked:";
    out += masker.detector_name(s.detector);
    out += ']';
    at = s.end;
  }
  out.append(text, at, std::string::npos);
  text.swap(out);
  items_.fetch_add(spans.size(), std::memory_order_relaxed);
  return spans.size();
}

}  // namespace dbwarden::agent
