// SPDX-License-Identifier: Apache-2.0
//
// Makes the audit trail durable off the writer thread: fdatasync of the log
// (every fsync_interval) and the state file (every state_interval), on a
// thread of its own.
//
// Why a thread: an fdatasync here takes tens of milliseconds, a rotation
// (sync the old file, the new one and the state file) hundreds. On the writer
// thread every such wait left the decode thread's batches queued in memory,
// and what a SIGKILL loses is exactly what is not written yet (issue 19: up
// to ~6,000 statements per kill right after a rotation). write(2) into the
// page cache is what a kill cannot undo; syncing only guards against power
// loss, and can lag behind without holding anything up.
//
// The state file names only records that are synced: the syncer takes the
// writer's latest position, syncs every file that holds records up to it
// (after a rotation also the renamed one), then writes the state.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "audit/chain.h"
#include "audit/chain_state.h"
#include "common/status.h"

namespace dbwarden::audit {

class TrailSyncer {
 public:
  struct Options {
    std::string state_path;
    std::chrono::milliseconds fsync_interval{200};  // 0: sync only for the state file
    std::chrono::milliseconds state_interval{1000};
  };
  // `fd` is the log (duplicated: the caller keeps its own); `head` is where
  // the chain stands now (already durable), `state_says_clean` what the state
  // file on disk says. The first state update (clean_stop false) follows at
  // once, so a crash from here on is told from a clean stop.
  TrailSyncer(Options options, int fd, ChainState head, bool state_says_clean);
  ~TrailSyncer();  // stop(false) unless stopped
  TrailSyncer(const TrailSyncer&) = delete;
  TrailSyncer& operator=(const TrailSyncer&) = delete;

  // Writer thread: records before next_seq are written (not yet synced).
  void written(uint64_t next_seq, const Digest& chain);
  // Writer thread: the log was renamed and `new_fd` (duplicated) continues it;
  // the renamed file is synced before any state names the new one's records.
  void rotated(int new_fd, int64_t file_started_ns);
  // Any thread: syncs what is written and updates the state file now; waits.
  Status sync_now();
  // The last sync and state update (clean_stop = clean); joins the thread.
  void stop(bool clean);

  uint64_t fsyncs() const { return fsyncs_.load(); }
  uint64_t errors() const { return errors_.load(); }

 private:
  void run();

  const Options options_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  int fd_ = -1;                   // the active log (a duplicate)
  std::vector<int> rotated_fds_;  // renamed logs still to sync (duplicates)
  ChainState target_;             // the writer's latest position
  bool dirty_ = false;            // written since the last sync
  uint64_t requested_ = 0, completed_ = 0;
  Status status_;  // of the last forced round
  bool stop_ = false, clean_ = false;

  // Syncer thread only.
  bool state_behind_ = true;  // synced records the state file does not name yet
  bool state_says_clean_;

  std::atomic<uint64_t> fsyncs_{0};
  std::atomic<uint64_t> errors_{0};
  std::thread thread_;
};

}  // namespace dbwarden::audit
