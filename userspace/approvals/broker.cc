// SPDX-License-Identifier: Apache-2.0
#include "approvals/broker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

namespace dbwarden::approvals {

std::string_view state_name(State s) {
  switch (s) {
    case State::kPending:
      return "pending";
    case State::kApproved:
      return "approved";
    case State::kDenied:
      return "denied";
    case State::kExpired:
      return "expired";
    case State::kWithdrawn:
      return "withdrawn";
  }
  return "?";
}

Broker::Broker(EventSink* events, const BrokerOptions& options)
    : events_(events), options_(options), wake_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (options_.journal != nullptr) next_id_ = std::max<uint64_t>(1, options_.journal->next_id());
}

void Broker::wake() {
  if (!wake_.valid()) return;
  const uint64_t one = 1;
  // A full counter (2^64-2 unread wakes) cannot happen; a failed write loses nothing
  // either, since the reader polls every request it holds when it wakes.
  [[maybe_unused]] ssize_t n = write(wake_.get(), &one, sizeof one);
}

void Broker::emit(const RequestView& r, const char* kind, const std::string& by,
                  const std::string& reason, const std::string& channel, uint64_t grant_ns) {
  if (events_ == nullptr) return;
  Event e;
  e.kind = kind;
  e.id = r.id;
  e.rule = r.spec.rule;
  e.by = by;
  e.reason = reason;
  e.channel = channel;
  e.grant_ns = grant_ns;
  e.request = &r.spec;
  e.state = r.state;
  e.created_ns = r.created_ns;
  events_->on_approval_event(e);
}

Result<uint64_t> Broker::submit(RequestSpec spec, uint64_t now_ns) {
  std::unique_lock<std::mutex> lock(mu_);
  size_t pending = 0;
  for (const auto& [id, r] : requests_) pending += r.state == State::kPending;
  if (pending >= options_.max_pending) {
    return Status::Error("too many approval requests pending (" +
                         std::to_string(options_.max_pending) + ")");
  }
  if (events_ != nullptr) {
    events_->scrub_text(spec.text);
    events_->scrub_text(spec.blast_unavailable);  // a server's error may quote values
  }
  RequestView r;
  r.id = next_id_++;
  r.created_ns = now_ns;
  r.deadline_ns = now_ns + spec.timeout_ns;
  r.spec = std::move(spec);
  const auto seen = approved_counts_.find({r.spec.fingerprint, r.spec.identity});
  r.spec.approved_before = seen != approved_counts_.end() ? seen->second : 0;
  if (options_.journal != nullptr) {
    // The request is on disk before anyone can see it, but the broker is not held while the
    // disk syncs: approvers, time-outs and other connections' requests go on meanwhile (its
    // id is taken, and nothing can name it before it is inserted below).
    lock.unlock();
    Status s = options_.journal->add(r);
    lock.lock();
    if (!s.ok()) return s;
  }
  auto [it, inserted] = requests_.emplace(r.id, std::move(r));
  emit(it->second, "requested", "", "", "", 0);
  return it->first;
}

std::optional<State> Broker::state(uint64_t id, std::string* reason) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return std::nullopt;
  if (reason != nullptr) *reason = it->second.reason;
  return it->second.state;
}

void Broker::decide(RequestView& r, State s, std::string by, std::string reason,
                    const std::string& channel, const char* kind, uint64_t grant_ns) {
  r.state = s;
  r.decided_by = std::move(by);
  r.reason = std::move(reason);
  if (options_.journal != nullptr) options_.journal->remove(r.id);
  emit(r, kind, r.decided_by, r.reason, channel, grant_ns);
  wake();
}

void Broker::withdraw(uint64_t id, uint64_t /*now_ns*/, std::string reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  if (it->second.state == State::kPending) {
    decide(it->second, State::kWithdrawn, "", std::move(reason), "", "withdrawn", 0);
  }
  requests_.erase(it);
}

void Broker::forget(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it != requests_.end() && it->second.state != State::kPending) requests_.erase(it);
}

