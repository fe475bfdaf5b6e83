// SPDX-License-Identifier: Apache-2.0
#include "audit/jsonl_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include "audit/chain_state.h"
#include "audit/compress.h"
#include "audit/record.h"

namespace dbwarden::audit {
namespace {

// Rotated names: `<name>.YYYYMMDDTHHMMSS.uuuuuuZ`.
constexpr size_t kStampBytes = 23;
// The writer thread writes chained records at this size even while more
// batches wait: 256 KiB stays in L2 for write(2)'s copy. Replaying a recording
// (the queue holding up to max_buffered_bytes) with one write per queue swap
// instead grew out_ to ~16 MiB: ~12,000 page faults a replay and a source
// buffer that had left the cache by the time write(2) copied it.
constexpr size_t kWriteChunkBytes = 256 * 1024;

Status errno_error(const char* what, const std::string& path, int err) {
  return Status::Error(std::string("audit log: cannot ") + what + " " + path + ": " +
                       std::strerror(err));
}

// mkdir -p; new directories get 0700 because audit records contain query text.
Status create_directories(const std::string& dir) {
  if (dir.empty() || dir == "/" || dir == ".") return Status::Ok();
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return errno_error("create directory", prefix, errno);
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errno_error("access directory", dir, errno);
  if (!S_ISDIR(st.st_mode)) return errno_error("use directory", dir, ENOTDIR);
  return Status::Ok();
}

int64_t sample_realtime_offset_ns() {
  timespec real{}, mono{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  return (static_cast<int64_t>(real.tv_sec) - mono.tv_sec) * 1'000'000'000 +
         (static_cast<int64_t>(real.tv_nsec) - mono.tv_nsec);
}

uint64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}
uint64_t mono_now() { return clock_ns(CLOCK_MONOTONIC); }
int64_t real_now() { return static_cast<int64_t>(clock_ns(CLOCK_REALTIME)); }

uint64_t to_ns(std::chrono::nanoseconds d) { return static_cast<uint64_t>(d.count()); }

std::string rotation_stamp(int64_t unix_ns) {
  const time_t secs = static_cast<time_t>(unix_ns / 1'000'000'000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = strftime(buf, sizeof(buf), "%Y%m%dT%H%M%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06lldZ",
                static_cast<long long>(unix_ns % 1'000'000'000 / 1000));
  return buf;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Complete lines in the file: the records it already holds, for the
// checkpoints' file_records. Bounded by the rotation size.
uint64_t count_lines(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  uint64_t lines = 0;
  std::unique_ptr<char[]> buf(new char[1 << 16]);
  while (true) {
    const ssize_t n = ::read(fd, buf.get(), 1 << 16);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    lines += static_cast<uint64_t>(std::count(buf.get(), buf.get() + n, '\n'));
  }
  ::close(fd);
  return lines;
}

}  // namespace

Result<std::unique_ptr<JsonlWriter>> JsonlWriter::Open(const WriterOptions& options) {
  if (options.path.empty()) return Status::Error("audit log: no path configured");
  std::unique_ptr<JsonlWriter> w(new JsonlWriter(options));
  if (Status s = w->start(); !s.ok()) return s;
  return w;
}

JsonlWriter::JsonlWriter(WriterOptions options)
    : options_(std::move(options)), realtime_offset_ns_(sample_realtime_offset_ns()) {
  const size_t slash = options_.path.find_last_of('/');
  dir_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : options_.path.substr(0, slash));
  base_ = slash == std::string::npos ? options_.path : options_.path.substr(slash + 1);
  batch_.bytes.reserve(std::min(options_.flush_bytes + 4096, options_.max_buffered_bytes));
}

Status JsonlWriter::start() {
  if (base_.empty()) return Status::Error("audit log: " + options_.path + " names no file");
  if (Status s = create_directories(dir_); !s.ok()) return s;
  std::string key;
  if (!options_.hmac_key_file.empty()) {
    auto k = load_hmac_key(options_.hmac_key_file);
    if (!k.ok()) return k.status();
    key = std::move(k.value());
  }
  auto hasher = ChainHasher::Create(key);
  if (!hasher.ok()) return hasher.status();
  hasher_ = std::move(hasher.value());
  if (frames()) {
    auto sealer = FrameSealer::Create(options_.frame_level);
    if (!sealer.ok()) return sealer.status();
    sealer_ = std::move(sealer.value());
    frame_.reserve(kFrameMaxBytes + 64 * 1024);
  }

  // Read-write: recovery reads the tail back and may cut a torn record off.
  fd_ = ::open(options_.path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return errno_error("open", options_.path, errno);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return errno_error("stat", options_.path, errno);
  regular_file_ = S_ISREG(st.st_mode);
  if (regular_file_ && (st.st_mode & 0077) != 0) (void)::fchmod(fd_, 0600);
  file_bytes_ = regular_file_ ? static_cast<uint64_t>(st.st_size) : 0;

  file_started_ns_ = real_now();
  if (regular_file_) {
    const std::string sdir = options_.state_dir.empty() ? dir_ : options_.state_dir;
    if (Status s = create_directories(sdir); !s.ok()) return s;
    state_path_ = sdir + "/" + base_ + ".state";
    std::optional<ChainState> state;
    if (exists(state_path_)) {
      auto r = read_state_file(state_path_);
      if (!r.ok()) return r.status();
      state = std::move(r.value());
    }
    if (Status s = recover(state); !s.ok()) return s;
    if (state && state->file == base_ && file_bytes_ > 0 && state->file_started_ns > 0) {
      file_started_ns_ = state->file_started_ns;
    }
    TrailSyncer::Options so;
    so.state_path = state_path_;
    so.fsync_interval = options_.fsync_interval;
    so.state_interval = options_.state_interval;
    ChainState head;
    head.file = base_;
    head.next_seq = next_seq_;
    head.chain = chain_;
    head.file_started_ns = file_started_ns_;
    syncer_ = std::make_unique<TrailSyncer>(so, fd_, head, state && state->clean_stop);
  }
  const uint64_t now = mono_now();
  last_handoff_ns_ = now;
  open_pending_ = true;
  if (!options_.defer_open_checkpoint) append_open(now);

  // Rotated files left uncompressed by an earlier run.
  if (regular_file_ && options_.compress_rotated && !frames()) {
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.size() == base_.size() + 1 + kStampBytes &&
            name.compare(0, base_.size(), base_) == 0 && name[base_.size()] == '.' &&
            name.back() == 'Z') {
          cjobs_.push_back(dir_ + "/" + name);
        }
      }
      ::closedir(d);
    }
  }
  writer_ = std::thread([this] { writer_main(); });
  compressor_ = std::thread([this] { compressor_main(); });
  return Status::Ok();
}

Status JsonlWriter::recover(const std::optional<ChainState>& state) {
  // Continue the chain: the state file says where it ended when last synced;
  // the file's last complete record may be newer (written after the last
  // state update, which lags by design). The file wins only if it is ahead,
  // or level with the same head: a log whose tail was cut while the agent was
  // down must not become the new truth, so the chain then continues from the
  // state and the gap shows.
  auto scan = [&](int fd, uint64_t size) {
    return frames() ? scan_frame_tail(fd, size) : scan_tail(fd, size);
  };
  const TailScan tail = scan(fd_, file_bytes_);
  TailScan head = tail;
  if (!tail.found) {
    // Killed mid-rotation: the renamed file holds the newest records and the
    // new active file is empty or holds only a torn first record.
    const std::string rotated = frames() ? newest_rotated_file(dir_, stem(), kZstdSuffix)
                                         : newest_rotated_file(dir_, base_);
    const int rfd = rotated.empty() ? -1 : ::open(rotated.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat rst {};
    if (rfd >= 0 && ::fstat(rfd, &rst) == 0) head = scan(rfd, static_cast<uint64_t>(rst.st_size));
    if (rfd >= 0) ::close(rfd);
  }
  const bool ahead = head.found && state && head.seq + 1 > state->next_seq;
  const bool level =
      head.found && state && head.seq + 1 == state->next_seq && head.chain == state->chain;
  const bool follow = head.found && (!state || ahead || level);
  if (follow) {
    next_seq_ = head.seq + 1;
    chain_ = head.chain;
  } else if (state) {
    next_seq_ = state->next_seq;
    chain_ = state->chain;
  }
  sealed_seq_ = next_seq_;
  bool ends_with_newline = true;
  if (file_bytes_ > tail.good_end && follow) {
    // A record (or frame) torn by the kill, or pages a power loss never
    // wrote: kept in a side file, then cut off, so the chain goes on after
    // the last complete record and the file reads as JSON Lines (or with
    // zstdcat) again.
    bytes_cut_ = file_bytes_ - tail.good_end;
    cut_file_ = "." + base_ + ".cut." + rotation_stamp(real_now());
    if (Status s = save_cut_bytes(fd_, tail.good_end, file_bytes_, dir_ + "/" + cut_file_);
        !s.ok()) {
      return s;
    }
    if (::ftruncate(fd_, static_cast<off_t>(tail.good_end)) != 0 || ::fdatasync(fd_) != 0) {
      return errno_error("cut the torn tail of", options_.path, errno);
    }
    file_bytes_ = tail.good_end;
  } else if (file_bytes_ > 0 && !frames()) {
    char last = '\n';
    ends_with_newline =
        ::pread(fd_, &last, 1, static_cast<off_t>(file_bytes_ - 1)) == 1 && last == '\n';
  }
  // Behind the state or not an audit log's tail: a partial line is ended so
  // new records start on their own line (verify-audit reports the broken one).
  if (!ends_with_newline) out_.push_back('\n');
  file_records_ = frames() ? count_frame_records(fd_, file_bytes_)
                           : count_lines(options_.path) + (ends_with_newline ? 0 : 1);
  file_statements_ = file_records_;  // only used as "has records" for rotation
  // A crash: the previous agent did not stop cleanly, or wrote records its
  // state never named, or left a torn record.
  if ((state && (!state->clean_stop || ahead)) || bytes_cut_ > 0) {
    recovered_ = true;
    RecoveryRecord r;
    r.unix_ns = real_now();
    r.file = base_;
    if (next_seq_ > 0) r.last_good_seq = next_seq_ - 1;
    r.bytes_cut = bytes_cut_;
    r.cut_file = cut_file_;
    if (state) r.state_next_seq = state->next_seq;
    pending_recovery_ = r;
  }
  return Status::Ok();
}

JsonlWriter::~JsonlWriter() {
  if (writer_.joinable()) {
    hand_off();
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    writer_.join();
  }
  if (syncer_) syncer_->stop(clean_end_);
  if (compressor_.joinable()) {
    {
      std::lock_guard<std::mutex> lk(cmu_);
      cstop_ = true;
    }
    cwake_.notify_one();
    compressor_.join();
  }
  if (fd_ >= 0) ::close(fd_);
}

void JsonlWriter::on_statement(const Statement& statement) {
  const size_t before = batch_.bytes.size();
  format_record(statement, realtime_offset_ns_, batch_.bytes);
  keep_or_drop(before);
}

void JsonlWriter::on_other_record(std::string_view json_object) {
  const size_t before = batch_.bytes.size();
  batch_.bytes.append(json_object);
  batch_.bytes.push_back('\n');
  keep_or_drop(before);
}

void JsonlWriter::keep_or_drop(size_t before) {
  if (batch_.bytes.size() + queued_bytes_.load(std::memory_order_relaxed) +
          out_pending_.load(std::memory_order_relaxed) >
      options_.max_buffered_bytes) {
    // wait_for_room keeps the record unless writes are failing; otherwise it
    // has already taken the record out of batch_.
    if (!options_.wait_when_full) batch_.bytes.resize(before);
    if (!options_.wait_when_full || !wait_for_room(before)) {
      records_dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  batch_.ends.push_back(batch_.bytes.size());
  batch_bytes_.store(batch_.bytes.size(), std::memory_order_relaxed);
  if (batch_.bytes.size() >= options_.flush_bytes) hand_off();
}

bool JsonlWriter::wait_for_room(size_t record_start) {
  // The record waits aside while the records before it go to the writer.
  std::string record = batch_.bytes.substr(record_start);
  batch_.bytes.resize(record_start);
  hand_off();
  bool room = false;
  {
    std::unique_lock<std::mutex> lk(mu_);
    room_.wait(lk, [&] {
      return stop_ || failing_now_ ||
             record.size() + queued_bytes_.load() + out_pending_.load() <=
                 options_.max_buffered_bytes;
    });
    room = !stop_ && !failing_now_;
  }
  if (room) batch_.bytes.append(record);
  return room;
}

void JsonlWriter::flush_if_due(uint64_t now_mono_ns) {
  if (now_mono_ns - last_handoff_ns_ < to_ns(options_.flush_interval)) return;
  last_handoff_ns_ = now_mono_ns;
  if (!batch_.bytes.empty()) hand_off();
}

void JsonlWriter::hand_off() {
  if (batch_.bytes.empty()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queued_bytes_.fetch_add(batch_.bytes.size());
    queue_.push_back(std::move(batch_));
    if (!spare_.empty()) {
      batch_ = std::move(spare_.back());
      spare_.pop_back();
    } else {
      batch_ = Batch();
      batch_.bytes.reserve(options_.flush_bytes + 4096);
    }
  }
  batch_.clear();
  batch_bytes_.store(0, std::memory_order_relaxed);
  wake_.notify_one();
}

Status JsonlWriter::flush() {
  hand_off();
  std::unique_lock<std::mutex> lk(mu_);
  const uint64_t target = ++flush_requested_;
  wake_.notify_one();
  done_.wait(lk, [&] { return flush_completed_ >= target; });
  Status written = flush_status_;
  lk.unlock();
  if (!written.ok() || !syncer_) return written;
  return syncer_->sync_now();
}

void JsonlWriter::writer_main() {
  // Named so that per-thread CPU (top -H, /proc/PID/task/*/comm, bench/) tells
  // the chain and the disk from decoding.
  pthread_setname_np(pthread_self(), "dbw-audit-write");
  std::unique_lock<std::mutex> lk(mu_);
  std::deque<Batch> work;
  while (true) {
    const auto period = frames() ? std::min(options_.flush_interval, options_.frame_interval)
                                 : options_.flush_interval;
    const auto tick =
        std::chrono::steady_clock::now() + std::max(period, std::chrono::milliseconds(1));
    wake_.wait_until(lk, tick, [&] {
      return stop_ || flush_requested_ > flush_completed_ ||
             (!queue_.empty() && out_written_ == out_.size()) ||
             (open_pending_ && capture_reported_);
    });
    const bool stopping = stop_;
    checkpoint_drops_ = capture_drops_;
    const bool release_open = capture_reported_ || stopping || !queue_.empty();
    const uint64_t flush_target = flush_requested_;
    const bool flushing = flush_target > flush_completed_;
    uint64_t now = mono_now();
    if (out_written_ < out_.size() && (now >= retry_mono_ || stopping || flushing)) {
      lk.unlock();
      write_out(now);
      lk.lock();
    }
    // While writes fail, new batches wait in the queue (bounded; the decode
    // thread drops beyond it) instead of piling up behind the unwritten ones.
    if (out_written_ == out_.size() || stopping) work.swap(queue_);
    lk.unlock();
    size_t taken = 0;
    for (const Batch& batch : work) taken += batch.bytes.size();
    queued_bytes_.fetch_sub(taken);
    if (open_pending_ && release_open) append_open(now);

    for (Batch& batch : work) {
      process_batch(batch, now);
      batch.clear();
    }
    // A frame is sealed when it is full (process_batch), when its first
    // record has waited frame_interval, and for a flush or the stop.
    if (frames() && frame_records_ > 0 &&
        (stopping || flushing || now - frame_started_mono_ >= to_ns(options_.frame_interval))) {
      seal_frame();
    }
    // A write that failed in this round is retried at retry_mono_, not now.
    if (out_written_ < out_.size() && !(failing_ && retry_mono_ > now)) write_out(now);
    timers(now);
    clean_end_ = stopping && out_written_ == out_.size() && !open_pending_ && frame_records_ == 0;
    out_pending_.store(out_.size() - out_written_);

    lk.lock();
    for (Batch& batch : work) {
      if (spare_.size() < 4) spare_.push_back(std::move(batch));
    }
    work.clear();
    failing_now_ = failing_;
    room_.notify_all();
    if (flushing) {
      flush_completed_ = flush_target;
      flush_status_ = out_written_ < out_.size() ? last_error_ : Status::Ok();
      done_.notify_all();
    }
    if (stopping && queue_.empty()) break;
  }
}

void JsonlWriter::process_batch(const Batch& batch, uint64_t now_mono) {
  const std::string& bytes = batch.bytes;
  size_t pos = 0;
  for (const size_t next : batch.ends) {
    const size_t end = next - 1;  // the record's '\n'
    // format_record ends every record with "}\n"; the chain fields go before
    // the brace.
    if (end > pos && bytes[end] == '\n' && bytes[end - 1] == '}') {
      // kFrames counts the unsealed records at a tenth of their size, about
      // what they compress to.
      if (options_.rotate_bytes > 0 && regular_file_ && file_statements_ > 0 &&
          file_bytes_ + (out_.size() - out_written_) + frame_.size() / 10 >=
              options_.rotate_bytes &&
          now_mono >= rotate_retry_mono_ && drain(now_mono)) {
        rotate(now_mono);
      }
      const std::string_view body(bytes.data() + pos, end - 1 - pos);
      if (frames()) {
        if (frame_records_ == 0) frame_started_mono_ = now_mono;
        frame_.append(body);
        chain_record(frame_.size() - body.size(), true);
        if (frame_.size() >= kFrameMaxBytes) seal_frame();
      } else {
        chain_ = append_chained_record(*hasher_, chain_, next_seq_++, body, out_);
        entries_.push_back({out_.size(), 1});
      }
      ++file_records_;
      ++file_statements_;
      // A backlog of batches (replay, a burst) goes out in pieces: written
      // from a buffer still in cache, and out_ never grows into fresh pages.
      if (!failing_ && out_.size() - out_written_ >= kWriteChunkBytes) write_out(now_mono);
      if (options_.checkpoint_records > 0 && ++since_checkpoint_ >= options_.checkpoint_records) {
        append_checkpoint("interval", "", now_mono);
      }
    }
    pos = next;
  }
}

void JsonlWriter::set_capture_drops(std::vector<std::pair<std::string, uint64_t>> drops) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    capture_drops_ = std::move(drops);
    capture_reported_ = true;
  }
  wake_.notify_one();
}

void JsonlWriter::append_open(uint64_t now_mono) {
  open_pending_ = false;
  append_checkpoint("open", "", now_mono);
  if (!pending_recovery_) return;
  const size_t start = record_buffer().size();
  append_recovery_prefix(*pending_recovery_, record_buffer());
  chain_record(start, false);
  ++file_records_;
  pending_recovery_.reset();
}

void JsonlWriter::chain_record(size_t start, bool statement) {
  if (!frames()) {
    chain_ = append_chain_fields(*hasher_, chain_, next_seq_++, start, out_);
    entries_.push_back({out_.size(), statement ? 1u : 0u});
    return;
  }
  if (frame_records_ == 0) frame_first_seq_ = next_seq_;
  seq_field_.append(next_seq_++, frame_);
  ++frame_records_;
  frame_statements_ += statement ? 1 : 0;
}

void JsonlWriter::seal_frame() {
  if (!frames() || frame_records_ == 0) return;
  if (Status s = sealer_->seal(*hasher_, frame_, frame_first_seq_, frame_records_, chain_, out_);
      !s.ok()) {
    // zstd fails only without memory: keep the records and try again later.
    write_errors_.fetch_add(1);
    last_error_ = s;
    return;
  }
  entries_.push_back({out_.size(), frame_statements_});
  sealed_seq_ = next_seq_;
  frame_.clear();
  frame_records_ = 0;
  frame_statements_ = 0;
}

void JsonlWriter::append_checkpoint(const char* reason, const std::string& prev_file,
                                    uint64_t now_mono) {
  Checkpoint c;
  c.unix_ns = real_now();
  c.reason = reason;
  c.file = base_;
  c.file_records = file_records_;
  c.prev_file = prev_file;
  c.prev_chain = chain_;
  c.chain_alg = hasher_->algorithm();
  c.records_dropped = records_dropped_.load();
  c.capture_dropped = &checkpoint_drops_;
  if (frames() && frame_records_ == 0) frame_started_mono_ = now_mono;
  const size_t start = record_buffer().size();
  append_checkpoint_prefix(c, record_buffer());
  chain_record(start, false);
  ++file_records_;
  since_checkpoint_ = 0;
  last_checkpoint_mono_ = now_mono;
}

bool JsonlWriter::write_out(uint64_t now_mono) {
  while (out_written_ < out_.size()) {
    const ssize_t n = ::write(fd_, out_.data() + out_written_, out_.size() - out_written_);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      const int err = n < 0 ? errno : EIO;  // 0 is not expected from a file: do not spin
      write_errors_.fetch_add(1);
      last_error_ = errno_error("write", options_.path, err);
      failing_ = true;
      retry_mono_ = now_mono + to_ns(options_.flush_interval);
      return false;
    }
    out_written_ += static_cast<size_t>(n);
    file_bytes_ += static_cast<uint64_t>(n);
    bytes_written_.fetch_add(static_cast<uint64_t>(n));
    uint64_t statements = 0;
    while (!entries_.empty() && entries_.front().end <= out_written_) {
      statements += entries_.front().statements;
      entries_.pop_front();
    }
    records_written_.fetch_add(statements);
  }
  out_.clear();
  out_written_ = 0;
  failing_ = false;
  // Everything chained is written (kFrames: everything sealed).
  if (syncer_) syncer_->written(frames() ? sealed_seq_ : next_seq_, chain_);
  return true;
}

void JsonlWriter::rotate(uint64_t now_mono) {
  const int64_t now_real = real_now();
  std::string rotated;
  for (int64_t t = now_real;; t += 1000) {  // the next free microsecond
    rotated = frames() ? dir_ + "/" + stem() + "." + rotation_stamp(t) + std::string(kZstdSuffix)
                       : options_.path + "." + rotation_stamp(t);
    if (!exists(rotated) && !exists(rotated + std::string(kZstdSuffix))) break;
  }
  if (::rename(options_.path.c_str(), rotated.c_str()) != 0) {
    write_errors_.fetch_add(1);
    last_error_ = errno_error("rename to", rotated, errno);
    rotate_retry_mono_ = now_mono + 1'000'000'000;
    return;
  }
  const int fd = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    write_errors_.fetch_add(1);
    last_error_ = errno_error("open", options_.path, errno);
    (void)::rename(rotated.c_str(), options_.path.c_str());
    rotate_retry_mono_ = now_mono + 1'000'000'000;
    return;
  }
  // Before the new file's first record: the syncer syncs the renamed file
  // ahead of any state that names records after it.
  syncer_->rotated(fd, now_real);
  ::close(fd_);
  fd_ = fd;
  rotations_.fetch_add(1);
  file_bytes_ = 0;
  file_records_ = 0;
  file_statements_ = 0;
  file_started_ns_ = now_real;
  // The new file opens with a checkpoint that names its predecessor; its
  // chain field links it to that file's last record.
  // (verify-audit names files without their .zst.)
  std::string prev = rotated.substr(rotated.find_last_of('/') + 1);
  if (frames()) prev.resize(prev.size() - kZstdSuffix.size());
  append_checkpoint("rotation", prev, now_mono);
  drain(now_mono);
  if (options_.compress_rotated && !frames()) {
    {
      std::lock_guard<std::mutex> lk(cmu_);
      cjobs_.push_back(rotated);
    }
    cwake_.notify_one();
  }
}

