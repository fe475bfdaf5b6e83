// SPDX-License-Identifier: Apache-2.0
//
// Appends audit records to a tamper-evident, rotating JSON Lines file.
//
// Threads: the decode thread only formats records (format_record) into a
// batch and hands full batches to a bounded queue; it never waits for the
// disk. A writer thread gives each record its seq and chain fields (see
// chain.h; hashing has to follow file order, and costs ~1 us a record, so it
// stays off the decode thread), writes with write(2), rotates files and
// writes checkpoints. A syncer thread (syncer.h) fdatasyncs and keeps the
// state file, so a slow disk never holds up writing. A fourth zstd-compresses
// rotated files. While the disk is slow or full, queued plus unwritten bytes
// stay under about twice max_buffered_bytes (the limit counts queued bytes
// and unwritten chained bytes; chaining adds ~100 bytes a record): further
// records are dropped and counted
// (records_dropped), failed writes are counted (write_errors) and retried
// every flush_interval. A dropped record never gets a seq, so drops do not
// break the chain; checkpoints carry the running drop count.
//
// Formats (WriterOptions::format): kFrames (the agent's default, issue 16)
// seals a frame of records at a time, compressed on the writer thread as it
// goes (frame.h): `audit.jsonl.zst` reads with zstdcat, and nothing is
// compressed again at rotation. kJsonl chains every record and writes plain
// JSON Lines (chain.h), compressed after rotation.
//
// Files: the active file is `path`; a rotated one is renamed to
// `path.YYYYMMDDTHHMMSS.uuuuuuZ` (UTC) and then compressed to `... .zst`
// (kJsonl), or, already compressed, to `<path less .zst>.YYYYMMDDTHHMMSS.uuuuuuZ.zst`
// (kFrames).
// The first record of every file written is a checkpoint (reason "open" or
// "rotation"); the state file <state_dir>/<name>.state keeps the chain head.
// Rotation and the state file apply to regular files only (not /dev/null).
//
// Crashes: the syncer fdatasyncs every fsync_interval (the renamed file too,
// after a rotation); the state file names only synced records. After a crash
// the writer continues after the file's last complete record, cuts a torn
// tail and records the crash in a recovery record (recovery.h). What a
// killed agent loses is what it had not written yet: the current batch (at
// most flush_interval or flush_bytes of records) and batches queued for the
// writer thread (tests/integration/test_crash_restart.py measures it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "audit/chain.h"
#include "audit/chain_state.h"
#include "audit/compress.h"
#include "audit/frame.h"
#include "audit/recovery.h"
#include "audit/syncer.h"
#include "common/status.h"
#include "protocol/statement.h"

