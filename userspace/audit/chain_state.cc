// SPDX-License-Identifier: Apache-2.0
#include "audit/chain_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "audit/json_escape.h"
#include "audit/record.h"

namespace dbwarden::audit {
namespace {

constexpr size_t kMaxStateBytes = 64 * 1024;

Status errno_error(const char* what, const std::string& path) {
  return Status::Error(std::string("audit state: cannot ") + what + " " + path + ": " +
                       std::strerror(errno));
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string format_state(const ChainState& s) {
  std::string out = "{\"version\":1,\"file\":";
  append_json_string(s.file, out);
  out += ",\"next_seq\":" + std::to_string(s.next_seq) + ",\"chain\":\"";
  append_hex(s.chain, out);
  out += "\",\"file_started_ns\":" + std::to_string(s.file_started_ns);
  out += s.clean_stop ? ",\"clean_stop\":true}\n" : ",\"clean_stop\":false}\n";
  return out;
}

Result<ChainState> parse_state(std::string_view text) {
  if (text.size() > kMaxStateBytes) return Status::Error("audit state: file too large");
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Error("audit state: not a JSON object");
  auto version = j.find("version");
  auto file = j.find("file");
  auto next = j.find("next_seq");
  auto chain = j.find("chain");
  auto started = j.find("file_started_ns");
  if (version == j.end() || !version->is_number_unsigned() || version->get<uint64_t>() != 1) {
    return Status::Error("audit state: unknown version");
  }
  ChainState s;
  if (file == j.end() || !file->is_string() || next == j.end() || !next->is_number_unsigned() ||
      chain == j.end() || !chain->is_string()) {
    return Status::Error("audit state: missing file, next_seq or chain");
  }
  s.file = file->get<std::string>();
  s.next_seq = next->get<uint64_t>();
  if (!parse_hex(chain->get<std::string>(), s.chain)) {
    return Status::Error("audit state: chain is not 64 hex digits");
  }
  if (started != j.end() && started->is_number_integer()) {
    s.file_started_ns = started->get<int64_t>();
  }
  if (auto clean = j.find("clean_stop"); clean != j.end() && clean->is_boolean()) {
    s.clean_stop = clean->get<bool>();
  }
  return s;
}

Result<ChainState> read_state_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("open", path);
  std::string text;
  char buf[4096];
  while (text.size() <= kMaxStateBytes) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = errno_error("read", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto r = parse_state(text);
  if (!r.ok()) return Status::Error(r.status().message() + " (" + path + ")");
  return r;
}

Status write_state_file(const std::string& path, const ChainState& state) {
  const std::string tmp = path + ".tmp";
  const std::string text = format_state(state);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("create", tmp);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      Status s = errno_error("write", tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = errno_error("fsync", tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("rename to", path);
  // The rename itself is durable only once the directory is synced.
  const std::string dir = dir_of(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

void append_checkpoint_prefix(const Checkpoint& c, std::string& out) {
  out.append("{\"time\":\"");
  append_rfc3339_nanos(c.unix_ns, out);
  out.append("\",\"dbwarden.record_type\":\"checkpoint\",\"dbwarden.reason\":");
  append_json_string(c.reason, out);
  out.append(",\"dbwarden.file\":");
  append_json_string(c.file, out);
  out.append(",\"dbwarden.file_records\":" + std::to_string(c.file_records));
  out.append(",\"dbwarden.prev_file\":");
  append_json_string(c.prev_file, out);
  out.append(",\"dbwarden.prev_chain\":\"");
  append_hex(c.prev_chain, out);
  out.append("\",\"dbwarden.chain_alg\":");
  append_json_string(c.chain_alg, out);
  out.append(",\"dbwarden.records_dropped\":" + std::to_string(c.records_dropped));
  if (c.capture_dropped != nullptr && !c.capture_dropped->empty()) {
    out.append(",\"dbwarden.capture_dropped\":{");
    for (size_t i = 0; i < c.capture_dropped->size(); ++i) {
      if (i > 0) out.push_back(',');
      append_json_string((*c.capture_dropped)[i].first, out);
      out.append(":" + std::to_string((*c.capture_dropped)[i].second));
    }
    out.push_back('}');
  }
}

}  // namespace dbwarden::audit
