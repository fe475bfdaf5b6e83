// SPDX-License-Identifier: Apache-2.0
#include "agent/record_queue.h"

namespace dbwarden::agent {

namespace {

bool same_connection(const ConnectionInfo& a, const ConnectionInfo& b) {
  return a.connection_id == b.connection_id && a.user == b.user && a.database == b.database &&
         a.application_name == b.application_name && a.db_system == b.db_system;
}

}  // namespace

const std::shared_ptr<const ConnectionInfo>& RecordQueue::snapshot(const ConnectionInfo& c) {
  for (const auto& s : snapshots_) {
    if (s && same_connection(*s, c)) return s;
  }
  // A new connection, or its names changed: the oldest snapshot makes room. Records still
  // queued keep theirs (shared).
  auto& slot = snapshots_[next_snapshot_];
  next_snapshot_ = (next_snapshot_ + 1) % kSnapshots;
  for (auto& s : snapshots_) {
    if (s && s->connection_id == c.connection_id) s.reset();  // outdated names
  }
  slot = std::make_shared<const ConnectionInfo>(c);
  return slot;
}

void RecordQueue::on_record(const Statement& statement, std::string_view rule,
                            std::string_view action, const proxy::MaskTally* masks) {
  std::unique_lock<std::mutex> lock(mu_);
  if (count_ >= max_records_) {
    ++full_waits_;
    room_.wait(lock, [this] { return count_ < max_records_; });
  }
  if (count_ == items_.size()) items_.emplace_back();
  Item& item = items_[count_++];
  item.statement = statement;  // member-wise: the slot's strings keep their capacity
  item.statement.policy_rule.assign(rule);
  item.statement.policy_action.assign(action);
  if (masks != nullptr) masks->add_to(item.statement);
  item.connection.reset();
  if (statement.connection != nullptr) item.connection = snapshot(*statement.connection);
  item.statement.connection = item.connection.get();
}

size_t RecordQueue::drain(StatementSink& to) {
  size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_ == 0) return 0;
    draining_.swap(items_);
    n = count_;
    count_ = 0;
  }
  room_.notify_all();
  for (size_t i = 0; i < n; ++i) to.on_statement(draining_[i].statement);
  // Kept with their capacity for the proxy's thread (the next swap), up to what a busy
  // moment needs: a burst that filled the queue gives its memory back.
  for (size_t i = 0; i < n; ++i) draining_[i].connection.reset();
  if (draining_.size() > kKeptSlots) draining_.resize(kKeptSlots);
  return n;
}

uint64_t RecordQueue::full_waits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return full_waits_;
}

}  // namespace dbwarden::agent
