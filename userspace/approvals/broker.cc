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

Broker::~Broker() {
  // The journal's thread calls back with each request it was given: done before this goes.
  if (options_.journal != nullptr) options_.journal->flush();
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
  const uint64_t id = r.id;
  if (options_.journal == nullptr) {
    auto [it, inserted] = requests_.emplace(id, std::move(r));
    emit(it->second, "requested", "", "", "", 0);
    return id;
  }
  // The request is on disk before anyone can see it (journalled()), but neither the caller
  // (the proxy's thread, with every other connection of it) nor the broker waits while the
  // disk syncs.
  writing_[id] = Writing{};
  requests_.emplace(id, r);
  lock.unlock();
  options_.journal->add(r, [this, id](const Status& written) { journalled(id, written); });
  return id;
}

void Broker::journalled(uint64_t id, const Status& written) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto w = writing_.find(id);
  if (w == writing_.end()) return;
  const Writing was = w->second;
  writing_.erase(w);
  const auto it = requests_.find(id);
  if (it == requests_.end()) return;
  RequestView& r = it->second;
  if (!written.ok()) {
    // Never seen by anyone, and a crash could forget it: denied at once.
    if (r.state == State::kPending) {
      r.state = State::kDenied;
      r.decided_by = "dbwarden";
      r.reason = written.message();
      emit(r, "denied", r.decided_by, r.reason, "system", 0);
      wake();
    } else if (was.kind != nullptr) {
      emit(r, was.kind, r.decided_by, r.reason, was.channel, 0);
    }
  } else {
    // Now it is made: the webhook, the trail and the approvers see it. A decision that came
    // while it was written goes on record right after it.
    const State now = r.state;
    r.state = State::kPending;
    emit(r, "requested", "", "", "", 0);
    r.state = now;
    if (now != State::kPending && was.kind != nullptr) {
      options_.journal->remove(id);
      emit(r, was.kind, r.decided_by, r.reason, was.channel, 0);
    }
  }
  if (was.erase) requests_.erase(it);
}

RequestView* Broker::visible(uint64_t id) {
  auto it = requests_.find(id);
  return it == requests_.end() || writing_.contains(id) ? nullptr : &it->second;
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
  if (const auto w = writing_.find(r.id); w != writing_.end()) {
    // Still being written down: recorded once it is (journalled()); the proxy acts now.
    w->second.kind = kind;
    w->second.channel = channel;
    wake();
    return;
  }
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
  if (const auto w = writing_.find(id); w != writing_.end()) {
    w->second.erase = true;  // its records first (journalled())
    return;
  }
  requests_.erase(it);
}

void Broker::forget(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second.state == State::kPending) return;
  if (const auto w = writing_.find(id); w != writing_.end()) {
    w->second.erase = true;
    return;
  }
  requests_.erase(it);
}

uint64_t Broker::expire(uint64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t next = UINT64_MAX;
  for (auto& [id, r] : requests_) {
    if (r.state != State::kPending || writing_.contains(id)) continue;  // its clock runs once seen
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
  RequestView* found = visible(id);
  if (found == nullptr) {
    if (why != nullptr) *why = Refusal::kUnknownRequest;
    return Status::Error("no request " + std::to_string(id));
  }
  RequestView& r = *found;
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
  RequestView* found = visible(id);
  if (found == nullptr) {
    if (why != nullptr) *why = Refusal::kUnknownRequest;
    return Status::Error("no request " + std::to_string(id));
  }
  RequestView& r = *found;
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
    if (r.state == State::kPending && !writing_.contains(id)) out.push_back(r);
  }
  return out;
}

std::optional<RequestView> Broker::show(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end() || writing_.contains(id)) return std::nullopt;
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
