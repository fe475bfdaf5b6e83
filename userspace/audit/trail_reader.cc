// SPDX-License-Identifier: Apache-2.0
#include "audit/trail_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "audit/chain.h"
#include "audit/compress.h"
#include "audit/frame.h"

namespace dbwarden::audit {
namespace {

constexpr size_t kChunk = 1 << 16;
// A record longer than this is not one the writer wrote.
constexpr size_t kMaxLineBytes = 64 * 1024 * 1024;

Status read_error(const char* what, const std::string& path) {
  return Status::Error(std::string("cannot ") + what + " " + path + ": " + std::strerror(errno));
}

// Hands the whole lines of a byte stream to the sink and keeps the rest.
class LineBuffer {
 public:
  explicit LineBuffer(const LineSink& sink) : sink_(sink) {}
  Status feed(std::string_view bytes) {
    const size_t nl = bytes.rfind('\n');
    if (nl == std::string_view::npos) {
      if (pending_.size() + bytes.size() > kMaxLineBytes) {
        return Status::Error("a line longer than 64 MiB: not an audit log");
      }
      pending_.append(bytes);
      return Status::Ok();
    }
    if (pending_.empty()) {
      sink_(bytes.substr(0, nl + 1));
    } else {
      pending_.append(bytes.substr(0, nl + 1));
      sink_(pending_);
    }
    pending_.assign(bytes.substr(nl + 1));
    return Status::Ok();
  }
  const std::string& pending() const { return pending_; }
  void drop() { pending_.clear(); }

 private:
  const LineSink& sink_;
  std::string pending_;
};

// The same for a framed file (frame.h) as it grows: each sealed frame's
// records once the seal is there; bytes of a frame still being written (or
// torn by a crash) are held back.
class FrameBuffer {
 public:
  explicit FrameBuffer(const LineSink& sink) : sink_(sink) {}
  Status feed(std::string_view bytes) {
    pending_.append(bytes);
    std::string_view rest = pending_;
    Status status;
    while (status.ok()) {
      FrameUnit unit;
      std::string why;
      const SplitResult r = split_unit(rest, /*at_end=*/false, unit, &why);
      if (r == SplitResult::kNeedMore) break;
      if (r == SplitResult::kDamaged) {
        status = Status::Error("not an audit frame: " + why);
        break;
      }
      if (is_zstd_frame(unit.data)) {
        status = decoder_.decode(unit.data, records_);
        if (status.ok() && !records_.empty()) sink_(records_);
      }
      rest.remove_prefix(unit.bytes);
    }
    pending_.erase(0, pending_.size() - rest.size());
    if (status.ok() && pending_.size() > kMaxFrameContentBytes) {
      status = Status::Error("a frame longer than 64 MiB: not an audit log");
    }
    return status;
  }
  const std::string& pending() const { return pending_; }
  void drop() { pending_.clear(); }

 private:
  const LineSink& sink_;
  std::string pending_;
  FrameDecoder decoder_;
  std::string records_;
};

// A file that may be plain JSON Lines or framed: told apart by its first byte
// (a record's '{', or the first byte of zstd's magic number).
class TrailBuffer {
 public:
  explicit TrailBuffer(const LineSink& sink) : lines_(sink), frames_(sink) {}
  Status feed(std::string_view bytes) {
    if (bytes.empty()) return Status::Ok();
    if (!decided_) {
      framed_ = is_zstd_frame(bytes) || static_cast<uint8_t>(bytes[0]) == 0x28;
      decided_ = true;
    }
    return framed_ ? frames_.feed(bytes) : lines_.feed(bytes);
  }
  const std::string& pending() const { return framed_ ? frames_.pending() : lines_.pending(); }
  void drop() {
    lines_.drop();
    frames_.drop();
  }
  // A new file: its first byte says again what it is.
  void reset() {
    drop();
    decided_ = false;
  }

