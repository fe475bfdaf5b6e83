// SPDX-License-Identifier: Apache-2.0
//
// Statements from the proxy's thread to the agent's pipeline thread. The pipeline (the
// analyser, the audit writer, the metrics) runs on one thread; the proxy decodes on its
// own. Each record travels with a snapshot of its connection (Statement::connection is
// only valid during the callback). Bounded: a full queue makes the proxy wait (its
// clients slow down) rather than lose a record; the waits are counted.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include "protocol/statement.h"

namespace dbwarden::agent {

class RecordQueue final : public StatementSink {
 public:
  explicit RecordQueue(size_t max_records = 65536) : max_records_(max_records) {}

  // Any thread. Waits while the queue is full.
  void on_statement(const Statement& statement) override;
  // The pipeline's thread: hands everything queued to `to`, in order. Returns the count.
  size_t drain(StatementSink& to);

  uint64_t full_waits() const;

 private:
  struct Item {
    Statement statement;
    std::shared_ptr<const ConnectionInfo> connection;
  };

  const size_t max_records_;
  mutable std::mutex mu_;
  std::condition_variable room_;
  std::deque<Item> items_;
  std::deque<Item> draining_;  // swapped out under the lock, handed on without it
  // The last connection snapshot, reused while the connection and its names are unchanged
  // (consecutive statements mostly come from one connection).
  std::shared_ptr<const ConnectionInfo> last_;
  uint64_t full_waits_ = 0;
};

}  // namespace dbwarden::agent
