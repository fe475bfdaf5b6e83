// SPDX-License-Identifier: Apache-2.0
#include "shipping/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace dbwarden::shipping {
namespace {

std::string errno_text() { return std::strerror(errno); }

// Parses a decimal at s[*pos..] up to a space; advances past the space.
bool parse_decimal(std::string_view s, size_t* pos, uint64_t* value, size_t max_digits) {
  uint64_t v = 0;
  size_t i = *pos;
  const size_t start = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (i - start >= max_digits) return false;
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == start || i >= s.size() || s[i] != ' ') return false;
  *value = v;
  *pos = i + 1;
  return true;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Spool::Spool(std::string dir, uint64_t max_bytes, uint64_t segment_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes), segment_bytes_(segment_bytes) {}

Spool::~Spool() {
  if (write_fd_ >= 0) ::close(write_fd_);
  if (read_fd_ >= 0) ::close(read_fd_);
}

Result<std::unique_ptr<Spool>> Spool::Open(const std::string& dir, uint64_t max_bytes,
                                           uint64_t segment_bytes) {
  if (dir.empty()) return Status::Error("spool: no directory given");
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Error("spool: cannot create " + dir + ": " + errno_text());
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Error("spool: " + dir + " is not a directory");
  }
  std::unique_ptr<Spool> spool(new Spool(dir, max_bytes, std::max<uint64_t>(segment_bytes, 1)));
  Status s = spool->resume();
  if (!s.ok()) return s;
  return spool;
}

std::string Spool::segment_path(uint64_t id) const {
  char name[64];
  snprintf(name, sizeof(name), "/spool-%020llu.log", static_cast<unsigned long long>(id));
  return dir_ + name;
}

Status Spool::resume() {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return Status::Error("spool: cannot read " + dir_ + ": " + errno_text());
  std::vector<uint64_t> ids;
  while (dirent* e = ::readdir(d)) {
    unsigned long long id = 0;
    char tail[8] = {};
    if (std::sscanf(e->d_name, "spool-%20llu.%4s", &id, tail) == 2 &&
        std::strcmp(tail, "log") == 0 && std::strlen(e->d_name) == 30) {
      ids.push_back(id);
    }
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    next_id_ = std::max(next_id_, id + 1);
    const std::string path = segment_path(id);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    Segment seg{id, static_cast<uint64_t>(st.st_size), 0};
    uint64_t offset = 0;
    uint64_t length = 0;
    while (offset < seg.size && read_at(seg, offset, nullptr, nullptr, &length)) {
      offset += length;
      ++seg.records;
    }
    if (offset < seg.size) {
      // A record cut short by a crash: keep what is whole, count the rest.
      ++torn_records_;
      if (::truncate(path.c_str(), static_cast<off_t>(offset)) != 0) {
        return Status::Error("spool: cannot truncate torn " + path + ": " + errno_text());
      }
      seg.size = offset;
    }
    if (seg.records == 0) {
      ::unlink(path.c_str());
      continue;
    }
    segments_.push_back(seg);
    bytes_ += seg.size;
    records_ += seg.records;
  }
  refresh_oldest();
  return Status::Ok();
}

bool Spool::read_at(const Segment& seg, uint64_t offset, std::string* frame, int64_t* ms,
                    uint64_t* length) {
  if (read_fd_ < 0 || read_fd_id_ != seg.id) {
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = ::open(segment_path(seg.id).c_str(), O_RDONLY | O_CLOEXEC);
    read_fd_id_ = seg.id;
    if (read_fd_ < 0) {
      last_error_ = "spool: cannot open " + segment_path(seg.id) + ": " + errno_text();
      return false;
    }
  }
  char head[48];
  const uint64_t want = std::min<uint64_t>(sizeof(head), seg.size - offset);
  const ssize_t got = ::pread(read_fd_, head, want, static_cast<off_t>(offset));
  if (got <= 0) return false;
  std::string_view h(head, static_cast<size_t>(got));
  size_t pos = 0;
  uint64_t enqueue_ms = 0;
  if (!parse_decimal(h, &pos, &enqueue_ms, 19)) return false;
  const size_t frame_start = pos;
  uint64_t len = 0;
  if (!parse_decimal(h, &pos, &len, 10)) return false;
  const uint64_t total = pos + len;
  if (len == 0 || offset + total > seg.size) return false;
  if (frame != nullptr) {
    frame->resize(total - frame_start);
    const ssize_t n =
        ::pread(read_fd_, frame->data(), frame->size(), static_cast<off_t>(offset + frame_start));
    if (n != static_cast<ssize_t>(frame->size())) {
      last_error_ = "spool: short read in " + segment_path(seg.id);
      return false;
    }
  }
  if (ms != nullptr) *ms = static_cast<int64_t>(enqueue_ms);
  *length = total;
  return true;
}

