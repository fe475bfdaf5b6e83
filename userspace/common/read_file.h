// SPDX-License-Identifier: Apache-2.0
//
// Whole-file reads for /proc and small config files. /proc files report size
// 0, so the file is read in blocks until EOF; a block read costs one syscall,
// where std::istreambuf_iterator costs a virtual call per byte (the TLS
// rescan reads every server process's maps each second: measurable on a busy
// decode thread).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <limits>
#include <string>

namespace dbwarden {

// The file's bytes, at most `limit` of them; empty when it cannot be opened
// or read (a process that exited between listing and reading is the usual
// reason, not an error).
inline std::string read_whole_file(const std::string& path,
                                   size_t limit = std::numeric_limits<size_t>::max()) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  constexpr size_t kBlock = 64 * 1024;
  while (out.size() < limit) {
    const size_t used = out.size();
    const size_t want = std::min(kBlock, limit - used);
    out.resize(used + want);
    const ssize_t n = ::read(fd, out.data() + used, want);
    if (n < 0 && errno == EINTR) {
      out.resize(used);
      continue;
    }
    out.resize(used + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n <= 0) break;
  }
  ::close(fd);
  return out;
}

}  // namespace dbwarden
