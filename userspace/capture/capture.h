// SPDX-License-Identifier: Apache-2.0
//
// Live capture: loads the BPF programs (bpf/dbwarden.bpf.c), tells them what to
// watch, and hands every ring-buffer record to an EventHandler. Nothing above
// this header knows what a skeleton, a map or a ring buffer is.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capture/pinning.h"
#include "capture/records.h"
#include "capture/tls_attach.h"
#include "common/status.h"
#include "dbwarden.h"

namespace dbwarden::capture {

// Which kernel hooks see the data system calls (bpf/io_hooks.bpf.h).
enum class DataHooks {
  kAuto,     // the socket tracepoints where the kernel has them (>= 6.3), else per syscall
  kSocket,   // sock_send_length/sock_recv_length: start only for socket I/O; fails without
  kSyscall,  // syscalls:sys_exit_{read,write,...}: start for every such call of any file
};
const char* data_hooks_name(DataHooks hooks);

struct Options {
  DataHooks data_hooks = DataHooks::kAuto;
  uint32_t ringbuf_bytes = 16u << 20;  // power of two
  uint32_t wakeup_bytes = 256u << 10;  // backlog that wakes the reader early
  // The bulk-data bound (bpf/dbwarden.bpf.c bulk_head_bytes): server-to-client
  // writes of ports watched with bulk_bound longer than head + tail keep only
  // their first `bulk_head_bytes` and last `bulk_tail_bytes`; the middle is a
  // DBW_DATA_BULK_SKIPPED record. bulk_tail_bytes 0: off. Each <= DBW_BULK_MAX_BYTES.
  uint32_t bulk_head_bytes = 1024;
  uint32_t bulk_tail_bytes = 1024;
  std::string record_path;             // non-empty: also write every record here
  // Non-empty: pin the state maps and the program links here (see
  // capture/pinning.h) and resume from pins a previous agent left.
  std::string pin_dir;
};

struct DropCounts {
  std::array<uint64_t, DBW_DROP_MAX> by_reason{};  // index: enum dbw_drop_reason
  uint64_t malformed_records = 0;  // records userspace could not interpret
};

// What the bulk-data bound left out (the kernel's per-CPU `bulk` map, summed).
struct BulkCounts {
  uint64_t skipped_bytes = 0;
  uint64_t skipped_records = 0;
};

// Checks the bound's settings; the error names the option to fix.
Status validate_bulk_bound(uint32_t head_bytes, uint32_t tail_bytes);

const char* drop_reason_name(int reason);

// One loaded program's run-time statistics. run_time_ns only grows while the kernel keeps
// statistics on (kernel.bpf_stats_enabled, or a BPF_ENABLE_STATS fd someone holds).
struct ProgramStats {
  std::string name;  // the program's name in bpf/: dbw_sock_recv, dbw_ssl_exit, ...
  uint64_t run_count = 0, run_time_ns = 0;
};

class BpfCapture {
 public:
  // Loads and attaches the programs. Fails with an actionable message (missing
  // privilege, no BTF, tracefs not mounted, ...).
  static Result<std::unique_ptr<BpfCapture>> Open(const Options& options, EventHandler& handler);
  ~BpfCapture();
  BpfCapture(const BpfCapture&) = delete;
  BpfCapture& operator=(const BpfCapture&) = delete;

  // `bulk_bound`: server-to-client bulk data of this port's connections is
  // bound (PostgreSQL only; see DBW_PORT_BULK_BOUND).
  Status watch_port(uint16_t port, bool bulk_bound = false);
  Status unwatch_port(uint16_t port);
  Status watch_unix_path(const std::string& path, uint16_t port);
  Status unwatch_unix_path(const std::string& path);
  // Ports the kernel watches now (pinned state may hold a previous run's).
  Result<std::vector<uint16_t>> watched_ports() const;
  // True when Open reused the pins of a previous agent (programs already attached).
  bool resumed() const;
  // The data hooks loaded (kSocket or kSyscall; a resumed agent: those it would load).
  DataHooks data_hooks() const;
  // The connections the kernel tracks now (after a resume: the previous agent's).
  Result<std::vector<TrackedSocket>> tracked_sockets() const;
  // A database server process: its sockets on watched ports are captured server side.
  Status track_process(uint32_t pid);
  // A local client of a remote database whose connection was open before capture
  // started (new ones are found by the connect(2) hook): its sockets to a watched
  // port on another host are captured client side from their next read or write.
  Status track_client_process(uint32_t pid);
  bool is_tracked(uint32_t pid) const;
  // The process that connect(2)ed the client end of a local connection to a
  // watched port or path, as the kernel saw it then; nullopt when no such
  // connect was seen (before capture started, or aged out).
  std::optional<dbw_client_info> local_client(const dbw_client_key& key) const;
  // Drops the kernel's state for a socket whose owner went away without close(2).
  void forget_socket(uint64_t sock_ino);
  // Stops copying a tracked socket's bytes (the enforcement proxy's upstream, which the
  // proxy records itself); its open and close still come. False when it is not tracked.
  bool mute_socket(uint64_t sock_ino);

  // Consumes ready records, waiting up to timeout_ms. Returns records handled:
  // at most kPollBudget, so that under a producer as fast as the consumer the
  // caller's loop still turns (metrics, watchdog, flushes); the rest waits for
  // the next call.
  static constexpr int kPollBudget = 16384;
  Result<int> poll(int timeout_ms);
  DropCounts drops() const;
  BulkCounts bulk() const;
  // The programs this agent loaded (none after a resume: the pinned ones are not its own).
  std::vector<ProgramStats> program_stats() const;
  // A measuring build's step profile (bpf/step_profile.bpf.h), summed over CPUs: ns and
  // count per enum dbw_prof_step. Empty when the programs were built without it.
  struct StepProfile {
    std::array<uint64_t, DBW_PROF_STEPS> ns{}, count{};
  };
  std::optional<StepProfile> step_profile() const;
  // libssl uprobes (bpf/tls.bpf.h): the agent calls tls().rescan() periodically.
  TlsAttacher& tls();
  uint64_t records() const { return records_; }
  uint64_t payload_bytes() const { return payload_bytes_; }
  // Ring-buffer space the consumed records took: each record's size plus the
  // ring's 8-byte record header, rounded up to 8 (kernel/bpf/ringbuf.c).
  uint64_t ring_bytes() const { return ring_bytes_; }

 private:
  struct Impl;
  explicit BpfCapture(std::unique_ptr<Impl> impl);
  static int dispatch(void* ctx, void* data, size_t size);
  Status track(uint32_t pid, uint8_t kind, uint64_t flags);  // kind: enum dbw_pid_kind
  std::unique_ptr<Impl> impl_;
  uint64_t records_ = 0;
  int budget_left_ = 0;  // of this poll(): dispatch() ends the ring's pass at 0
  uint64_t payload_bytes_ = 0;
  uint64_t ring_bytes_ = 0;
  uint64_t malformed_ = 0;
  std::unique_ptr<RecordingWriter> recording_;
};

}  // namespace dbwarden::capture
