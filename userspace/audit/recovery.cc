// SPDX-License-Identifier: Apache-2.0
#include "audit/recovery.h"

#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "audit/frame.h"
#include "audit/json_escape.h"
#include "audit/record.h"

namespace dbwarden::audit {
namespace {

// The most of a file's end read back to find its last complete record: more
// than a second of records at the highest rate measured (~15 MB/s), and more
// than one write chunk torn by a kill.
constexpr uint64_t kMaxTailBytes = 64ull * 1024 * 1024;
// Rotated names: `<name>.YYYYMMDDTHHMMSS.uuuuuuZ`.
constexpr size_t kStampBytes = 23;

bool pread_full(int fd, char* buf, uint64_t len, uint64_t offset) {
  uint64_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<uint64_t>(n);
  }
  return true;
}

void append_optional(std::optional<uint64_t> v, std::string& out) {
  out.append(v ? std::to_string(*v) : std::string("null"));
}

}  // namespace

TailScan scan_tail(int fd, uint64_t size) {
  TailScan t;
  if (size == 0) return t;
  std::string buf;
  for (uint64_t window = 64 * 1024;; window *= 4) {
    const uint64_t len = std::min<uint64_t>({window, size, kMaxTailBytes});
    const uint64_t base = size - len;
    buf.resize(len);
    if (!pread_full(fd, buf.data(), len, base)) return t;
    const std::string_view view(buf);
    // Candidate lines from the end; a line counts only once its start is in
    // the window (after a '\n', or at the start of the file).
    size_t end = view.rfind('\n');
    while (end != std::string_view::npos) {
      const size_t prev = end == 0 ? std::string_view::npos : view.rfind('\n', end - 1);
      if (prev == std::string_view::npos && base > 0) break;
      const size_t begin = prev == std::string_view::npos ? 0 : prev + 1;
      if (const auto rc = parse_record_chain(view.substr(begin, end - begin))) {
        t.found = true;
        t.seq = rc->seq;
        t.chain = rc->chain;
        t.good_end = base + end + 1;
        return t;
      }
      end = prev;
    }
    if (base == 0 || len == kMaxTailBytes) return t;
  }
}

TailScan scan_frame_tail(int fd, uint64_t size) {
  TailScan t;
  // The first 12 bytes of every seal: magic, payload size, tag.
  char head[12];
  const uint32_t magic = htole32(kSealMagic), payload = htole32(kSealBytes - 8);
  std::memcpy(head, &magic, 4);
  std::memcpy(head + 4, &payload, 4);
  std::memcpy(head + 8, kSealTag.data(), 4);
  const std::string_view pattern(head, sizeof(head));
  std::string buf;
  for (uint64_t window = 64 * 1024;; window *= 4) {
    const uint64_t len = std::min<uint64_t>({window, size, kMaxTailBytes});
    const uint64_t base = size - len;
    buf.resize(len);
    if (len == 0 || !pread_full(fd, buf.data(), len, base)) return t;
    const std::string_view view(buf);
    size_t at = view.size() < kSealBytes ? std::string_view::npos : view.size() - kSealBytes;
    while (at != std::string_view::npos) {
      at = view.rfind(pattern, at);
      if (at == std::string_view::npos) break;
      const auto seal = parse_seal(view.substr(at));
      const uint64_t seal_at = base + at;
      char magic4[4];
      // The data frame it seals must start where the seal says.
      if (seal && seal->data_bytes <= seal_at &&
          pread_full(fd, magic4, 4, seal_at - seal->data_bytes) &&
          is_zstd_frame(std::string_view(magic4, 4))) {
        t.found = true;
        t.seq = seal->first_seq + seal->records - 1;
        t.chain = seal->link;
        t.good_end = seal_at + kSealBytes;
        return t;
      }
      if (at == 0) break;
      --at;
    }
    if (base == 0 || len == kMaxTailBytes) return t;
  }
}

uint64_t count_frame_records(int fd, uint64_t end) {
  uint64_t records = 0;
  char b[kSealBytes];
  while (end >= kSealBytes && pread_full(fd, b, kSealBytes, end - kSealBytes)) {
    const auto seal = parse_seal(std::string_view(b, kSealBytes));
    if (!seal || seal->data_bytes + kSealBytes > end) break;
    records += seal->records;
    end -= kSealBytes + seal->data_bytes;
  }
  return records;
}

std::string newest_rotated_file(const std::string& dir, const std::string& base,
                                std::string_view suffix) {
  std::string newest;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return newest;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.ends_with(suffix)) continue;
    const std::string_view full = name;
    name.remove_suffix(suffix.size());
    if (name.size() == base.size() + 1 + kStampBytes && name.starts_with(base) &&
        name[base.size()] == '.' && name.back() == 'Z' && full > std::string_view(newest)) {
      newest = full;
    }
  }
  ::closedir(d);
  return newest.empty() ? newest : dir + "/" + newest;
}

Status save_cut_bytes(int fd, uint64_t from, uint64_t to, const std::string& path) {
  std::string bytes(to - from, '\0');
  if (!pread_full(fd, bytes.data(), bytes.size(), from)) {
    return Status::Error("audit log: cannot read the torn tail to keep it in " + path + ": " +
                         std::strerror(errno));
  }
  const int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0)
    return Status::Error("audit log: cannot create " + path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(out, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(out);
      return Status::Error("audit log: cannot write " + path + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(out) == 0;
  ::close(out);
  if (!synced) return Status::Error("audit log: cannot sync " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

void append_recovery_prefix(const RecoveryRecord& r, std::string& out) {
  out.append("{\"time\":\"");
  append_rfc3339_nanos(r.unix_ns, out);
  out.append("\",\"dbwarden.record_type\":\"recovery\",\"dbwarden.reason\":\"crash\"");
  out.append(",\"dbwarden.file\":");
  append_json_string(r.file, out);
  out.append(",\"dbwarden.last_good_seq\":");
  append_optional(r.last_good_seq, out);
  out.append(",\"dbwarden.bytes_cut\":" + std::to_string(r.bytes_cut));
  out.append(",\"dbwarden.cut_file\":");
  append_json_string(r.cut_file, out);
  out.append(",\"dbwarden.state_next_seq\":");
  append_optional(r.state_next_seq, out);
}

std::optional<RecoveryView> parse_recovery(std::string_view prefix) {
  if (prefix.find(kRecoveryMarker) == std::string_view::npos) return std::nullopt;
  std::string canonical(prefix);
  canonical.push_back('}');
  const auto j = nlohmann::json::parse(canonical, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  RecoveryView v;
  auto str = [&](const char* key, std::string& into) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return false;
    into = it->get<std::string>();
    return true;
  };
  // A count, or null where the writer had none.
  auto count = [&](const char* key, std::optional<uint64_t>& into) {
    auto it = j.find(key);
    if (it == j.end()) return false;
    if (it->is_null()) return true;
    if (!it->is_number_unsigned()) return false;
    into = it->get<uint64_t>();
    return true;
  };
  std::string type;
  std::optional<uint64_t> cut;
  if (!str("dbwarden.record_type", type) || type != "recovery" || !str("time", v.time) ||
      !str("dbwarden.file", v.file) || !str("dbwarden.cut_file", v.cut_file) ||
      !count("dbwarden.last_good_seq", v.last_good_seq) || !count("dbwarden.bytes_cut", cut) ||
      !cut || !count("dbwarden.state_next_seq", v.state_next_seq)) {
    return std::nullopt;
  }
  v.bytes_cut = *cut;
  return v;
}

}  // namespace dbwarden::audit
