// SPDX-License-Identifier: Apache-2.0
#include "shipping/syslog_shipper.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "audit/record.h"

namespace dbwarden::shipping {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kBatchBytes = 64 * 1024;  // one write(2) at most
constexpr milliseconds kTick{10};          // write slice; in-flight confirmation re-check

int64_t realtime_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

SyslogShipper::SyslogShipper(const SyslogOptions& options, int64_t realtime_offset_ns)
    : options_(options), realtime_offset_ns_(realtime_offset_ns), backoff_(options.backoff_min) {
  header_.facility = options.facility;
  header_.app_name = options.app_name;
  header_.hostname = options.hostname;
  if (header_.hostname.empty()) {
    char name[HOST_NAME_MAX + 1] = {};
    if (gethostname(name, sizeof(name) - 1) == 0) header_.hostname = name;
  }
  header_.procid = std::to_string(getpid());
}

Result<std::unique_ptr<SyslogShipper>> SyslogShipper::Start(const SyslogOptions& options,
                                                            int64_t realtime_offset_ns) {
  if (options.address.empty()) return Status::Error("syslog: no collector address given");
  if (options.facility < 0 || options.facility > 23) {
    return Status::Error("syslog: facility " + std::to_string(options.facility) +
                         " is not in 0..23");
  }
  if (options.queue_max_bytes == 0) return Status::Error("syslog: queue_max_bytes is 0");
  std::unique_ptr<SyslogShipper> s(new SyslogShipper(options, realtime_offset_ns));
  if (!options.spool_dir.empty()) {
    auto spool =
        Spool::Open(options.spool_dir, options.spool_max_bytes, options.spool_segment_bytes);
    if (!spool.ok()) return spool.status();
    s->spool_ = std::move(spool.value());
    s->publish();
  }
  s->sender_ = std::thread([p = s.get()] { p->sender_main(); });
  return s;
}

SyslogShipper::~SyslogShipper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (sender_.joinable()) sender_.join();
  // The sender has stopped: unconfirmed records count as unsent again, and the
  // queue goes behind the spool's records so a later run sends them in order.
  conn_.reset();
  if (spool_) spool_->rewind();
  queue_sent_ = 0;
  spool_inflight_ = 0;
  spill();
  publish();
}

void SyslogShipper::on_statement(const Statement& statement) {
  thread_local std::string json;
  json.clear();
  audit::format_record(statement, realtime_offset_ns_, json);
  std::string frame;
  frame.reserve(json.size() + 128);
  append_syslog_frame(header_, static_cast<int64_t>(statement.start_ns) + realtime_offset_ns_, json,
                      frame);
  accepted_.fetch_add(1, std::memory_order_relaxed);
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_bytes_ + frame.size() > options_.queue_max_bytes) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    was_empty = queue_.empty();
    queue_bytes_ += frame.size();
    queue_.push_back(Item{std::move(frame), realtime_ms()});
  }
  if (was_empty) wake_.notify_one();
}

bool SyslogShipper::idle_locked() const { return queue_.empty() && spool_records_.load() == 0; }

Status SyslogShipper::flush(milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.notify_all();
  if (idle_.wait_for(lock, timeout, [this] { return idle_locked(); })) return Status::Ok();
  const uint64_t left = queue_.size() + spool_records_.load();
  return Status::Error("syslog: " + std::to_string(left) + " records not yet delivered to " +
                       options_.address +
                       (last_error_.empty() ? std::string() : " (" + last_error_ + ")"));
}

SyslogShipper::Stats SyslogShipper::stats() const {
  Stats s;
  s.accepted = accepted_.load();
  s.sent = sent_.load();
  s.resent = resent_.load();
  s.spooled = spooled_.load();
  s.dropped = dropped_.load();
  s.reconnects = reconnects_.load();
  s.connect_errors = connect_errors_.load();
  s.send_errors = send_errors_.load();
  s.spool_errors = spool_errors_.load();
  s.spool_bytes = spool_bytes_.load();
  s.spool_records = spool_records_.load();
  int64_t oldest = s.spool_records > 0 ? spool_oldest_ms_.load() : 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s.queue_bytes = queue_bytes_;
    s.queue_records = queue_.size();
    s.connected = connected_;
    if (oldest == 0 && !queue_.empty()) oldest = queue_.front().enqueue_ms;
  }
  if (oldest > 0) s.lag_ms = static_cast<uint64_t>(std::max<int64_t>(realtime_ms() - oldest, 0));
  return s;
}

void SyslogShipper::publish() {
  if (!spool_) return;
  spool_bytes_.store(spool_->bytes());
  spool_records_.store(spool_->records());
  spool_oldest_ms_.store(spool_->oldest_unix_ms());
}