Spool::Append Spool::append(std::string_view frame, int64_t enqueue_unix_ms, bool already_read) {
  if (already_read && unread_records() != 0) {
    last_error_ = "spool: in-flight record behind unread ones";
    return Append::kError;
  }
  std::string rec = std::to_string(std::max<int64_t>(enqueue_unix_ms, 0));
  rec.push_back(' ');
  rec.append(frame);
  if (bytes_ + rec.size() > max_bytes_) return Append::kFull;
  if (write_fd_ < 0 || segments_.back().size >= segment_bytes_) {
    if (write_fd_ >= 0) ::close(write_fd_);
    const uint64_t id = next_id_++;
    write_fd_ =
        ::open(segment_path(id).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (write_fd_ < 0) {
      last_error_ = "spool: cannot create " + segment_path(id) + ": " + errno_text();
      return Append::kError;
    }
    segments_.push_back(Segment{id, 0, 0});
  }
  Segment& seg = segments_.back();
  if (!write_all(write_fd_, rec)) {
    last_error_ = "spool: cannot write " + segment_path(seg.id) + ": " + errno_text();
    // Leave no partial record behind; a later append starts a new segment.
    if (::ftruncate(write_fd_, static_cast<off_t>(seg.size)) != 0) {
      last_error_ += " (and cannot cut the partial record)";
    }
    ::close(write_fd_);
    write_fd_ = -1;
    if (seg.records == 0) {
      ::unlink(segment_path(seg.id).c_str());
      segments_.pop_back();
    }
    return Append::kError;
  }
  seg.size += rec.size();
  ++seg.records;
  bytes_ += rec.size();
  ++records_;
  if (records_ == 1) oldest_ms_ = enqueue_unix_ms;
  if (already_read) {
    read_ = Cursor{segments_.size() - 1, seg.size};
    read_sizes_.push_back(rec.size());
  }
  return Append::kOk;
}

bool Spool::read_next(std::string& frame, int64_t& enqueue_unix_ms) {
  while (read_.segment < segments_.size()) {
    const Segment& seg = segments_[read_.segment];
    if (read_.offset < seg.size) {
      uint64_t length = 0;
      if (!read_at(seg, read_.offset, &frame, &enqueue_unix_ms, &length)) return false;
      read_.offset += length;
      read_sizes_.push_back(length);
      return true;
    }
    if (read_.segment + 1 == segments_.size()) return false;  // the end of the write segment
    ++read_.segment;
    read_.offset = 0;
  }
  return false;
}

void Spool::rewind() {
  read_ = commit_;
  read_sizes_.clear();
}

void Spool::commit(uint64_t records) {
  while (records > 0 && !read_sizes_.empty()) {
    const uint64_t length = read_sizes_.front();
    read_sizes_.pop_front();
    --records;
    while (commit_.segment < segments_.size() &&
           commit_.offset >= segments_[commit_.segment].size) {
      ++commit_.segment;
      commit_.offset = 0;
    }
    commit_.offset += length;
    bytes_ -= length;
    --records_;
  }
  drop_finished_segments();
  refresh_oldest();
}

void Spool::drop_finished_segments() {
  while (!segments_.empty() && (commit_.segment > 0 || commit_.offset >= segments_.front().size)) {
    if (segments_.size() == 1 && write_fd_ >= 0) {
      ::close(write_fd_);  // everything delivered: the next append starts a new segment
      write_fd_ = -1;
    }
    if (read_fd_ >= 0 && read_fd_id_ == segments_.front().id) {
      ::close(read_fd_);
      read_fd_ = -1;
    }
    ::unlink(segment_path(segments_.front().id).c_str());
    segments_.pop_front();
    if (commit_.segment > 0) {
      --commit_.segment;
    } else {
      commit_ = Cursor{};
    }
    if (read_.segment > 0) {
      --read_.segment;
    } else {
      read_ = Cursor{};
    }
  }
}

void Spool::refresh_oldest() {
  oldest_ms_ = 0;
  if (records_ == 0) return;
  Cursor c = commit_;
  while (c.segment < segments_.size() && c.offset >= segments_[c.segment].size) {
    ++c.segment;
    c.offset = 0;
  }
  if (c.segment >= segments_.size()) return;
  uint64_t length = 0;
  int64_t ms = 0;
  if (read_at(segments_[c.segment], c.offset, nullptr, &ms, &length)) oldest_ms_ = ms;
}

}  // namespace dbwarden::shipping
