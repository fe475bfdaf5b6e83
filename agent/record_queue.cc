// SPDX-License-Identifier: Apache-2.0
#include "agent/record_queue.h"

namespace dbwarden::agent {

namespace {

bool same_connection(const ConnectionInfo& a, const ConnectionInfo& b) {
  return a.connection_id == b.connection_id && a.user == b.user && a.database == b.database &&
         a.application_name == b.application_name && a.db_system == b.db_system;
}

}  // namespace

void RecordQueue::on_statement(const Statement& statement) {
  std::unique_lock<std::mutex> lock(mu_);
  if (items_.size() >= max_records_) {
    ++full_waits_;
    room_.wait(lock, [this] { return items_.size() < max_records_; });
  }
  Item& item = items_.emplace_back();
  item.statement = statement;
  if (statement.connection != nullptr) {
    if (!last_ || !same_connection(*last_, *statement.connection)) {
      last_ = std::make_shared<const ConnectionInfo>(*statement.connection);
    }
    item.connection = last_;
  }
  item.statement.connection = item.connection.get();
}

size_t RecordQueue::drain(StatementSink& to) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (items_.empty()) return 0;
    draining_.swap(items_);
  }
  room_.notify_all();
  const size_t n = draining_.size();
  for (const Item& item : draining_) to.on_statement(item.statement);
  draining_.clear();
  return n;
}

uint64_t RecordQueue::full_waits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return full_waits_;
}

}  // namespace dbwarden::agent
