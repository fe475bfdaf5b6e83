// SPDX-License-Identifier: Apache-2.0
#include "capture/records.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

namespace dbwarden::capture {
namespace {
constexpr char kMagic[8] = {'D', 'B', 'W', 'R', 'E', 'C', '0', '1'};
// Largest record the kernel side can produce; anything bigger is corruption.
constexpr uint32_t kMaxRecord = sizeof(dbw_data_event) + 64;
}  // namespace

bool dispatch(const void* data, size_t size, EventHandler& h) {
  if (size < sizeof(dbw_event_header)) return false;
  // Ring-buffer records are 8-byte aligned; replay copies into aligned storage.
  const auto* hdr = static_cast<const dbw_event_header*>(data);
  switch (hdr->kind) {
    case DBW_EV_DATA: {
      const auto* e = static_cast<const dbw_data_event*>(data);
      if (size < offsetof(dbw_data_event, data) || e->captured > DBW_CHUNK_BYTES ||
          e->captured > e->length || size < offsetof(dbw_data_event, data) + e->captured ||
          e->direction > DBW_DIR_EGRESS ||
          // A deliberate skip carries no payload and only stands for server bytes.
          ((e->flags & DBW_DATA_BULK_SKIPPED) &&
           (e->captured != 0 || e->direction != DBW_DIR_EGRESS))) {
        return false;
      }
      h.on_data(*e);
      return true;
    }
    case DBW_EV_CONN_OPEN:
    case DBW_EV_CONN_CLOSE: {
      // Recordings made before peer_ino existed end where it starts.
      if (size < offsetof(dbw_conn_event, peer_ino)) return false;
      dbw_conn_event e{};
      std::memcpy(&e, data, std::min(size, sizeof(e)));
      if (hdr->kind == DBW_EV_CONN_OPEN) {
        h.on_conn_open(e);
      } else {
        h.on_conn_close(e);
      }
      return true;
    }
    case DBW_EV_PROC_EXIT:
      if (size < sizeof(dbw_proc_event)) return false;
      h.on_proc_exit(*static_cast<const dbw_proc_event*>(data));
      return true;
    case DBW_EV_SERVER: {
      if (size < sizeof(dbw_server_event)) return false;
      const auto* e = static_cast<const dbw_server_event*>(data);
      if (e->how != DBW_SERVER_ACCEPT && e->how != DBW_SERVER_UNIX_PATH) return false;
      h.on_server(*e);
      return true;
    }
    default:
      return false;
  }
}

Result<std::unique_ptr<RecordingWriter>> RecordingWriter::Create(const std::string& path) {
  // 0600 from the start: a recording holds statement text as captured, before
  // redaction, so passwords too (README "Other commands").
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  std::FILE* f = fd < 0 ? nullptr : ::fdopen(fd, "wb");
  if (!f) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    return Status::Error("cannot create recording " + path + ": " + std::strerror(err) +
                         " (it must not exist yet)");
  }
  std::fwrite(kMagic, 1, sizeof(kMagic), f);
  return std::unique_ptr<RecordingWriter>(new RecordingWriter(f));
}

RecordingWriter::~RecordingWriter() { close(); }

void RecordingWriter::write(const void* data, size_t size) {
  if (!file_ || failed_) return;
  uint32_t n = static_cast<uint32_t>(size);
  if (std::fwrite(&n, sizeof(n), 1, file_) != 1 || std::fwrite(data, 1, size, file_) != size) {
    failed_ = true;
  }
}

Status RecordingWriter::close() {
  if (!file_) return Status::Ok();
  bool ok = std::fclose(file_) == 0 && !failed_;
  file_ = nullptr;
  return ok ? Status::Ok() : Status::Error("writing the recording failed (disk full?)");
}

Result<ReplayStats> replay(const std::string& path, EventHandler& handler) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status::Error("cannot open recording " + path + ": " + std::strerror(errno));
  char magic[sizeof(kMagic)];
  if (std::fread(magic, 1, sizeof(magic), f) != sizeof(magic) ||
      std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
    std::fclose(f);
    return Status::Error(path + " is not a dbwarden recording");
  }
  ReplayStats stats;
  // uint64_t storage keeps records 8-byte aligned like the ring buffer's.
  std::vector<uint64_t> buf(kMaxRecord / sizeof(uint64_t) + 1);
  uint32_t n = 0;
  while (std::fread(&n, sizeof(n), 1, f) == 1) {
    if (n > kMaxRecord || std::fread(buf.data(), 1, n, f) != n) {
      stats.malformed++;
      break;  // a torn or corrupt tail: stop, report it
    }
    stats.records++;
    if (!dispatch(buf.data(), n, handler)) stats.malformed++;
  }
  std::fclose(f);
  return stats;
}

}  // namespace dbwarden::capture
