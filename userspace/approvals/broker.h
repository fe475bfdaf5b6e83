// SPDX-License-Identifier: Apache-2.0
//
// The approvals broker (issue 14): statements a `require_approval` rule holds wait here
// for people to decide. The proxy thread submits a request and polls its state; the
// approvers' channels (the CLI's unix socket today; the HTTP API, web inbox and webhook
// later) list, approve and deny. Thread-safe: one mutex, held only for map updates.
//
// Rules it keeps, whatever the channel:
// - Nobody approves or denies their own request: an approver whose uid or login uid is the
//   requesting process's uid or login uid is refused.
// - Only the rule's approvers (the user names of its approver groups) may decide.
// - `approvals: N` needs N distinct approvers; one deny decides.
// - A request not decided within its rule's timeout expires (denied); a client that goes
//   away withdraws it; deny_all() ends every pending request (agent stop), and recover()
//   those a crashed agent left in the journal (journal.h) at the next start.
// - approve(..., for_ns) also grants just in time: the request's fingerprint x identity
//   runs without a request until the window ends (granted()).
// Every step is an Event for the audit trail (EventSink); the proxy's wake_fd() becomes
// readable when a request it waits on was decided, so its event loop never blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace dbwarden::approvals {

inline constexpr int64_t kUnknownId = -1;  // uid / login uid not known (TCP from elsewhere)

// Who asked: the held statement's connection, as a reviewer must see it.
struct Requester {
  std::string db_user, database, application_name, client_address, executable;
  uint32_t pid = 0;
  int64_t uid = kUnknownId;
  int64_t login_uid = kUnknownId;
  // The rest of the identity chain (empty / 0 when not known): the client's TCP port, the
  // local process's user and login user names (passwd), its comm, its systemd unit or
  // container.
  uint16_t client_port = 0;
  std::string user_name, login_user, command, unit, container;
};

struct RequestSpec {
  std::string rule;  // the rule that fired
  std::string text;  // the statement (masked by the caller where the policy says so)
  std::string operation;
  uint64_t fingerprint = 0;
  std::string identity;  // the JIT grant's identity key (db user, database, uid, login uid)
  std::vector<std::string> approvers;  // user names allowed to decide
  uint32_t approvals = 1;
  uint64_t timeout_ns = 300'000'000'000ull;
  Requester who;
  // For the reviewer: the tables the statement names, why the rule matched it, whether
  // this identity ran this fingerprint before (learn mode: 1 yes, 0 no, -1 not known), and
  // how often requests of this fingerprint x identity were approved before (the broker
  // fills it at submit, counted since the agent started).
  std::vector<std::string> tables;
  std::string why;
  int ran_before = -1;
  uint32_t approved_before = 0;
  // The blast radius (UPDATE, DELETE, MERGE, INSERT/REPLACE ... SELECT): the rows it would
  // touch as EXPLAIN estimates them (never executed), and how that was obtained; or why
  // there is no estimate (blast_unavailable, shown as "estimate unavailable: ..."). All
  // empty (blast_rows < 0): not a data-changing statement, nothing to show.
  int64_t blast_rows = -1;
  std::string blast_via;
  std::string blast_unavailable;
};

enum class State : uint8_t { kPending, kApproved, kDenied, kExpired, kWithdrawn };
std::string_view state_name(State s);

// The person deciding, as the channel authenticated them.
struct Approver {
  int64_t uid = kUnknownId;
  int64_t login_uid = kUnknownId;
  std::string name;     // mapped from the login uid (else uid): compared with the groups
  std::string channel;  // "cli"
};

// One audit record of the approval path.
struct Event {
  std::string kind;  // requested, approved, denied, expired, withdrawn
  uint64_t id = 0;
  std::string rule;
  std::string by;  // approver name ("" for expired/withdrawn/requested)
  std::string reason;
  std::string channel;
  uint64_t grant_ns = 0;                 // approved with --for: the window's length
  const RequestSpec* request = nullptr;  // the request as submitted
  State state = State::kPending;         // the request's state after this step
  uint64_t created_ns = 0;               // when it was submitted (the broker's clock)
  // "executed" (a released statement completed) and "grant_used" (a statement a JIT grant
  // let through completed; `id` names the request that granted it): its outcome as the
  // server gave it. rows < 0: not known.
  int64_t rows = -1;
  std::string status_code;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called with the broker's lock held: must not call back into the broker.
  virtual void on_approval_event(const Event& e) = 0;
  // A new request's statement text, before anyone sees it (reviewers, the trail): values
  // the policy calls sensitive are masked here (the agent's content scrub). Default: kept.
  virtual void scrub_text(std::string& /*text*/) const {}
};

struct RequestView {
  uint64_t id = 0;
  RequestSpec spec;
  State state = State::kPending;
  uint64_t created_ns = 0;
  uint64_t deadline_ns = 0;
  std::vector<std::string> approved_by;
  std::string decided_by;
  std::string reason;
};

