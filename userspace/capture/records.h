// SPDX-License-Identifier: Apache-2.0
//
// Ring-buffer records: validation and dispatch to an EventHandler, and a file
// format to record and replay them. Live capture and replay share dispatch(),
// so a recorded session decodes exactly as it did live, without root.
//
// Recording file: the 8-byte magic "DBWREC01", then per record a little-endian
// u32 byte count followed by the record exactly as the kernel wrote it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "common/status.h"
#include "dbwarden.h"

namespace dbwarden::capture {

class EventHandler {
 public:
  virtual ~EventHandler() = default;
  virtual void on_conn_open(const dbw_conn_event& event) = 0;
  virtual void on_conn_close(const dbw_conn_event& event) = 0;
  // `event.captured` bytes of `event.data` are valid; `length - captured` bytes
  // at the end were not copied.
  virtual void on_data(const dbw_data_event& event) = 0;
  virtual void on_proc_exit(const dbw_proc_event& event) = 0;
  // The kernel found a server on its own (accept on a watched port or path by
  // an untracked process, or a server's new unix socket path).
  virtual void on_server(const dbw_server_event& event) { (void)event; }
};

// Validates one record and hands it to `handler`. Returns false (and calls
// nothing) for a record that is too short or inconsistent.
bool dispatch(const void* data, size_t size, EventHandler& handler);

class RecordingWriter {
 public:
  static Result<std::unique_ptr<RecordingWriter>> Create(const std::string& path);
  ~RecordingWriter();
  RecordingWriter(const RecordingWriter&) = delete;
  RecordingWriter& operator=(const RecordingWriter&) = delete;
  void write(const void* data, size_t size);
  Status close();

 private:
  explicit RecordingWriter(std::FILE* f) : file_(f) {}
  std::FILE* file_;
  bool failed_ = false;
};

struct ReplayStats {
  uint64_t records = 0;
  uint64_t malformed = 0;
};

// Feeds every record of a recording to `handler`, in order.
Result<ReplayStats> replay(const std::string& path, EventHandler& handler);

}  // namespace dbwarden::capture