namespace dbwarden::audit {

enum class TrailFormat {
  kJsonl,   // plain JSON Lines, a chain field in every record (chain.h)
  kFrames,  // zstd frames sealed by a chain of links (frame.h)
};

struct WriterOptions {
  std::string path;
  // The library's default stays kJsonl for its callers' tests; the agent's
  // default (--audit-format) is kFrames.
  TrailFormat format = TrailFormat::kJsonl;
  // kFrames: the zstd level of each frame, and the longest a record waits in
  // an unsealed frame (a frame is also sealed at kFrameMaxBytes). Level 1
  // (bench_audit_floor --frames, bench/README.md): as fast as -1 (~494 vs ~502
  // ns a record, all steps), x43 on disk against x30; -5 saves ~60 ns for x21.
  int frame_level = 1;
  std::chrono::milliseconds frame_interval{100};
  size_t flush_bytes = 64 * 1024;                 // hand a batch to the writer thread at this size
  std::chrono::milliseconds flush_interval{200};  // ... or this long after the last one
  size_t max_buffered_bytes = 16 * 1024 * 1024;   // queued + unwritten bytes, at most
  // Tamper evidence.
  std::string hmac_key_file;  // empty: plain SHA-256 chain; the key is never logged
  std::string state_dir;      // empty: the log file's directory
  std::chrono::milliseconds state_interval{1000};  // at most one state update (fsync) per
  // fdatasync the trail this long after a write (by the writer thread, never
  // the decode thread): what a power loss can take. 0: never, except at
  // rotation and for the state file (which names synced records only).
  std::chrono::milliseconds fsync_interval{200};
  // Write the "open" checkpoint only once set_capture_drops() reported the
  // capture's drop counters (or the first statement or stop came first): the
  // first checkpoint after a restart then says what the kernel dropped while
  // no agent read the ring.
  bool defer_open_checkpoint = false;
  // Rotation; 0 disables each trigger.
  uint64_t rotate_bytes = 128ull * 1024 * 1024;
  std::chrono::seconds rotate_age{24 * 3600};
  bool compress_rotated = true;
  // Level 1 is both the fastest and, on audit JSON, as small as level 3 (14.6x vs
  // 12.7x on 30 MB of pgbench records: `zstd -b1` / `-b3`), and compression was
  // a third of the agent's CPU per statement at level 3 (bench/README.md).
  int zstd_level = 1;
  // Checkpoints besides those at open and rotation; 0 disables each trigger.
  uint64_t checkpoint_records = 100'000;
  // At the buffer bound, wait for the writer thread instead of dropping the
  // record: for offline work (`dbwarden replay`), where nothing is live to keep
  // up with and a dropped record would be a silently different result. Still
  // drops (counted) while writes are failing, so a dead disk cannot hang it.
  bool wait_when_full = false;
  std::chrono::seconds checkpoint_interval{300};
};

class JsonlWriter : public StatementSink {
 public:
  // Creates missing parent directories (0700), opens `path` for appending
  // (0600), reads the state file and the file's last record to continue the
  // chain, and starts the writer threads. The error names the path and why.
  static Result<std::unique_ptr<JsonlWriter>> Open(const WriterOptions& options);
  ~JsonlWriter() override;  // writes what it can, updates the state, joins threads
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  // Decode thread: formats the record into the current batch (dropping it
  // when the bound is reached); hands the batch over at flush_bytes.
  void on_statement(const Statement& statement) override;
  // Decode thread: a record of another kind (an approval step, approvals/broker.h), one
  // JSON object without its line end, starting {"time":...,"dbwarden.record_type":"...".
  // Bounded and chained as a statement's record is.
  void on_other_record(std::string_view json_object);
  // Decode thread: hands the batch over when flush_interval has passed since
  // the last hand-over. Never waits for the disk. now_mono_ns is
  // CLOCK_MONOTONIC.
  void flush_if_due(uint64_t now_mono_ns);
  // Hands the batch over and waits until the writer thread has tried to write
  // everything queued and to update the state file. On failure the unwritten
  // rest stays queued (retried later) and the error names the file and errno.
  // For shutdown and tests, not for the decode loop.
  Status flush();
  // Any thread: the capture's drop counters by reason, carried by every later
  // checkpoint (and releasing a deferred open checkpoint).
  void set_capture_drops(std::vector<std::pair<std::string, uint64_t>> drops);

  // Counters, readable from any thread.
  uint64_t records_written() const { return records_written_.load(); }  // statements on disk
  uint64_t bytes_written() const { return bytes_written_.load(); }      // all bytes, all files
  uint64_t write_errors() const {  // failed writes/syncs/renames
    return write_errors_.load() + (syncer_ ? syncer_->errors() : 0);
  }
  uint64_t records_dropped() const { return records_dropped_.load(); }
  uint64_t rotations() const { return rotations_.load(); }
  uint64_t compress_errors() const { return compress_errors_.load(); }
  uint64_t fsyncs() const { return syncer_ ? syncer_->fsyncs() : 0; }
  // Set by Open: the previous writer crashed (a recovery record was written)
  // and how many bytes of a torn tail were cut off.
  bool recovered() const { return recovered_; }
  uint64_t bytes_cut() const { return bytes_cut_; }
  size_t buffered_bytes() const {
    return batch_bytes_.load() + queued_bytes_.load() + out_pending_.load();
  }
  int64_t realtime_offset_ns() const { return realtime_offset_ns_; }
  const std::string& path() const { return options_.path; }
  const std::string& state_path() const { return state_path_; }

 private:
  // Formatted records as the decode thread hands them over, and where each ends (just past
  // its '\n'): the formatter knows the ends, so the writer need not look for them (a
  // memchr over every byte, ~120 instructions a record on the writer thread against ~10
  // on the decode thread for the push_back: bench/README.md, branch trail16c).
  struct Batch {
    std::string bytes;
    std::vector<size_t> ends;
    void clear() {
      bytes.clear();
      ends.clear();
    }
  };
  struct Entry {
    size_t end;           // offset in out_ just past the record's '\n' (or the frame's seal)
    uint32_t statements;  // statement records that end there
  };

  explicit JsonlWriter(WriterOptions options);
  Status start();  // Open's work after construction
  // start(): finds where the chain continues, cuts a torn tail after a crash.
  Status recover(const std::optional<ChainState>& state);
  void hand_off();
  // wait_when_full: the record at batch_[record_start..] waits until the
  // writer has room for it (true, the record is back in batch_) or writes are
  // failing (false, the record is no longer in batch_).
  bool wait_for_room(size_t record_start);
  // The record formatted at batch_[before, end): kept within the bound, else dropped and
  // counted.
  void keep_or_drop(size_t before);