// Where pending requests are written down so that a crash cannot forget them (journal.h).
class PendingJournal {
 public:
  using Done = std::function<void(const Status&)>;
  virtual ~PendingJournal() = default;
  // Writes a new request down; `done` is called once it is on disk, or with why it could
  // not be (the request is then denied: a request a crash could forget is not made). Called
  // without the broker's lock; `done` comes later from the journal's own thread, or before
  // add() returns, never with a lock of the journal's held.
  virtual void add(const RequestView& r, Done done) = 0;
  // The request was decided (or withdrawn, or expired). Called with the broker's lock held.
  virtual void remove(uint64_t id) = 0;
  // One above every request id it has seen: ids go on across restarts.
  virtual uint64_t next_id() const = 0;
  // Returns once every add() before it has had its `done` called.
  virtual void flush() = 0;
};

struct BrokerOptions {
  size_t max_pending = 1024;  // more is refused: the statement is denied at once
  size_t max_grants = 4096;
  PendingJournal* journal = nullptr;  // none: pending requests live in memory only
};

// Why an approver was refused (the broker's own rules; for the refusals' metric).
enum class Refusal : uint8_t {
  kNone,
  kUnknownRequest,
  kAlreadyDecided,
  kOwnRequest,
  kNotApprover,
  kAlreadyApproved,
  kNoReason,
};

class Broker {
 public:
  explicit Broker(EventSink* events, const BrokerOptions& options = {});
  ~Broker();  // after the journal's answers to every request it was given
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Proxy side. A new request's id; an error when too many are pending. With a journal the
  // request is written down by the journal's thread and the caller returns at once: it is
  // pending from now on (state()), but nobody sees it (list, show, approve, deny, the
  // `requested` event that the webhook and the trail get) until it is on disk; a journal
  // that cannot take it denies it ("approvals journal: ...", a `denied` record by dbwarden)
  // and wakes the proxy. A withdraw or a deny_all() meanwhile is recorded after the
  // `requested` record, once the request is on disk.
  Result<uint64_t> submit(RequestSpec spec, uint64_t now_ns);
  // The request's state and, once decided, the reason given; nullopt when unknown.
  std::optional<State> state(uint64_t id, std::string* reason) const;
  // The held client went away (or canceled its statement) before a decision: `reason` for
  // the record.
  void withdraw(uint64_t id, uint64_t now_ns, std::string reason = "the client went away");
  // The proxy has acted on a decided request: it is forgotten.
  void forget(uint64_t id);
  // Pending requests past their deadline expire. Returns the time of the next deadline
  // (UINT64_MAX: none), for the event loop's timeout.
  uint64_t expire(uint64_t now_ns);
  // A JIT grant covers this fingerprint x identity now.
  bool granted(uint64_t fingerprint, std::string_view identity, uint64_t now_ns) const;
  // The request whose approval granted it (the newest such grant), 0: none.
  uint64_t grant_of(uint64_t fingerprint, std::string_view identity, uint64_t now_ns) const;
  // Steps the proxy sees itself (executed, grant_used) go to the same trail, in order with
  // the broker's own.
  void record(const Event& e);
  // Readable (eventfd) after a decision; read() it to re-arm.
  int wake_fd() const { return wake_.get(); }

  // Approver side.
  // A refusal says why in `why` too (when given).
  Result<State> approve(uint64_t id, const Approver& who, std::string reason, uint64_t for_ns,
                        uint64_t now_ns, Refusal* why = nullptr);
  Result<State> deny(uint64_t id, const Approver& who, std::string reason, uint64_t now_ns,
                     Refusal* why = nullptr);
  std::vector<RequestView> list() const;  // pending requests, oldest first
  std::optional<RequestView> show(uint64_t id) const;
  // Every pending request denied with `reason` (agent stop: pending requests survive
  // nothing). By "dbwarden", channel "system".
  void deny_all(const std::string& reason, uint64_t now_ns);
  // The requests a previous run left pending (Journal::Open), each denied with `reason`
  // and recorded as such (by "dbwarden", channel "system"), then gone from the journal.
  void recover(const std::vector<RequestView>& left, const std::string& reason);
  size_t pending() const;

 private:
  struct Grant {
    uint64_t fingerprint;
    std::string identity;
    uint64_t until_ns;
    uint64_t request_id;
  };
  // The journal's answer to request `id`'s add (PendingJournal::Done).
  void journalled(uint64_t id, const Status& written);
  // The request, unless it is still being written down (then nobody may see it).
  RequestView* visible(uint64_t id);
  Status may_decide(const RequestView& r, const Approver& who, Refusal* why) const;
  void decide(RequestView& r, State s, std::string by, std::string reason,
              const std::string& channel, const char* kind, uint64_t grant_ns);
  void emit(const RequestView& r, const char* kind, const std::string& by,
            const std::string& reason, const std::string& channel, uint64_t grant_ns);
  void wake();

  EventSink* events_;
  BrokerOptions options_;
  UniqueFd wake_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, RequestView> requests_;  // pending, and decided until forgotten
  // Requests the journal is writing down, by id: a decision meanwhile (withdrawn, denied at
  // stop) waits here to be recorded after them, and one the proxy is done with goes then.
  struct Writing {
    const char* kind = nullptr;  // the decision's event, once decided
    std::string channel;
    bool erase = false;
  };
  std::map<uint64_t, Writing> writing_;
  std::vector<Grant> grants_;
  // Approved requests by fingerprint x identity (RequestSpec::approved_before); bounded.
  std::map<std::pair<uint64_t, std::string>, uint32_t> approved_counts_;
};

}  // namespace dbwarden::approvals
