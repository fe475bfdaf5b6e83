// SPDX-License-Identifier: Apache-2.0
//
// Enforce mode in the running agent: loads the policy, attaches steering
// (userspace/steering) for every address and unix socket the protected servers listen on,
// and starts the proxy (userspace/proxy) that those connections now reach. The observer
// keeps running beside it: it records connections steering could not move (open before
// enforcement began) and skips the proxy's own upstream connections, which the proxy
// records with the real client.
//
// Order matters for "never unprotected, never a loop": the proxy listens before any
// address is steered to it; its upstream connections are exempted from steering before
// they connect; on a clean stop the alive flag goes down first (the fail mode applies from
// then on) and the pins stay, so a restarted agent resumes steering. The servers' unix
// sockets are locked to their owners while enforcing (steering.h, "Locking"); fail mode
// open unlocks them on a clean stop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/config.h"
#include "approvals/broker.h"
#include "common/status.h"
#include "metrics/exporter.h"
#include "protocol/statement.h"
#include "proxy/proxy.h"

namespace dbwarden::policy {
class Policy;
}  // namespace dbwarden::policy

namespace dbwarden::agent {

// What the enforcer publishes, in the exporter's own shapes: one copy, no field-by-field relay.
struct EnforcerStats {
  metrics::EnforcementCounters enforcement;
  metrics::LearnCounters learn;  // zero until a policy with a `learn:` section opened the store
};

// Where learn mode keeps what it learned (learn/learn.h): the audit state directory, else
// the audit log's directory (where the chain head lives too).
std::string learn_state_dir(const Config& config);

// Observe mode after an enforce run: steering and the socket locks are pinned so that they
// outlive the agent (fail mode closed keeps refusing while it is down), but an agent that now
// starts in observe mode has no proxy to steer to. It removes them, as `dbwarden detach`
// does, so that clients reach the servers directly and the sockets get their modes back.
// Returns the number of steering pins removed (0: there were none).
Result<int> leave_enforcement(const std::string& steer_pin_dir);

class Enforcer {
 public:
  // `records` receives the proxy's statements on the proxy's thread (thread-safe sink).
  // `connectors` names local TCP clients from the capture's connect hook (may be null).
  // `approval_events` receives every approval step for the audit trail (may be null).
  static Result<std::unique_ptr<Enforcer>> Start(const Config& config, proxy::RecordSink& records,
                                                 proxy::ConnectorLookup connectors = nullptr,
                                                 approvals::EventSink* approval_events = nullptr);
  ~Enforcer();
  Enforcer(const Enforcer&) = delete;
  Enforcer& operator=(const Enforcer&) = delete;

  // SIGHUP: the policy file again. A file that does not load keeps the running policy.
  Status reload_policy(const std::string& path);
  // SIGHUP: the proxy's certificate and key (proxy-tls-cert-file/-key-file) again, for TLS
  // clients from now on (a renewed certificate needs no restart). A pair that does not load
  // keeps the running one and is counted. Without TLS configured: nothing to do.
  Status reload_tls();
  // Locks the servers' sockets again where a restarted server made a new one. A watcher
  // (inotify) does it the moment the socket appears; tick() calls this as a backstop.
  void relock();
  // Called about once a second: enforce-existing = terminate after its grace period.
  void tick(uint64_t now_ns);
  EnforcerStats stats() const;
  // The policy in force (the last one loaded without error).
  std::shared_ptr<const policy::Policy> policy() const;
  // The approval path's numbers at `now_ns` (CLOCK_MONOTONIC): requests, decisions, the
  // webhook. The trail's dropped approval records are the caller's (ApprovalEvents).
  void approval_counters(uint64_t now_ns, metrics::ApprovalCounters& out) const;
  // One line for the log: what is steered where.
  const std::string& summary() const { return summary_; }

 private:
  struct Impl;
  explicit Enforcer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string summary_;
};

}  // namespace dbwarden::agent
