// SPDX-License-Identifier: Apache-2.0
//
// Statements from the proxy's thread to the agent's pipeline thread. The pipeline (the
// analyser, the audit writer, the metrics) runs on one thread; the proxy decodes on its
// own. Each record travels with a snapshot of its connection (Statement::connection is
// only valid during the callback). Bounded: a full queue makes the proxy wait (its
// clients slow down) rather than lose a record; the waits are counted.
//
// The one copy of a statement the proxy's thread makes is the one into the queue, with the
// policy's decision written in there (proxy/annotator.h). Queue slots are recycled between
// the two threads, so that copy reuses the strings of a statement drained earlier instead
// of allocating them.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "protocol/statement.h"
#include "proxy/annotator.h"

namespace dbwarden::agent {

class RecordQueue final : public proxy::RecordSink {
 public:
  explicit RecordQueue(size_t max_records = 65536) : max_records_(max_records) {}

  // Any thread. Waits while the queue is full.
  void on_record(const Statement& statement, std::string_view rule, std::string_view action,
                 const proxy::MaskTally* masks) override;
  // The pipeline's thread: hands everything queued to `to`, in order. Returns the count.
  size_t drain(StatementSink& to);

  uint64_t full_waits() const;

 private:
  struct Item {
    Statement statement;
    std::shared_ptr<const ConnectionInfo> connection;
  };

  const std::shared_ptr<const ConnectionInfo>& snapshot(const ConnectionInfo& c);

  const size_t max_records_;
  mutable std::mutex mu_;
  std::condition_variable room_;
  // items_[0, count_) are queued; the slots beyond keep their capacity for reuse.
  std::vector<Item> items_;
  size_t count_ = 0;
  static constexpr size_t kKeptSlots = 4096;
  std::vector<Item> draining_;  // swapped out under the lock, handed on without it
  // Recent connection snapshots, reused while a connection and its names are unchanged:
  // statements of a few busy connections interleave, and each snapshot is a dozen strings.
  static constexpr size_t kSnapshots = 64;
  std::array<std::shared_ptr<const ConnectionInfo>, kSnapshots> snapshots_;
  size_t next_snapshot_ = 0;
  uint64_t full_waits_ = 0;
};

}  // namespace dbwarden::agent
