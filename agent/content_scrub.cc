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

size_t ContentScrub::scrub(std::string& text) const {
  if (!active() || text.empty()) return 0;
  std::shared_ptr<const policy::Policy> policy;
  masking::DetectorSet detectors;
  {
    std::lock_guard<std::mutex> hold(mu_);
    policy = policy_;
    detectors = detectors_;
  }
  if (policy == nullptr) return 0;
  const masking::Masker& masker = *policy->masker();
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
