// SPDX-License-Identifier: Apache-2.0
//
// Writes one JSON audit record per line to stdout, for journald and container
// log collectors. on_statement appends to a bounded buffer; a writer thread
// writes it out. The writer polls before each write of at most PIPE_BUF bytes,
// so a full pipe never blocks it for long and shutdown is bounded; records
// that find the buffer full are dropped and counted. stdout stays blocking
// (its file description may be shared with other processes).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"
#include "protocol/statement.h"

namespace dbwarden::shipping {

struct StdoutOptions {
  int fd = 1;                                        // tests pass a pipe
  size_t max_buffered_bytes = 4u << 20;              // beyond: drop the record, count it
  std::chrono::milliseconds flush_interval{100};     // write at least this often
  std::chrono::milliseconds shutdown_timeout{2000};  // destructor's bound for the rest
};

class StdoutShipper : public StatementSink {
 public:
  static Result<std::unique_ptr<StdoutShipper>> Start(const StdoutOptions& options,
                                                      int64_t realtime_offset_ns);
  ~StdoutShipper() override;  // writes the rest within shutdown_timeout, then drops (counted)
  StdoutShipper(const StdoutShipper&) = delete;
  StdoutShipper& operator=(const StdoutShipper&) = delete;

  void on_statement(const Statement& statement) override;
  // Waits until everything buffered is written, or timeout.
  Status flush(std::chrono::milliseconds timeout);

  struct Stats {
    uint64_t accepted = 0;
    uint64_t written = 0;  // whole records written
    uint64_t dropped = 0;
    uint64_t write_errors = 0;
    uint64_t buffered_bytes = 0;
  };
  Stats stats() const;

 private:
  StdoutShipper(const StdoutOptions& options, int64_t realtime_offset_ns);
  void writer_main();
  // Writes `data`; false when stopping and the deadline passed or on error.
  bool write_out(const std::string& data, size_t* done);

  const StdoutOptions options_;
  const int64_t realtime_offset_ns_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::string buffer_;
  uint64_t buffer_records_ = 0;
  size_t writing_bytes_ = 0;
  bool stop_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};
  std::string last_error_;

  std::atomic<uint64_t> accepted_{0}, written_{0}, dropped_{0}, write_errors_{0};
  std::thread writer_;
};

}  // namespace dbwarden::shipping
