// SPDX-License-Identifier: Apache-2.0
//
// Pending approval requests survive nothing (issue 14, item 5), whatever the agent does
// next: a journal (approvals/journal.h) left by an enforcing agent that did not stop cleanly
// (SIGKILL, power loss) is handled at the next start in any mode. In enforce mode the
// enforcer's broker recovers it (enforcer.cc) and goes on with the journal; in observe mode,
// or `dbwarden run` without a policy, recover_pending_approvals() does: each request it
// holds is denied ("agent_restart", by dbwarden, channel system) and recorded through the
// approvals' audit events, and the journal is left with none pending (its ids kept, so the
// next enforcing run numbers past them).
#pragma once

#include <cstddef>
#include <string>

#include "agent/config.h"
#include "approvals/broker.h"
#include "common/status.h"

namespace dbwarden::agent {

// Where the journal of `config` lives: approvals-pending.journal in the agent's state
// directory (learn_state_dir).
std::string approvals_journal_path(const Config& config);

// Denies and records, through `events`, every request the journal at `path` still holds.
// How many; 0 when there is no journal (none is created).
Result<size_t> recover_pending_approvals(const std::string& path, approvals::EventSink* events);

}  // namespace dbwarden::agent