void JsonlWriter::timers(uint64_t now_mono) {
  if (options_.rotate_age.count() > 0 && regular_file_ && file_statements_ > 0 &&
      now_mono >= rotate_retry_mono_ &&
      real_now() - file_started_ns_ >= static_cast<int64_t>(to_ns(options_.rotate_age)) &&
      drain(now_mono)) {
    rotate(now_mono);
  }
  if (options_.checkpoint_interval.count() > 0 && since_checkpoint_ > 0 &&
      now_mono - last_checkpoint_mono_ >= to_ns(options_.checkpoint_interval)) {
    append_checkpoint("interval", "", now_mono);
    if (!failing_) drain(now_mono);
  }
}

void JsonlWriter::compressor_main() {
  // A finished file can wait; the database cannot. Run at the lowest
  // priority so compression takes only CPU the host would leave idle.
  // (Linux: setpriority on a thread id changes that thread alone.)
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
  pthread_setname_np(pthread_self(), "dbw-audit-zstd");
  std::unique_lock<std::mutex> lk(cmu_);
  while (true) {
    cwake_.wait(lk, [&] { return cstop_ || !cjobs_.empty(); });
    if (cjobs_.empty()) break;  // stopping, nothing left
    const std::string path = std::move(cjobs_.front());
    cjobs_.pop_front();
    lk.unlock();
    if (!zstd_compress_file(path, options_.zstd_level).ok()) compress_errors_.fetch_add(1);
    lk.lock();
  }
}

}  // namespace dbwarden::audit