void SyslogShipper::sender_main() {
  pthread_setname_np(pthread_self(), "dbw-ship-syslog");  // per-thread CPU in top -H
  // OpenSSL writes with write(2): a collector gone away must not kill the
  // process with SIGPIPE. Blocked on this thread only.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_) break;
      const bool can_send =
          conn_ != nullptr &&
          (!pending_.empty() ||
           (inflight_bytes_ < options_.in_flight_max_bytes &&
            ((spool_ && spool_->unread_records() > 0) || queue_sent_ < queue_.size())));
      const bool waiting_confirm = conn_ != nullptr && (spool_inflight_ > 0 || queue_sent_ > 0);
      const bool must_spill = conn_ == nullptr && spool_ && !queue_.empty();
      if (!can_send && !must_spill) {
        auto until = Clock::now() + milliseconds(500);
        if (conn_ == nullptr) until = std::max(next_connect_, Clock::now());
        if (waiting_confirm) until = Clock::now() + kTick;
        wake_.wait_until(lock, until);
        if (stop_) break;
      }
    }
    if (conn_ == nullptr && Clock::now() >= next_connect_) try_connect();
    if (conn_ != nullptr && conn_->peer_closed()) drop_connection();
    if (conn_ == nullptr) {
      if (spool_) spill();
    } else {
      confirm();
      bool over_half;
      {
        std::lock_guard<std::mutex> lock(mu_);
        over_half = spool_ && queue_bytes_ > options_.queue_max_bytes / 2;
      }
      if (over_half) spill();
      send_some();
    }
    publish();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (idle_locked()) idle_.notify_all();
    }
  }
}

void SyslogShipper::try_connect() {
  TlsClientOptions tls{options_.tls, options_.ca_file, options_.server_name};
  auto c = Connection::Open(options_.address, tls, options_.connect_timeout);
  if (!c.ok()) {
    connect_errors_.fetch_add(1);
    next_connect_ = Clock::now() + backoff_;
    backoff_ = std::min(backoff_ * 2, options_.backoff_max);
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = c.status().message();
    return;
  }
  conn_ = std::move(c.value());
  if (ever_connected_) reconnects_.fetch_add(1);
  ever_connected_ = true;
  backoff_ = options_.backoff_min;
  std::lock_guard<std::mutex> lock(mu_);
  connected_ = true;
}

void SyslogShipper::drop_connection() {
  send_errors_.fetch_add(1);
  conn_.reset();
  checkpoint_.reset();
  inflight_bytes_ = 0;
  pending_.clear();
  pending_off_ = 0;
  if (spool_) spool_->rewind();
  std::lock_guard<std::mutex> lock(mu_);
  // Everything written and unconfirmed is written again after the reconnect.
  resend_left_ = spool_inflight_ + queue_sent_;
  spool_inflight_ = 0;
  queue_sent_ = 0;
  connected_ = false;
  if (last_error_.empty()) last_error_ = "connection to " + options_.address + " lost";
  // Reconnect at once (the collector may only have restarted), then back off.
  next_connect_ = Clock::now();
}

void SyslogShipper::spill() {
  if (!spool_) {
    // No spool (or it failed): only the destructor gets here; what is left is lost.
    std::lock_guard<std::mutex> lock(mu_);
    dropped_.fetch_add(queue_.size());
    queue_.clear();
    queue_bytes_ = 0;
    queue_sent_ = 0;
    return;
  }
  std::vector<Item> batch;
  for (;;) {
    batch.clear();
    size_t in_flight;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // In-flight records (the queue's prefix) go first and stay in flight:
      // the spool has no unread records while any are (the sender reads the
      // spool dry before it sends from the queue), so they keep their place.
      in_flight = queue_sent_;
      size_t bytes = 0;
      while (!queue_.empty() && bytes < kBatchBytes &&
             (in_flight == 0 || batch.size() < in_flight)) {
        bytes += queue_.front().frame.size();
        queue_bytes_ -= queue_.front().frame.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (in_flight > 0) {
        queue_sent_ -= batch.size();
        spool_inflight_ += batch.size();
      }
    }
    if (batch.empty()) return;
    for (size_t i = 0; i < batch.size(); ++i) {
      const Item& item = batch[i];
      const Spool::Append r = spool_->append(item.frame, item.enqueue_ms, in_flight > 0);
      if (r == Spool::Append::kOk) {
        spooled_.fetch_add(1);
        if (in_flight > 0 && checkpoint_ && checkpoint_->queue_records > 0) {
          // The checkpoint covers the oldest in-flight records: now spool records.
          --checkpoint_->queue_records;
          ++checkpoint_->spool_records;
        }
        continue;
      }
      if (r == Spool::Append::kError) {
        spool_errors_.fetch_add(1);
        std::lock_guard<std::mutex> lock(mu_);
        last_error_ = spool_->last_error();
      }
      if (in_flight > 0) {
        // An in-flight record the spool cannot take goes back to the queue's
        // front with the rest of the batch, still in flight; stop spilling.
        std::lock_guard<std::mutex> lock(mu_);
        const size_t back = batch.size() - i;
        for (size_t j = batch.size(); j > i; --j) {
          queue_bytes_ += batch[j - 1].frame.size();
          queue_.push_front(std::move(batch[j - 1]));
        }
        queue_sent_ += back;
        spool_inflight_ -= back;
        publish();
        return;
      }
      dropped_.fetch_add(1);
    }
    publish();
  }
}