 private:
  LineBuffer lines_;
  FrameBuffer frames_;
  bool decided_ = false;
  bool framed_ = false;
};

// Reads `fd` to its end into `lines`; `*pos` advances by the bytes read.
template <typename Buffer>
Status drain(int fd, const std::string& path, Buffer& lines, uint64_t* pos, char* buf) {
  while (true) {
    const ssize_t n = ::read(fd, buf, kChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return read_error("read", path);
    if (n == 0) return Status::Ok();
    *pos += static_cast<uint64_t>(n);
    if (Status s = lines.feed(std::string_view(buf, static_cast<size_t>(n))); !s.ok()) return s;
  }
}

// True when the bytes held back as a partial record are still in the file:
// after a crash the next agent cuts a torn record off and appends after the
// last complete one, so the partial must then be dropped, not completed.
bool pending_still_there(int fd, const std::string& pending, uint64_t pos) {
  if (pending.empty()) return true;
  std::string now(pending.size(), '\0');
  const ssize_t n = ::pread(fd, now.data(), now.size(), static_cast<off_t>(pos - pending.size()));
  return n == static_cast<ssize_t>(now.size()) && now == pending;
}

}  // namespace

namespace {

// A zstd file, framed (frame.h) or a JSON Lines file compressed whole, a
// frame at a time from the page cache. A framed file's incomplete or
// unsealed last frame is held back (*partial), as a plain file's last line.
Status cat_zstd_file(const std::string& path, std::string_view bytes, const LineSink& sink,
                     uint64_t* partial) {
  FrameDecoder decoder;
  std::string records;
  bool sealed = false;  // a framed file
  while (!bytes.empty()) {
    FrameUnit unit;
    std::string why;
    if (split_unit(bytes, /*at_end=*/true, unit, &why) != SplitResult::kUnit ||
        (sealed && !unit.seal && unit.bytes == bytes.size())) {
      if ((sealed || why == kSealTruncated) && partial != nullptr) {
        *partial = bytes.size();
        return Status::Ok();
      }
      return Status::Error(path + ": compressed data is truncated (" + why + ")");
    }
    sealed = sealed || unit.seal.has_value();
    if (is_zstd_frame(unit.data)) {
      if (Status s = decoder.decode(unit.data, records); !s.ok()) {
        return Status::Error(path + ": " + s.message());
      }
      if (!records.empty()) sink(records);
    }
    bytes.remove_prefix(unit.bytes);
  }
  return Status::Ok();
}

}  // namespace

Status cat_audit_file(const std::string& path, const LineSink& sink, uint64_t* partial) {
  if (partial != nullptr) *partial = 0;
  {
    auto m = MappedFile::Open(path);
    if (!m.ok()) return m.status();
    if (is_zstd_frame(m.value()->bytes())) {
      return cat_zstd_file(path, m.value()->bytes(), sink, partial);
    }
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return read_error("open", path);
  std::unique_ptr<char[]> buf(new char[kChunk]);
  LineBuffer lines(sink);
  uint64_t pos = 0;
  Status status;
  if (path.ends_with(kZstdSuffix)) {
    // Not a zstd frame (checked above): only an empty .zst is an audit file.
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      status = Status::Error(path + ": corrupt zstd data: not a zstd frame");
    }
  } else {
    status = drain(fd, path, lines, &pos, buf.get());
  }
  ::close(fd);
  if (partial != nullptr) *partial = lines.pending().size();
  return status;
}

namespace {

// Rotated names: `<name>.YYYYMMDDTHHMMSS.uuuuuuZ[.zst]`; the stamp sorts as text.
constexpr size_t kStampBytes = 23;

std::string stamp_at(int64_t unix_ns) {
  timespec ts{static_cast<time_t>(unix_ns / 1'000'000'000),
              static_cast<long>(unix_ns % 1'000'000'000)};
  struct tm tm {};
  gmtime_r(&ts.tv_sec, &tm);
  char buf[40];
  const size_t n = strftime(buf, sizeof(buf), "%Y%m%dT%H%M%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", ts.tv_nsec / 1000);
  return buf;
}

std::string stamp_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return stamp_at(static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
}

// Rotated files of `base` in `dir` stamped at or after `since`, oldest first.
std::vector<std::string> rotated_since(const std::string& dir, const std::string& active,
                                       const std::string& since) {
  // A framed trail's active `<name>.zst` rotates to `<name>.<stamp>.zst`.
  const std::string base =
      active.ends_with(kZstdSuffix) ? active.substr(0, active.size() - kZstdSuffix.size()) : active;
  std::vector<std::pair<std::string, std::string>> found;  // stamp, path
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name.ends_with(kZstdSuffix)) name.remove_suffix(kZstdSuffix.size());
      if (name.size() != base.size() + 1 + kStampBytes || !name.starts_with(base) ||
          name[base.size()] != '.' || name.back() != 'Z') {
        continue;
      }
      const std::string stamp(name.substr(base.size() + 1));
      if (stamp >= since) found.emplace_back(stamp, dir + "/" + e->d_name);
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  out.reserve(found.size());
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

// Passes on each record once, in seq order: a follower that falls behind
// several rotations finds the files it skipped and takes from them the
// records it has not printed.
class SeqFilter {
 public:
  SeqFilter(const LineSink& sink, std::string dir, std::string base, std::string since)
      : sink_(sink), dir_(std::move(dir)), base_(std::move(base)), opened_(std::move(since)) {}
  // The follower (re)opens the active file: files rotated since it opened the
  // previous one (that one included) may hold records it has not seen.
  void reopened() {
    since_ = opened_;
    opened_ = stamp_now();
  }
  void operator()(std::string_view lines) {
    while (!lines.empty()) {
      const size_t nl = lines.find('\n');
      const std::string_view line = lines.substr(0, nl);
      lines.remove_prefix(nl == std::string_view::npos ? lines.size() : nl + 1);
      const auto rc = record_seq(line);
      if (rc && last_ && *rc <= *last_) continue;  // printed already
      if (rc && last_ && *rc > *last_ + 1 && !catching_up_) catch_up(*rc);
      if (rc && last_ && *rc <= *last_) continue;
      if (rc) last_ = *rc;
      sink_(std::string(line) + "\n");
    }
  }
  // Before the first record of this follow: the last one printed.
  void printed_up_to(std::optional<uint64_t> seq) { last_ = seq; }

 private:
  void catch_up(uint64_t upto) {
    catching_up_ = true;
    for (const std::string& f : rotated_since(dir_, base_, since_)) {
      if (last_ && *last_ + 1 >= upto) break;
      (void)cat_audit_file(f, [&](std::string_view l) { (*this)(l); });
    }
    catching_up_ = false;
  }

  const LineSink& sink_;
  std::string dir_, base_, opened_, since_;
  std::optional<uint64_t> last_;
  bool catching_up_ = false;
};

}  // namespace

Status follow_audit_file(const std::string& path, std::optional<uint64_t> printed_up_to,
                         const LineSink& sink, const FollowOptions& options) {
  const size_t slash = path.find_last_of('/');
  SeqFilter filter(sink, slash == std::string::npos ? "." : path.substr(0, slash),
                   path.substr(slash == std::string::npos ? 0 : slash + 1),
                   options.since_unix_ns > 0 ? stamp_at(options.since_unix_ns) : stamp_now());
  filter.printed_up_to(printed_up_to);
  const LineSink filtered = [&](std::string_view lines) { filter(lines); };
  std::unique_ptr<char[]> buf(new char[kChunk]);
  TrailBuffer lines(filtered);
  int fd = -1;
  ino_t ino = 0;
  uint64_t pos = 0;  // the active file from its start: records printed already are skipped
  auto open_active = [&] {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && ::fstat(fd, &st) == 0 &&
        ::lseek(fd, static_cast<off_t>(pos), SEEK_SET) == static_cast<off_t>(pos)) {
      ino = st.st_ino;
      filter.reopened();
      return;
    }
    if (fd >= 0) ::close(fd);
    fd = -1;
  };
  open_active();
  Status status;
  while (status.ok() && !(options.stop && options.stop())) {
    if (fd >= 0) {
      if (!pending_still_there(fd, lines.pending(), pos)) {
        pos -= lines.pending().size();  // where the torn record began, and was cut
        lines.drop();
        (void)::lseek(fd, static_cast<off_t>(pos), SEEK_SET);
      }
      const uint64_t before = pos;
      status = drain(fd, path, lines, &pos, buf.get());
      if (!status.ok() || pos != before) continue;
    }
    struct stat st {};
    const bool present = ::stat(path.c_str(), &st) == 0;
    if (fd >= 0 && (!present || st.st_ino != ino)) {
      // Rotated: the writer renames a file only once it is done with it, so
      // what is left of it is read now, and the next file from its start
      // (files rotated in between are found by their records' seqs).
      status = drain(fd, path, lines, &pos, buf.get());
      ::close(fd);
      fd = -1;
      lines.reset();
      pos = 0;
    }
    if (fd < 0 && present) {
      open_active();
      continue;
    }
    std::this_thread::sleep_for(options.poll);
  }
  if (fd >= 0) ::close(fd);
  return status;
}

}  // namespace dbwarden::audit
