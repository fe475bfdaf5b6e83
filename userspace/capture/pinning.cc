// SPDX-License-Identifier: Apache-2.0
#include "capture/pinning.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "dbwarden.h"

namespace dbwarden::capture {
namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// Closes a file descriptor on every return path.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

}  // namespace

const std::vector<std::string>& pinned_map_names() {
  static const std::vector<std::string> names{"pids",      "ports",     "unix_paths",   "conns",
                                              "ignored",   "events",    "drops",        "meta",
                                              ".bss",      "tls_calls", "tls_ssl_sock",
                                              "tls_stats", "bulk",      "local_clients",
                                              "listeners", "agent"};
  return names;
}

std::string map_pin_name(const std::string& map) {
  return !map.empty() && map[0] == '.' ? map.substr(1) : map;
}

std::string link_pin_name(const std::string& program) { return "link_" + program; }

uint64_t object_identifier(std::span<const uint8_t> elf, uint32_t ringbuf_bytes,
                           uint32_t wakeup_bytes, uint32_t bulk_head_bytes,
                           uint32_t bulk_tail_bytes, uint32_t hook_set) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  auto mix = [&h](uint8_t b) {
    h ^= b;
    h *= 0x100000001b3ull;  // FNV-1a 64 prime
  };
  for (uint8_t b : elf) mix(b);
  for (uint32_t v : {ringbuf_bytes, wakeup_bytes, bulk_head_bytes, bulk_tail_bytes, hook_set}) {
    for (int i = 0; i < 4; i++) mix(static_cast<uint8_t>(v >> (8 * i)));
  }
  return h;
}

PinCheck check_pins(const std::string& dir, uint64_t object_id,
                    const std::vector<std::string>& programs) {
  PinCheck out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;  // kAbsent
  bool empty = true;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
  }
  closedir(d);
  if (empty) return out;

  out.state = PinState::kStale;
  for (const std::string& m : pinned_map_names()) {
    if (!exists(dir + "/" + map_pin_name(m))) {
      out.reason = "map " + m + " is not pinned";
      return out;
    }
  }
  for (const std::string& p : programs) {
    if (!exists(dir + "/" + link_pin_name(p))) {
      out.reason = "program " + p + " has no pinned link";
      return out;
    }
  }
  Fd meta(bpf_obj_get((dir + "/meta").c_str()));
  if (meta.fd < 0) {
    out.reason = "cannot open the pinned meta map: " + errno_text(errno);
    return out;
  }
  uint32_t zero = 0;
  dbw_meta value{};
  if (bpf_map_lookup_elem(meta.fd, &zero, &value) != 0) {
    out.reason = "cannot read the pinned meta map: " + errno_text(errno);
    return out;
  }
  if (value.object_id != object_id) {
    out.reason = "pinned by another build or with other load settings (ring buffer size)";
    return out;
  }
  out.state = PinState::kResumable;
  return out;
}

Status remove_pins(const std::string& dir, int* removed) {
  int n = 0;
  if (removed) *removed = 0;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return Status::Ok();
    return Status::Error("cannot open " + dir + ": " + errno_text(errno));
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      names.emplace_back(e->d_name);
    }
  }
  closedir(d);
  // Links first: the programs stop before the maps they write go away.
  std::stable_partition(names.begin(), names.end(),
                        [](const std::string& s) { return s.rfind("link_", 0) == 0; });
  for (const std::string& name : names) {
    std::string path = dir + "/" + name;
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::Error("cannot remove " + path + ": " + errno_text(errno));
    }
    n++;
  }
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    return Status::Error("cannot remove " + dir + ": " + errno_text(errno));
  }
  if (removed) *removed = n;
  return Status::Ok();
}

Result<std::vector<TrackedSocket>> read_tracked_sockets(int conns_map_fd) {
  std::vector<TrackedSocket> out;
  uint64_t key = 0, next = 0;
  uint64_t* prev = nullptr;
  // Entries deleted while we walk restart the walk from the first key
  // (BPF_MAP_GET_NEXT_KEY semantics); the bound keeps that finite.
  for (size_t guard = 0; guard < (1u << 20); guard++) {
    if (bpf_map_get_next_key(conns_map_fd, prev, &next) != 0) {
      if (errno == ENOENT) return out;
      return Status::Error("walking the conns map: " + errno_text(errno));
    }
    key = next;
    prev = &key;
    dbw_conn_state st{};
    if (bpf_map_lookup_elem(conns_map_fd, &key, &st) != 0) continue;  // closed meanwhile
    TrackedSocket t;
    t.sock_ino = key;
    t.conn_id = st.conn_id;
    t.server_port = st.server_port;
    t.family = st.family;
    t.offset[0] = st.offset[0];
    t.offset[1] = st.offset[1];
    out.push_back(t);
  }
  return out;
}

Result<std::vector<uint16_t>> read_watched_ports(int ports_map_fd) {
  std::vector<uint16_t> out;
  for (uint32_t port = 1; port <= 65535; port++) {
    uint8_t v = 0;
    if (bpf_map_lookup_elem(ports_map_fd, &port, &v) != 0) {
      return Status::Error("reading the ports map: " + errno_text(errno));
    }
    if (v) out.push_back(static_cast<uint16_t>(port));
  }
  return out;
}

}  // namespace dbwarden::capture
