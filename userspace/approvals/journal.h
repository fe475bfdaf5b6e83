// SPDX-License-Identifier: Apache-2.0
//
// The pending requests' journal (issue 14, item 5: "pending requests survive nothing"). A
// clean stop denies every pending request (Broker::deny_all); a crash (SIGKILL, power) runs
// no stop. So the broker writes each new request here before anyone can see it, and each
// decision when it is made, both fsynced; the next start reads what is left — the requests
// a dead agent held — and denies and records each one (Broker::recover).
//
// One file in the agent's state directory, JSON Lines, appended:
//   {"op":"add","id":7,"rule":"big-deletes","op_name":"DELETE","fp":"00ab...","who":{...}}
//   {"op":"done","id":7}
//   {"op":"next","id":8}        the first line after a compaction: ids go on from here
// The statement text is not kept (the trail's `requested` record has it, masked); the
// identity strings are cut at kMaxJournalField bytes, so an entry is bounded, and so is the
// file: at most max_pending entries live, and once the dead lines outnumber the live ones
// (past kCompactAfter) the file is rewritten with the live ones only (a new file, fsynced,
// renamed over the old one). A torn last line (a crash mid-write) is skipped: the request it
// would have added was never seen by anyone.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "approvals/broker.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace dbwarden::approvals {

inline constexpr size_t kMaxJournalField = 256;
inline constexpr size_t kCompactAfter = 256;  // dead lines tolerated before a rewrite

// What a journal's text holds: the requests added and not done (by id), one above the
// highest id it names, and how many lines did not parse.
struct JournalContents {
  std::map<uint64_t, RequestView> pending;
  uint64_t next_id = 1;
  size_t bad_lines = 0;
  size_t lines = 0;
};
JournalContents ParseJournal(std::string_view text);

// One request as its journal line (without the line end).
std::string JournalAddLine(const RequestView& r);

// All file I/O is on a writer thread of its own, a batch per sync (group commit): add()
// queues its line and returns; the writer calls its `done` once the batch is synced (the
// broker then makes the request visible: never before it is on disk), so the proxy's thread
// that submits never waits for the disk. remove() is not waited for by anyone (a lost "done"
// costs a needless deny record after a crash, never a lost request), so neither an approver
// nor the broker's lock waits for the disk at a decision.
class Journal final : public PendingJournal {
 public:
  // Opens (creating, mode 0600) the journal at `path`. `left` receives the requests the
  // previous run left pending, oldest first; they stay in the journal until
  // Broker::recover() has denied them.
  static Result<std::unique_ptr<Journal>> Open(const std::string& path,
                                               std::vector<RequestView>* left);
  ~Journal() override;  // writes and syncs what is queued, then stops
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  void add(const RequestView& r, Done done) override;
  void remove(uint64_t id) override;
  uint64_t next_id() const override;
  // Waits until everything queued so far is written and synced, and each add()'s `done` so
  // far has been called.
  void flush() override;

  const std::string& path() const { return path_; }
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }
  size_t live() const;

 private:
  struct Waiter {
    bool done = false;
    bool ok = false;
  };
  explicit Journal(std::string path) : path_(std::move(path)) {}
  void run();                                // the writer thread
  bool append(const std::string& bytes);     // write + fdatasync (writer thread)
  Status replace(const std::string& bytes);  // a new file, synced, renamed over the old one
  std::string compacted() const;             // the live lines, under mu_

  const std::string path_;
  UniqueFd fd_;  // the writer thread's (and Open's before it starts)
  mutable std::mutex mu_;
  std::condition_variable wake_, written_;
  std::string queued_;            // lines not written yet
  std::vector<Waiter*> waiters_;  // flush()es waiting for the next sync
  // The adds among queued_: their ids and whom to tell once they are synced (or not).
  std::vector<std::pair<uint64_t, Done>> added_;
  bool stop_ = false;
  std::string last_error_;                // why the last batch did not sync
  std::map<uint64_t, std::string> live_;  // pending ids -> their add lines
  uint64_t next_id_ = 1;
  size_t dead_ = 0;  // lines in the file that no longer describe a pending request
  std::atomic<uint64_t> write_errors_{0};  // read by the agent's main thread
  std::thread writer_;
};

}  // namespace dbwarden::approvals
