// SPDX-License-Identifier: Apache-2.0
//
// A bounded on-disk FIFO of framed syslog messages, kept while the collector
// cannot take them, so that an outage (or an agent restart during one) loses
// nothing within max_bytes.
//
// Layout: `dir` (0700) holds append-only segment files (0600)
// `spool-<20-digit id>.log`; records are never rewritten, a segment is deleted
// once every record in it has been delivered. One record is
//
//   ENQUEUE_UNIX_MS SP FRAME        FRAME = LEN SP MSG (RFC 6587 octet counting)
//
// so a record is self-delimiting and its age is known after a restart (for
// the shipping lag). Open() resumes what a previous run left: a torn record
// at the end of a segment (crash mid-write) is cut off and counted; new
// records always go to a fresh segment.
//
// Reading is separate from delivery: read_next() moves a read cursor,
// commit(n) marks the first n read records delivered, rewind() sends the read
// cursor back to the last commit (after a connection drop), so undelivered
// records are read again. Only whole segments are deleted; the commit point
// inside the head segment lives in memory only, so records of a partly
// delivered segment are sent again after a restart (at-least-once).
//
// Not thread-safe: one sender thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dbwarden::shipping {

class Spool {
 public:
  enum class Append { kOk, kFull, kError };

  // Creates `dir` (0700) if missing and resumes its segments.
  static Result<std::unique_ptr<Spool>> Open(const std::string& dir, uint64_t max_bytes,
                                             uint64_t segment_bytes = 4u << 20);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // kFull when the record would take the spool past max_bytes (the record is
  // not written: the newest records are the ones refused, so what is kept
  // stays one gap-free prefix); kError on an I/O error (last_error()).
  //
  // already_read: the record was sent from memory before it came here (it is
  // in flight); it counts as read, so commit() and rewind() treat it like the
  // records read before it. Only valid when every other record has been read.
  Append append(std::string_view frame, int64_t enqueue_unix_ms, bool already_read = false);

  // The next unread record's frame; false at the end or on a read error.
  bool read_next(std::string& frame, int64_t& enqueue_unix_ms);
  void rewind();
  // The first `records` read and not yet committed records were delivered.
  void commit(uint64_t records);

  uint64_t bytes() const { return bytes_; }      // on disk, not yet committed
  uint64_t records() const { return records_; }  // not yet committed
  uint64_t unread_records() const { return records_ - read_uncommitted(); }
  int64_t oldest_unix_ms() const { return oldest_ms_; }    // of the oldest uncommitted; 0 if none
  uint64_t torn_records() const { return torn_records_; }  // cut off at Open
  const std::string& last_error() const { return last_error_; }
  const std::string& dir() const { return dir_; }

 private:
  struct Segment {
    uint64_t id = 0;
    uint64_t size = 0;
    uint64_t records = 0;
  };
  struct Cursor {
    size_t segment = 0;  // index into segments_
    uint64_t offset = 0;
  };

  Spool(std::string dir, uint64_t max_bytes, uint64_t segment_bytes);
  Status resume();
  std::string segment_path(uint64_t id) const;
  // Reads the record at `at`; its total length and fields. False if invalid.
  bool read_at(const Segment& seg, uint64_t offset, std::string* frame, int64_t* ms,
               uint64_t* length);
  uint64_t read_uncommitted() const { return read_sizes_.size(); }
  void drop_finished_segments();
  void refresh_oldest();

  std::string dir_;
  uint64_t max_bytes_;
  uint64_t segment_bytes_;
  std::deque<Segment> segments_;
  int write_fd_ = -1;  // open on segments_.back() when it is the write segment
  int read_fd_ = -1;
  uint64_t read_fd_id_ = 0;
  Cursor commit_;
  Cursor read_;
  std::deque<uint64_t> read_sizes_;  // lengths of read, uncommitted records
  uint64_t bytes_ = 0;
  uint64_t records_ = 0;
  int64_t oldest_ms_ = 0;
  uint64_t torn_records_ = 0;
  uint64_t next_id_ = 1;
  std::string last_error_;
};

}  // namespace dbwarden::shipping
