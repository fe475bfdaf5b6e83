// SPDX-License-Identifier: Apache-2.0
#include "audit/syncer.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace dbwarden::audit {

TrailSyncer::TrailSyncer(Options options, int fd, ChainState head, bool state_says_clean)
    : options_(std::move(options)),
      fd_(::dup(fd)),
      target_(std::move(head)),
      state_says_clean_(state_says_clean) {
  thread_ = std::thread([this] { run(); });
}

TrailSyncer::~TrailSyncer() {
  if (thread_.joinable()) stop(false);
}

void TrailSyncer::written(uint64_t next_seq, const Digest& chain) {
  std::lock_guard<std::mutex> lk(mu_);
  target_.next_seq = next_seq;
  target_.chain = chain;
  dirty_ = true;
}

void TrailSyncer::rotated(int new_fd, int64_t file_started_ns) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    rotated_fds_.push_back(fd_);
    fd_ = ::dup(new_fd);
    target_.file_started_ns = file_started_ns;
    dirty_ = true;
    ++requested_;  // the state names the new file at once
  }
  wake_.notify_one();
}

Status TrailSyncer::sync_now() {
  std::unique_lock<std::mutex> lk(mu_);
  const uint64_t target = ++requested_;
  wake_.notify_one();
  done_.wait(lk, [&] { return completed_ >= target || !thread_.joinable(); });
  return status_;
}

void TrailSyncer::stop(bool clean) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    clean_ = clean;
  }
  wake_.notify_one();
  thread_.join();
  for (int fd : rotated_fds_) ::close(fd);
  rotated_fds_.clear();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void TrailSyncer::run() {
  pthread_setname_np(pthread_self(), "dbw-audit-sync");
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_sync{}, last_state{};  // epoch: the first round is due at once
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    const auto sync_every =
        options_.fsync_interval.count() > 0 ? options_.fsync_interval : options_.state_interval;
    // Wake when a sync or a state update falls due, and at least every
    // sync_every to look (written() does not notify: it runs per write).
    auto next = Clock::now() + sync_every;
    if (dirty_) next = std::min(next, last_sync + sync_every);
    if (dirty_ || state_behind_ || state_says_clean_) {
      next = std::min(next, last_state + options_.state_interval);
    }
    wake_.wait_until(lk, next, [&] { return stop_ || requested_ > completed_; });
    const auto now = Clock::now();
    const bool stopping = stop_;
    const bool forced = stopping || requested_ > completed_;
    const uint64_t request = requested_;
    const bool want_clean = stopping && clean_;
    const bool sync_due = dirty_ && now - last_sync >= sync_every;
    const bool state_due = now - last_state >= options_.state_interval &&
                           (dirty_ || state_behind_ || state_says_clean_ != want_clean);
    if (!forced && !sync_due && !state_due) continue;
    std::vector<int> rotated = std::move(rotated_fds_);
    rotated_fds_.clear();
    const int fd = fd_;
    ChainState target = target_;
    const bool dirty = dirty_ || !rotated.empty();
    dirty_ = false;
    lk.unlock();

    // Every file that holds records up to `target`, oldest first.
    Status status;
    for (int rfd : rotated) {
      if (::fdatasync(rfd) != 0 && status.ok()) {
        status = Status::Error(std::string("audit log: cannot sync a rotated file: ") +
                               std::strerror(errno));
      }
      ::close(rfd);
    }
    if (dirty && status.ok()) {
      if (::fdatasync(fd) != 0) {
        status = Status::Error(std::string("audit log: cannot sync: ") + std::strerror(errno));
      } else {
        fsyncs_.fetch_add(1);
        state_behind_ = true;
      }
      last_sync = now;
    }
    // The state names only synced records.
    if (status.ok() && (forced || state_due) &&
        (state_behind_ || state_says_clean_ != want_clean)) {
      target.clean_stop = want_clean;
      status = write_state_file(options_.state_path, target);
      if (status.ok()) {
        state_behind_ = false;
        state_says_clean_ = want_clean;
      }
      last_state = now;
    }
    if (!status.ok()) errors_.fetch_add(1);

    lk.lock();
    if (!status.ok()) dirty_ = true;  // retried next round
    if (forced) {
      completed_ = request;
      status_ = status;
      done_.notify_all();
    }
    if (stopping) break;
  }
}

}  // namespace dbwarden::audit
