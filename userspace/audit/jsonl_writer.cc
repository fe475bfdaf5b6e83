// SPDX-License-Identifier: Apache-2.0
#include "audit/jsonl_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include "audit/record.h"

namespace dbwarden::audit {
namespace {

Status errno_error(const char* what, const std::string& path, int err) {
  return Status::Error(std::string("audit log: cannot ") + what + " " + path + ": " +
                       std::strerror(err));
}

// mkdir -p for the directory part of `path`; new directories get 0700 because
// audit records contain query text.
Status create_parent_directories(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return Status::Ok();
  const std::string dir = path.substr(0, slash);
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

uint64_t monotonic_now_ns() {
  timespec mono{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return static_cast<uint64_t>(mono.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(mono.tv_nsec);
}

}  // namespace

Result<std::unique_ptr<JsonlWriter>> JsonlWriter::Open(const WriterOptions& options) {
  if (options.path.empty()) return Status::Error("audit log: no path configured");
  if (Status s = create_parent_directories(options.path); !s.ok()) return s;
  const int fd = ::open(options.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("open", options.path, errno);
  return std::unique_ptr<JsonlWriter>(new JsonlWriter(options, fd, sample_realtime_offset_ns()));
}

JsonlWriter::JsonlWriter(WriterOptions options, int fd, int64_t realtime_offset_ns)
    : options_(std::move(options)), fd_(fd), realtime_offset_ns_(realtime_offset_ns) {
  buffer_.reserve(std::min(options_.flush_bytes * 2, options_.max_buffered_bytes));
  scratch_.reserve(4096);
  last_flush_ns_ = monotonic_now_ns();
}

JsonlWriter::~JsonlWriter() {
  (void)flush();
  ::close(fd_);
}

void JsonlWriter::on_statement(const Statement& statement) {
  scratch_.clear();
  format_record(statement, realtime_offset_ns_, scratch_);
  if (buffer_.size() + scratch_.size() > options_.max_buffered_bytes) {
    ++records_dropped_;
    return;
  }
  buffer_.append(scratch_);
  ++buffered_records_;
  // While writes fail, only the timer retries, not every statement.
  if (buffer_.size() >= options_.flush_bytes && !last_flush_failed_) (void)flush();
}

void JsonlWriter::flush_if_due(uint64_t now_mono_ns) {
  const auto interval_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.flush_interval).count());
  const bool timer = now_mono_ns - last_flush_ns_ >= interval_ns;
  const bool size = buffer_.size() >= options_.flush_bytes && !last_flush_failed_;
  if (!timer && !size) return;
  last_flush_ns_ = now_mono_ns;
  (void)flush();
}

Status JsonlWriter::flush() {
  size_t done = 0;
  Status result;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ++write_errors_;
      result = errno_error("write", options_.path, errno);
      break;
    }
    if (n == 0) {  // not expected from a file; treat like an error rather than spin
      ++write_errors_;
      result = errno_error("write", options_.path, EIO);
      break;
    }
    done += static_cast<size_t>(n);
  }
  // Records are newline-terminated and JSON escapes every newline inside them,
  // so after a partial write the newlines in the written prefix count the
  // complete records written. A full write needs no counting.
  const uint64_t written_records =
      done == buffer_.size()
          ? buffered_records_
          : static_cast<uint64_t>(std::count(buffer_.data(), buffer_.data() + done, '\n'));
  records_written_ += written_records;
  buffered_records_ -= written_records;
  bytes_written_ += done;
  buffer_.erase(0, done);
  last_flush_failed_ = !result.ok();
  return result;
}

}  // namespace dbwarden::audit
