// SPDX-License-Identifier: Apache-2.0
//
// Live capture: loads the BPF programs (bpf/dbwarden.bpf.c), tells them what to
// watch, and hands every ring-buffer record to an EventHandler. Nothing above
// this header knows what a skeleton, a map or a ring buffer is.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "capture/pinning.h"
#include "capture/records.h"
#include "capture/tls_attach.h"
#include "dbwarden.h"

namespace dbwarden::capture {

struct Options {
  uint32_t ringbuf_bytes = 16u << 20;  // power of two
  uint32_t wakeup_bytes = 256u << 10;  // backlog that wakes the reader early
  std::string record_path;             // non-empty: also write every record here
  // Non-empty: pin the state maps and the program links here (see
  // capture/pinning.h) and resume from pins a previous agent left.
  std::string pin_dir;
};

struct DropCounts {
  std::array<uint64_t, DBW_DROP_MAX> by_reason{};  // index: enum dbw_drop_reason
  uint64_t malformed_records = 0;  // records userspace could not interpret
};

const char* drop_reason_name(int reason);

class BpfCapture {
 public:
  // Loads and attaches the programs. Fails with an actionable message (missing
  // privilege, no BTF, tracefs not mounted, ...).
  static Result<std::unique_ptr<BpfCapture>> Open(const Options& options, EventHandler& handler);
  ~BpfCapture();
  BpfCapture(const BpfCapture&) = delete;
  BpfCapture& operator=(const BpfCapture&) = delete;

  Status watch_port(uint16_t port);
  Status unwatch_port(uint16_t port);
  Status watch_unix_path(const std::string& path, uint16_t port);
  Status unwatch_unix_path(const std::string& path);
  // Ports the kernel watches now (pinned state may hold a previous run's).
  Result<std::vector<uint16_t>> watched_ports() const;
  // True when Open reused the pins of a previous agent (programs already attached).
  bool resumed() const;
  // The connections the kernel tracks now (after a resume: the previous agent's).
  Result<std::vector<TrackedSocket>> tracked_sockets() const;
  // A database server process: its sockets on watched ports are captured server side.
  Status track_process(uint32_t pid);
  // A local client of a remote database whose connection was open before capture
  // started (new ones are found by the connect(2) hook): its sockets to a watched
  // port on another host are captured client side from their next read or write.
  Status track_client_process(uint32_t pid);
  bool is_tracked(uint32_t pid) const;
  // Drops the kernel's state for a socket whose owner went away without close(2).
  void forget_socket(uint64_t sock_ino);

  // Consumes ready records, waiting up to timeout_ms. Returns records handled.
  Result<int> poll(int timeout_ms);
  DropCounts drops() const;
  // libssl uprobes (bpf/tls.bpf.h): the agent calls tls().rescan() periodically.
  TlsAttacher& tls();
  uint64_t records() const { return records_; }
  uint64_t payload_bytes() const { return payload_bytes_; }

 private:
  struct Impl;
  explicit BpfCapture(std::unique_ptr<Impl> impl);
  static int dispatch(void* ctx, void* data, size_t size);
  Status track(uint32_t pid, uint8_t kind, uint64_t flags);  // kind: enum dbw_pid_kind
  std::unique_ptr<Impl> impl_;
  uint64_t records_ = 0;
  uint64_t payload_bytes_ = 0;
  uint64_t malformed_ = 0;
  std::unique_ptr<RecordingWriter> recording_;
};

}  // namespace dbwarden::capture