  // Writer thread.
  void writer_main();
  void process_batch(const Batch& batch, uint64_t now_mono);
  void append_checkpoint(const char* reason, const std::string& prev_file, uint64_t now_mono);
  void append_open(uint64_t now_mono);  // the open checkpoint, then a pending recovery record
  // Ends a record body (a record without its closing brace) that starts at
  // `start` in record_buffer(): seq field (and chain field for kJsonl).
  void chain_record(size_t start, bool statement);
  std::string& record_buffer() { return frames() ? frame_ : out_; }
  bool frames() const { return options_.format == TrailFormat::kFrames; }
  // The active file's name less ".zst": rotated framed files are
  // <stem>.<stamp>.zst.
  std::string stem() const {
    return base_.ends_with(kZstdSuffix) ? base_.substr(0, base_.size() - kZstdSuffix.size())
                                        : base_;
  }
  // kFrames: compresses and seals the unsealed records into out_.
  void seal_frame();
  // Seals what is pending and writes everything out.
  bool drain(uint64_t now_mono) {
    seal_frame();
    return write_out(now_mono);
  }
  bool write_out(uint64_t now_mono);    // true when out_ is fully written
  void rotate(uint64_t now_mono);
  void timers(uint64_t now_mono);
  void compressor_main();

  WriterOptions options_;
  int64_t realtime_offset_ns_ = 0;
  std::string dir_, base_, state_path_;

  // Decode thread only.
  Batch batch_;
  uint64_t last_handoff_ns_ = 0;
  std::atomic<size_t> batch_bytes_{0};

  // Shared with the writer thread, under mu_.
  std::mutex mu_;
  std::condition_variable wake_;  // the writer waits on it
  std::condition_variable done_;  // flush() waits on it
  std::condition_variable room_;  // on_statement waits on it (wait_when_full)
  std::deque<Batch> queue_;
  std::vector<Batch> spare_;  // reusable batch buffers
  bool stop_ = false;
  uint64_t flush_requested_ = 0;
  uint64_t flush_completed_ = 0;
  Status flush_status_;
  std::atomic<size_t> queued_bytes_{0};  // bytes in queue_
  std::atomic<size_t> out_pending_{0};   // unwritten bytes in out_
  bool failing_now_ = false;             // writes are failing (wait_when_full gives up)
  std::vector<std::pair<std::string, uint64_t>> capture_drops_;
  bool capture_reported_ = false;

  // Writer thread only (after start()).
  int fd_ = -1;
  bool regular_file_ = false;
  std::unique_ptr<ChainHasher> hasher_;
  uint64_t next_seq_ = 0;
  Digest chain_{};
  bool clean_end_ = false;  // the last round wrote everything: the state says clean_stop
  bool open_pending_ = false;
  std::optional<RecoveryRecord> pending_recovery_;
  std::string cut_file_;  // pending_recovery_'s cut_file points here
  std::vector<std::pair<std::string, uint64_t>> checkpoint_drops_;  // copy for checkpoints
  uint64_t file_bytes_ = 0;
  uint64_t file_records_ = 0;
  uint64_t file_statements_ = 0;
  int64_t file_started_ns_ = 0;  // CLOCK_REALTIME
  uint64_t since_checkpoint_ = 0;
  uint64_t last_checkpoint_mono_ = 0;
  uint64_t rotate_retry_mono_ = 0;
  std::string out_;  // chained records (kJsonl) or sealed frames waiting for write(2)
  // kFrames: records not yet sealed, and the chain's head at the last seal.
  std::unique_ptr<FrameSealer> sealer_;
  std::string frame_;
  SeqFieldWriter seq_field_;
  uint64_t frame_first_seq_ = 0;
  uint32_t frame_records_ = 0;
  uint32_t frame_statements_ = 0;
  uint64_t frame_started_mono_ = 0;
  uint64_t sealed_seq_ = 0;  // next seq after the last sealed frame
  size_t out_written_ = 0;
  std::deque<Entry> entries_;
  bool failing_ = false;
  uint64_t retry_mono_ = 0;
  Status last_error_;

  // Compressor thread.
  std::mutex cmu_;
  std::condition_variable cwake_;
  std::deque<std::string> cjobs_;
  bool cstop_ = false;

  std::atomic<uint64_t> records_written_{0};
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> records_dropped_{0};
  std::atomic<uint64_t> rotations_{0};
  std::atomic<uint64_t> compress_errors_{0};
  bool recovered_ = false;
  uint64_t bytes_cut_ = 0;

  std::unique_ptr<TrailSyncer> syncer_;  // regular files only
  std::thread writer_;
  std::thread compressor_;
};

}  // namespace dbwarden::audit
