// SPDX-License-Identifier: Apache-2.0
//
// The approvals webhook (issue 14, item 3): each new approval request is POSTed as JSON to
// a configured URL (`approvals-webhook-url`), with a Slack-compatible `text` field, so that
// approvers hear of it where they already are (a chat channel, an incident tool).
//
// The broker calls on_approval_event() from the proxy's thread with its lock held: it only
// formats the body and queues it (bounded: a full queue drops the notification, counted and
// recorded). One worker thread delivers with libcurl (connect and total timeouts, http and
// https only, no redirects), oldest due first, so a failing delivery never delays the proxy
// nor a later request's first attempt. A failure (no connection, timeout, an answer other
// than 2xx) is counted and retried after 1 s, 2 s, 4 s ... capped at 60 s, for at most
// `max_attempts` attempts and never past the request's own deadline; a 4xx other than 408,
// 425 and 429 is not retried (the receiver refuses this body: trying again cannot help).
// A request decided meanwhile is not notified any more.
//
// Every outcome is an approval record in the audit trail (through `records`):
// `notified` (dbwarden.approval.channel "webhook", the reason says which attempt got which
// HTTP status) or `notify_failed` (the reason says why it gave up).
//
// With `approvals-webhook-secret-file`, each POST carries
//   X-Dbwarden-Timestamp: <unix seconds>
//   X-Dbwarden-Signature: sha256=<hex HMAC-SHA-256 of "<timestamp>.<body>" under the secret>
// so the receiver can check that the agent sent it and refuse replays of old bodies.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "approvals/broker.h"
#include "common/status.h"

namespace dbwarden::agent {

struct WebhookOptions {
  std::string url;     // http:// or https://
  std::string secret;  // HMAC key; empty: requests are not signed
  std::string host;    // this host's name, shown in the message
  size_t max_queued = 256;
  uint32_t max_attempts = 8;
  uint64_t first_retry_ns = 1'000'000'000ull;
  uint64_t max_retry_ns = 60'000'000'000ull;
  long connect_timeout_ms = 5000;
  long timeout_ms = 10000;
};

// The longest statement text a notification carries (the trail has it whole).
inline constexpr size_t kWebhookMaxStatementBytes = 4096;

// How long to wait after `failed` (>= 1) failed attempts: first_retry_ns doubled per
// failure, at most max_retry_ns.
uint64_t webhook_retry_delay_ns(uint32_t failed, const WebhookOptions& o);

// The POST body for a "requested" event: the request's details and a `text` for Slack.
// `requested_unix_ns`: wall-clock time of the request.
std::string webhook_payload(const approvals::Event& e, std::string_view host,
                            int64_t requested_unix_ns);

// "sha256=" + hex of HMAC-SHA-256(secret, timestamp + "." + body).
std::string webhook_signature(std::string_view secret, std::string_view timestamp,
                              std::string_view body);

// The secret from `path`: its bytes without trailing line ends; 16 to 4096 of them.
Result<std::string> load_webhook_secret(const std::string& path);

// Totals since start, and the queue's level.
struct WebhookStats {
  uint64_t delivered = 0;
  uint64_t failures = 0;       // failed attempts, retried or not
  uint64_t gave_up = 0;        // notifications given up (attempts, deadline, refused)
  uint64_t dropped = 0;        // queue full: never attempted
  uint64_t decided_first = 0;  // the request was decided before a delivery succeeded
  uint64_t queued = 0;         // level: waiting for their (next) attempt
};

class ApprovalWebhook final : public approvals::EventSink {
 public:
  // `records` (may be null) receives the notified / notify_failed steps for the trail.
  ApprovalWebhook(WebhookOptions options, approvals::EventSink* records);
  ~ApprovalWebhook() override;  // stops the worker (an attempt in flight is aborted)
  ApprovalWebhook(const ApprovalWebhook&) = delete;
  ApprovalWebhook& operator=(const ApprovalWebhook&) = delete;

  // Checks the URL and starts the worker thread. Until then requests only queue.
  Status start();
  void on_approval_event(const approvals::Event& e) override;
  WebhookStats stats() const;

 private:
  struct Item {
    uint64_t id = 0;
    approvals::RequestSpec spec;  // for the records (its text left out: bounded memory)
    std::string body;
    uint32_t attempts = 0;
    uint64_t due_ns = 0;       // monotonic
    uint64_t deadline_ns = 0;  // the request's own (monotonic): no attempt after it
  };
  struct Attempt {
    bool ok = false;
    bool permanent = false;  // a refusal that retrying cannot change
    std::string what;        // "HTTP 503", "Timeout was reached", ...
  };
  void run();
  Attempt post(const std::string& body);
  // Done with `item` (delivered or not): counted and recorded.
  void finish(const Item& item, const char* kind, std::string reason);
  void record(const Item& item, const char* kind, std::string reason);

  const WebhookOptions options_;
  approvals::EventSink* const records_;
  void* curl_ = nullptr;  // the worker's easy handle (keeps the connection alive)

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Item> queue_;  // unordered; the worker takes the earliest due
  uint64_t in_flight_ = 0;   // the request id being attempted now (0: none)
  bool in_flight_decided_ = false;
  std::atomic<bool> stop_{false};  // read by curl's progress callback too
  WebhookStats stats_;
  std::thread thread_;
};

}  // namespace dbwarden::agent
