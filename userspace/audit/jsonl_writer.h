// SPDX-License-Identifier: Apache-2.0
//
// Appends audit records to a JSON Lines file. Records are formatted into a
// memory buffer on the decode thread and written with write(2) in batches
// (when flush_bytes are buffered, or flush_interval has passed). Memory is
// bounded: when the file cannot be written (disk full, I/O error) at most
// max_buffered_bytes stay buffered for the next attempt and further records
// are dropped and counted, never held without bound.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "protocol/statement.h"

namespace dbwarden::audit {

struct WriterOptions {
  std::string path;
  size_t flush_bytes = 64 * 1024;
  std::chrono::milliseconds flush_interval{200};
  size_t max_buffered_bytes = 16 * 1024 * 1024;
};

class JsonlWriter : public StatementSink {
 public:
  // Creates missing parent directories (0700) and opens `path` for appending,
  // creating it 0600. The error names the path and the errno text.
  static Result<std::unique_ptr<JsonlWriter>> Open(const WriterOptions& options);
  ~JsonlWriter() override;  // flushes what it can, then closes
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  // Formats the record into the buffer; writes once flush_bytes are buffered.
  void on_statement(const Statement& statement) override;
  // Flushes when flush_bytes are buffered or flush_interval has passed since
  // the last flush. now_mono_ns is CLOCK_MONOTONIC. The agent calls this
  // periodically, also when no statements arrive.
  void flush_if_due(uint64_t now_mono_ns);
  // Writes everything buffered (retrying on EINTR and partial writes). On
  // failure the unwritten rest stays buffered and write_errors() counts it.
  Status flush();

  uint64_t records_written() const { return records_written_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t write_errors() const { return write_errors_; }
  uint64_t records_dropped() const { return records_dropped_; }
  size_t buffered_bytes() const { return buffer_.size(); }
  int64_t realtime_offset_ns() const { return realtime_offset_ns_; }
  const std::string& path() const { return options_.path; }

 private:
  JsonlWriter(WriterOptions options, int fd, int64_t realtime_offset_ns);

  WriterOptions options_;
  int fd_;
  int64_t realtime_offset_ns_;
  std::string buffer_;   // complete records only, each ending in '\n'
  std::string scratch_;  // one formatted record, reused to avoid allocation
  uint64_t last_flush_ns_ = 0;
  bool last_flush_failed_ = false;
  uint64_t records_written_ = 0;
  uint64_t buffered_records_ = 0;  // complete records in buffer_
  uint64_t bytes_written_ = 0;
  uint64_t write_errors_ = 0;
  uint64_t records_dropped_ = 0;
};

}  // namespace dbwarden::audit