uint64_t Broker::expire(uint64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t next = UINT64_MAX;
  for (auto& [id, r] : requests_) {
    if (r.state != State::kPending) continue;
    if (now_ns >= r.deadline_ns) {
      decide(r, State::kExpired, "",
             "no decision within the rule's timeout of " +
                 std::to_string(r.spec.timeout_ns / 1'000'000'000ull) + "s",
             "", "expired", 0);
    } else {
      next = std::min(next, r.deadline_ns);
    }
  }
  std::erase_if(grants_, [&](const Grant& g) { return g.until_ns <= now_ns; });
  return next;
}

bool Broker::granted(uint64_t fingerprint, std::string_view identity, uint64_t now_ns) const {
  return grant_of(fingerprint, identity, now_ns) != 0;
}

uint64_t Broker::grant_of(uint64_t fingerprint, std::string_view identity, uint64_t now_ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = std::find_if(grants_.rbegin(), grants_.rend(), [&](const Grant& g) {
    return g.fingerprint == fingerprint && g.identity == identity && now_ns < g.until_ns;
  });
  return it != grants_.rend() ? it->request_id : 0;
}

void Broker::record(const Event& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (events_ != nullptr) events_->on_approval_event(e);
}

Status Broker::may_decide(const RequestView& r, const Approver& who, Refusal* why) const {
  Refusal ignored = Refusal::kNone;
  Refusal& out = why != nullptr ? *why : ignored;
  if (r.state != State::kPending) {
    out = Refusal::kAlreadyDecided;
    return Status::Error("request " + std::to_string(r.id) + " is already " +
                         std::string(state_name(r.state)));
  }
  const Requester& q = r.spec.who;
  for (int64_t mine : {who.uid, who.login_uid}) {
    if (mine == kUnknownId) continue;
    if (mine == q.uid || mine == q.login_uid) {
      out = Refusal::kOwnRequest;
      return Status::Error("request " + std::to_string(r.id) +
                           " was made by you (uid or login uid " + std::to_string(mine) +
                           "): nobody decides their own request");
    }
  }
  const auto& names = r.spec.approvers;
  if (who.name.empty() || std::find(names.begin(), names.end(), who.name) == names.end()) {
    out = Refusal::kNotApprover;
    return Status::Error("user '" + who.name + "' is not an approver of rule '" + r.spec.rule +
                         "' (not in its approver groups)");
  }
  return Status::Ok();
}

Result<State> Broker::approve(uint64_t id, const Approver& who, std::string reason, uint64_t for_ns,
                              uint64_t now_ns, Refusal* why) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    if (why != nullptr) *why = Refusal::kUnknownRequest;
    return Status::Error("no request " + std::to_string(id));
  }
  RequestView& r = it->second;
  if (Status s = may_decide(r, who, why); !s.ok()) return s;
  if (std::find(r.approved_by.begin(), r.approved_by.end(), who.name) != r.approved_by.end()) {
    if (why != nullptr) *why = Refusal::kAlreadyApproved;
    return Status::Error("you already approved request " + std::to_string(id) + "; it needs " +
                         std::to_string(r.spec.approvals) + " distinct approvers");
  }
  r.approved_by.push_back(who.name);
  if (r.approved_by.size() < r.spec.approvals) {
    // One approval of several: recorded, the request stays pending.
    emit(r, "approved", who.name, reason, who.channel, 0);
    return State::kPending;
  }
  if (for_ns > 0) {
    if (grants_.size() >= options_.max_grants) grants_.erase(grants_.begin());
    grants_.push_back(Grant{r.spec.fingerprint, r.spec.identity, now_ns + for_ns, r.id});
  }
  if (approved_counts_.size() >= options_.max_grants) approved_counts_.clear();
  ++approved_counts_[{r.spec.fingerprint, r.spec.identity}];
  decide(r, State::kApproved, who.name, std::move(reason), who.channel, "approved", for_ns);
  return State::kApproved;
}

Result<State> Broker::deny(uint64_t id, const Approver& who, std::string reason,
                           uint64_t /*now_ns*/, Refusal* why) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    if (why != nullptr) *why = Refusal::kUnknownRequest;
    return Status::Error("no request " + std::to_string(id));
  }
  RequestView& r = it->second;
  if (Status s = may_decide(r, who, why); !s.ok()) return s;
  if (reason.empty()) {
    if (why != nullptr) *why = Refusal::kNoReason;
    return Status::Error("a deny needs a reason (--reason)");
  }
  decide(r, State::kDenied, who.name, std::move(reason), who.channel, "denied", 0);
  return State::kDenied;
}

std::vector<RequestView> Broker::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<RequestView> out;
  for (const auto& [id, r] : requests_) {
    if (r.state == State::kPending) out.push_back(r);
  }
  return out;
}

std::optional<RequestView> Broker::show(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return std::nullopt;
  return it->second;
}

void Broker::deny_all(const std::string& reason, uint64_t /*now_ns*/) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, r] : requests_) {
    if (r.state == State::kPending) {
      decide(r, State::kDenied, "dbwarden", reason, "system", "denied", 0);
    }
  }
}

void Broker::recover(const std::vector<RequestView>& left, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const RequestView& old : left) {
    RequestView r = old;
    next_id_ = std::max(next_id_, r.id + 1);
    r.state = State::kDenied;
    r.decided_by = "dbwarden";
    r.reason = reason;
    if (options_.journal != nullptr) options_.journal->remove(r.id);
    // Nobody waits on it any more (its client's connection died with the agent): recorded,
    // never kept.
    emit(r, "denied", r.decided_by, r.reason, "system", 0);
  }
}

size_t Broker::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [id, r] : requests_) n += r.state == State::kPending;
  return n;
}

}  // namespace dbwarden::approvals
