// SPDX-License-Identifier: Apache-2.0
//
// Pinning the capture state in bpffs so that it outlives the agent process.
//
// A pin directory (default /sys/fs/bpf/dbwarden) holds the state maps (one
// file per map, named after it) and one pinned link per program
// ("link_<program>"). While the links are pinned the programs stay attached and
// keep filling the pinned ring buffer; a restarted agent that finds its own
// pins reuses the maps and does not attach again (a second attach would emit
// every record twice). Pins made by another build, or with other load-time
// settings, or incomplete, are removed and the agent starts fresh.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace dbwarden::capture {

inline constexpr const char* kDefaultPinDir = "/sys/fs/bpf/dbwarden";

// The maps whose content must survive a restart, and that the programs of
// both generations (pinned syscall programs, freshly attached TLS uprobes)
// share. `scratch` (per-CPU work space) and the read-only settings are not state.
const std::vector<std::string>& pinned_map_names();
// The file a map is pinned as: its name, without the leading '.' of the
// global-data maps (".bss" holds the tracked-pid bitmap).
std::string map_pin_name(const std::string& map);
std::string link_pin_name(const std::string& program);

// Identifies the BPF object and every setting fixed at load (ring buffer
// size, wake-up mark, which data hooks are loaded): pins carrying another
// identifier cannot be reused.
// FNV-1a 64: a change detector, not a security boundary (bpffs is root-only).
uint64_t object_identifier(std::span<const uint8_t> elf, uint32_t ringbuf_bytes,
                           uint32_t wakeup_bytes, uint32_t bulk_head_bytes = 0,
                           uint32_t bulk_tail_bytes = 0, uint32_t hook_set = 0);

enum class PinState {
  kAbsent,     // no pin directory, or an empty one: start fresh
  kResumable,  // every map and link pinned, same identifier: resume
  kStale,      // something there but not reusable (see reason): remove, start fresh
};
struct PinCheck {
  PinState state = PinState::kAbsent;
  std::string reason;  // for kStale: what did not match
};
PinCheck check_pins(const std::string& dir, uint64_t object_id,
                    const std::vector<std::string>& programs);

// Removes every pin in `dir` and the directory itself: the programs detach
// and the maps are freed once no process holds them. Idempotent. `removed`
// (optional) receives the number of pins removed.
Status remove_pins(const std::string& dir, int* removed = nullptr);

// A socket the pinned programs track: one entry of the `conns` map.
struct TrackedSocket {
  uint64_t sock_ino = 0;
  uint64_t conn_id = 0;
  uint16_t server_port = 0;
  uint8_t family = 0;           // enum dbw_sock_family
  uint64_t offset[2] = {0, 0};  // bytes seen so far per enum dbw_direction
};
// Reads the whole `conns` map (by fd).
Result<std::vector<TrackedSocket>> read_tracked_sockets(int conns_map_fd);

// Every key of the `ports` array map whose value is non-zero.
Result<std::vector<uint16_t>> read_watched_ports(int ports_map_fd);

}  // namespace dbwarden::capture