void SyslogShipper::send_some() {
  if (!pending_.empty()) {
    write_pending();
    return;
  }
  std::string batch;
  uint64_t from_spool = 0;
  size_t from_queue = 0;
  if (inflight_bytes_ >= options_.in_flight_max_bytes) return;  // wait for confirmation
  if (spool_ && spool_->unread_records() > 0) {
    std::string frame;
    int64_t ms = 0;
    while (batch.size() < kBatchBytes &&
           inflight_bytes_ + batch.size() < options_.in_flight_max_bytes &&
           spool_->read_next(frame, ms)) {
      batch.append(frame);
      ++from_spool;
    }
    if (from_spool == 0) {
      // The spool cannot be read (its files removed or damaged under us):
      // give it up rather than spin; what it held is counted as dropped.
      spool_errors_.fetch_add(1);
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_error_ = spool_->last_error();
      }
      drop_connection();
      dropped_.fetch_add(spool_->records());
      spool_.reset();
      spool_bytes_.store(0);
      spool_records_.store(0);
      return;
    }
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = queue_sent_; i < queue_.size() && batch.size() < kBatchBytes &&
                                 inflight_bytes_ + batch.size() < options_.in_flight_max_bytes;
         ++i) {
      batch.append(queue_[i].frame);
      ++from_queue;
    }
  }
  if (batch.empty()) return;
  const uint64_t n = from_spool + from_queue;
  const uint64_t again = std::min(resend_left_, n);
  resend_left_ -= again;
  resent_.fetch_add(again);
  inflight_bytes_ += batch.size();
  {
    std::lock_guard<std::mutex> lock(mu_);
    spool_inflight_ += from_spool;
    queue_sent_ += from_queue;
  }
  pending_ = std::move(batch);
  pending_off_ = 0;
  last_progress_ = Clock::now();
  write_pending();
}

void SyslogShipper::write_pending() {
  auto r = conn_->write_some(std::string_view(pending_).substr(pending_off_), kTick);
  if (!r.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_error_ = r.status().message();
    }
    drop_connection();  // the whole batch is resent
    return;
  }
  const auto now = Clock::now();
  if (r.value() > 0) {
    pending_off_ += r.value();
    last_progress_ = now;
    if (pending_off_ == pending_.size()) {
      pending_.clear();
      pending_off_ = 0;
      std::lock_guard<std::mutex> lock(mu_);
      last_error_.clear();
    }
  } else if (now - last_progress_ > options_.write_timeout) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_error_ = "syslog: " + options_.address + " took nothing for " +
                    std::to_string(options_.write_timeout.count()) + " ms";
    }
    drop_connection();
  }
}

void SyslogShipper::confirm() {
  uint64_t spool_n;
  size_t queue_n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    spool_n = spool_inflight_;
    queue_n = queue_sent_;
  }
  if (spool_n + queue_n == 0) return;
  const auto now = Clock::now();
  if (!checkpoint_) {
    if (pending_.empty() && conn_->unacked_bytes() == 0) {
      checkpoint_ = Checkpoint{now, spool_n, queue_n, inflight_bytes_};
    }
    return;
  }
  if (now - checkpoint_->acked_at < options_.confirm_delay) return;
  if (conn_->peer_closed()) {
    drop_connection();
    return;
  }
  const Checkpoint cp = *checkpoint_;
  checkpoint_.reset();
  inflight_bytes_ -= cp.bytes;
  if (cp.spool_records > 0 && spool_) spool_->commit(cp.spool_records);
  {
    std::lock_guard<std::mutex> lock(mu_);
    spool_inflight_ -= cp.spool_records;
    for (size_t i = 0; i < cp.queue_records; ++i) {
      queue_bytes_ -= queue_.front().frame.size();
      queue_.pop_front();
    }
    queue_sent_ -= cp.queue_records;
  }
  sent_.fetch_add(cp.spool_records + cp.queue_records);
  publish();
}

}  // namespace dbwarden::shipping
