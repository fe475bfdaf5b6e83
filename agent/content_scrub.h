// SPDX-License-Identifier: Apache-2.0
//
// The audit trail is not a PII store (issue 13, item 4): statement text, bound values and
// error messages of every record, the metrics labels taken from them, and the agent's own
// log lines pass through the content detectors of the policy's mask rules before they are
// written; each item found becomes "[masked:<detector>]". The detectors are the union of
// every mask rule's, whoever the rule masks results for: a value a rule calls sensitive is
// sensitive in the trail for everyone. No policy, or one without mask detectors: nothing
// changes and nothing is scanned.
//
// Not covered: a literal compared with or assigned to a column a rule masks by name
// (`WHERE ssn = '...'` with `columns: ['*.*.ssn']`) is masked only when a detector
// recognises it; the analyser does not yet tie literals to columns.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "agent/log.h"
#include "masking/masking.h"
#include "protocol/statement.h"

namespace dbwarden::policy {
class Policy;
}  // namespace dbwarden::policy

namespace dbwarden::agent {

class ContentScrub final : public log::LineFilter {
 public:
  // The policy in force (null: none). Called at start and at every reload.
  void set(std::shared_ptr<const policy::Policy> policy);
  bool active() const { return active_.load(std::memory_order_acquire); }
  // Masks every detected item in `text` in place; returns how many. Thread-safe.
  size_t scrub(std::string& text) const;
  // The same over a record's text, bound values, error message and summary, with one look
  // at the policy in force for all of them.
  size_t scrub(Statement& statement) const;
  void filter(std::string& line) const override { (void)scrub(line); }
  uint64_t items() const { return items_.load(std::memory_order_relaxed); }

 private:
  // The policy in force and its detectors, or null.
  std::shared_ptr<const policy::Policy> current(masking::DetectorSet& detectors) const;
  size_t scrub_with(const masking::Masker& masker, masking::DetectorSet detectors,
                    std::string& text) const;

  mutable std::mutex mu_;
  std::shared_ptr<const policy::Policy> policy_;
  masking::DetectorSet detectors_ = 0;
  std::atomic<bool> active_{false};
  mutable std::atomic<uint64_t> items_{0};
};

}  // namespace dbwarden::agent
