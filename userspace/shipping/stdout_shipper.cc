// SPDX-License-Identifier: Apache-2.0
#include "shipping/stdout_shipper.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "audit/record.h"

namespace dbwarden::shipping {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

StdoutShipper::StdoutShipper(const StdoutOptions& options, int64_t realtime_offset_ns)
    : options_(options), realtime_offset_ns_(realtime_offset_ns) {}

Result<std::unique_ptr<StdoutShipper>> StdoutShipper::Start(const StdoutOptions& options,
                                                            int64_t realtime_offset_ns) {
  if (options.fd < 0) return Status::Error("stdout shipper: invalid file descriptor");
  std::unique_ptr<StdoutShipper> s(new StdoutShipper(options, realtime_offset_ns));
  s->writer_ = std::thread([p = s.get()] { p->writer_main(); });
  return s;
}

StdoutShipper::~StdoutShipper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    stop_deadline_ = Clock::now() + options_.shutdown_timeout;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void StdoutShipper::on_statement(const Statement& statement) {
  thread_local std::string line;
  line.clear();
  audit::format_record(statement, realtime_offset_ns_, line);
  accepted_.fetch_add(1, std::memory_order_relaxed);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (buffer_.size() + writing_bytes_ + line.size() > options_.max_buffered_bytes) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    buffer_.append(line);
    ++buffer_records_;
    wake = buffer_.size() >= 64 * 1024;
  }
  if (wake) wake_.notify_one();
}

Status StdoutShipper::flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.notify_all();
  if (idle_.wait_for(lock, timeout, [this] { return buffer_.empty() && writing_bytes_ == 0; })) {
    return Status::Ok();
  }
  return Status::Error("stdout: " + std::to_string(buffer_.size() + writing_bytes_) +
                       " bytes not yet written" +
                       (last_error_.empty() ? std::string() : " (" + last_error_ + ")"));
}

StdoutShipper::Stats StdoutShipper::stats() const {
  Stats s;
  s.accepted = accepted_.load();
  s.written = written_.load();
  s.dropped = dropped_.load();
  s.write_errors = write_errors_.load();
  std::lock_guard<std::mutex> lock(mu_);
  s.buffered_bytes = buffer_.size() + writing_bytes_;
  return s;
}

bool StdoutShipper::write_out(const std::string& data, size_t* done) {
  while (*done < data.size()) {
    bool stopping;
    Clock::time_point deadline;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stop_;
      deadline = stop_deadline_;
    }
    if (stopping && Clock::now() >= deadline) return false;
    pollfd p{options_.fd, POLLOUT, 0};
    const int r = ::poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) return false;
    if (r <= 0) continue;
    if ((p.revents & (POLLERR | POLLNVAL)) != 0) {
      write_errors_.fetch_add(1);
      return false;
    }
    // At most PIPE_BUF: after POLLOUT on a pipe that much fits without blocking.
    const size_t n = std::min<size_t>(data.size() - *done, PIPE_BUF);
    const ssize_t w = ::write(options_.fd, data.data() + *done, n);
    if (w > 0) {
      *done += static_cast<size_t>(w);
    } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
      write_errors_.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu_);
      last_error_ = std::string("write to stdout failed: ") + std::strerror(errno);
      return false;
    }
  }
  return true;
}

void StdoutShipper::writer_main() {
  pthread_setname_np(pthread_self(), "dbw-ship-stdout");  // per-thread CPU in top -H
  sigset_t set;  // a closed reader must not kill the process
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::string batch;
  for (;;) {
    uint64_t records;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (buffer_.empty()) {
        idle_.notify_all();
        if (stop_) return;
        wake_.wait_for(lock, options_.flush_interval);
      }
      batch.clear();
      batch.swap(buffer_);
      records = buffer_records_;
      buffer_records_ = 0;
      writing_bytes_ = batch.size();
    }
    if (batch.empty()) continue;
    size_t done = 0;
    const bool ok = write_out(batch, &done);
    // Count whole lines written; a cut-off line (error or shutdown) is a drop.
    const auto lines = static_cast<uint64_t>(std::count(batch.begin(), batch.begin() + done, '\n'));
    written_.fetch_add(lines);
    if (!ok) dropped_.fetch_add(records - lines);
    std::lock_guard<std::mutex> lock(mu_);
    writing_bytes_ = 0;
  }
}

}  // namespace dbwarden::shipping
