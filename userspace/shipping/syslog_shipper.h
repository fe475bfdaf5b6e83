// SPDX-License-Identifier: Apache-2.0
//
// Ships audit records to a syslog collector: RFC 5424 messages (see
// syslog_frame.h) over TCP or TLS, one JSON record per message.
//
// Threads: on_statement (the decode thread) formats the record and appends it
// to an in-memory queue; it never waits for the network or the disk. A
// sender thread connects (backoff 100 ms doubling to 5 s), writes, and moves
// records to the on-disk spool (spool.h) while the collector is unreachable
// or slow, so the queue stays bounded.
//
// Order: records leave in on_statement order. The spool only ever holds
// records older than those in the queue: queued records move to its end
// (records already in flight keep counting as in flight there; none of the
// spool's records is unread while any queued record is in flight, because the
// sender reads the spool dry before it sends from the queue), and the sender
// empties the spool before it sends from the queue.
//
// Delivery is at-least-once. Syslog over TCP has no acknowledgements, so a
// record counts as delivered ("sent") only once the collector's TCP has
// acknowledged every byte written (SIOCOUTQ is 0) and the connection is
// still open confirm_delay later. When the connection drops before that,
// every unconfirmed record is written again after the reconnect, so records
// around a drop can arrive twice (counted in `resent`). A collector that
// acknowledged bytes at the TCP level, kept the connection open for
// confirm_delay and then lost them (e.g. SIGKILL before its own queue was
// written) loses them without our knowing: only an application-level
// acknowledgement (RELP) could close that window.
//
// Bounds and losses: the queue holds at most queue_max_bytes; with a spool,
// it is moved to disk when disconnected or past half of that bound. A record
// is dropped, and counted in `dropped`, when it finds the queue full (no
// spool, or the sender cannot keep up), when the spool is full (spool_max_bytes:
// the newest records are refused, so what is kept stays gap-free and ordered),
// or when the spool cannot be written. Records still queued at destruction
// go to the spool (or are counted dropped without one); a later Start with
// the same spool_dir sends them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/status.h"
#include "protocol/statement.h"
#include "shipping/connection.h"
#include "shipping/spool.h"
#include "shipping/syslog_frame.h"

namespace dbwarden::shipping {

struct SyslogOptions {
  std::string address;  // "HOST:PORT"
  bool tls = false;
  std::string ca_file;      // TLS: trust anchors; empty: system store
  std::string server_name;  // TLS: expected certificate name; empty: HOST
  std::string app_name = "dbwarden";
  std::string hostname;  // empty: gethostname()
  // 13 = "log audit" (RFC 5424 table 1): audit records belong there rather
  // than in daemon/auth logs; collectors can route on it. Severity is 6.
  int facility = 13;
  std::string spool_dir;  // empty: no spool (records beyond the queue are dropped)
  uint64_t spool_max_bytes = 256ull << 20;
  size_t queue_max_bytes = 16u << 20;
  // Tuning; the defaults suit a collector on a LAN.
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds write_timeout{5000};
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::milliseconds confirm_delay{300};
  size_t in_flight_max_bytes = 1u << 20;  // written but unconfirmed, at most
  uint64_t spool_segment_bytes = 4u << 20;
};

class SyslogShipper : public StatementSink {
 public:
  // Checks the options, opens (and resumes) the spool and starts the sender
  // thread. Does not wait for the collector: an unreachable one is retried.
  static Result<std::unique_ptr<SyslogShipper>> Start(const SyslogOptions& options,
                                                      int64_t realtime_offset_ns);
  ~SyslogShipper() override;  // stops the sender; unsent records go to the spool
  SyslogShipper(const SyslogShipper&) = delete;
  SyslogShipper& operator=(const SyslogShipper&) = delete;

  void on_statement(const Statement& statement) override;
  // Waits until every accepted record is confirmed delivered, or timeout.
  // The error says how many records are still unsent and why.
  Status flush(std::chrono::milliseconds timeout);

  struct Stats {
    uint64_t accepted = 0;        // on_statement calls
    uint64_t sent = 0;            // confirmed delivered, each record once
    uint64_t resent = 0;          // written again after a connection drop (possible duplicates)
    uint64_t spooled = 0;         // written to the spool
    uint64_t dropped = 0;         // lost: queue full, spool full or spool write error
    uint64_t reconnects = 0;      // successful connections after the first
    uint64_t connect_errors = 0;  // failed connection attempts
    uint64_t send_errors = 0;     // failed writes and connections found closed
    uint64_t spool_errors = 0;    // failed spool writes (their records are in dropped)
    uint64_t queue_bytes = 0;
    uint64_t queue_records = 0;
    uint64_t spool_bytes = 0;
    uint64_t spool_records = 0;
    uint64_t lag_ms = 0;  // age of the oldest record not yet confirmed; 0 when none
    bool connected = false;
  };
  // accepted == sent + dropped + queue_records + spool_records once idle,
  // except records resumed from a previous run's spool (counted in spool_records
  // and later sent, but never accepted).
  Stats stats() const;

 private:
  struct Item {
    std::string frame;
    int64_t enqueue_ms;
  };
  struct Checkpoint {
    std::chrono::steady_clock::time_point acked_at;
    uint64_t spool_records;
    size_t queue_records;
    size_t bytes;
  };

  SyslogShipper(const SyslogOptions& options, int64_t realtime_offset_ns);
  void sender_main();
  void try_connect();
  void drop_connection();
  void spill();
  void send_some();
  void confirm();
  void publish();
  bool idle_locked() const;

  const SyslogOptions options_;
  const int64_t realtime_offset_ns_;
  SyslogHeader header_;

  mutable std::mutex mu_;
  std::condition_variable wake_;  // the sender waits on it
  std::condition_variable idle_;  // flush() waits on it
  std::deque<Item> queue_;
  size_t queue_bytes_ = 0;
  bool stop_ = false;
  std::string last_error_;
  // Written by the sender under mu_ (read by flush/stats).
  size_t queue_sent_ = 0;  // queue_ prefix written but not confirmed
  uint64_t spool_inflight_ = 0;
  bool connected_ = false;

  // Sender thread only.
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Connection> conn_;
  bool ever_connected_ = false;
  std::chrono::steady_clock::time_point next_connect_{};
  std::chrono::milliseconds backoff_;
  std::optional<Checkpoint> checkpoint_;
  uint64_t resend_left_ = 0;
  size_t inflight_bytes_ = 0;  // written, not yet confirmed
  // The batch being written: its records already count as in flight. The
  // sender writes it in slices, so a collector with a closed window does not
  // keep it from spilling the queue.
  std::string pending_;
  size_t pending_off_ = 0;
  std::chrono::steady_clock::time_point last_progress_{};
  void write_pending();

  std::atomic<uint64_t> accepted_{0}, sent_{0}, resent_{0}, spooled_{0}, dropped_{0},
      reconnects_{0}, connect_errors_{0}, send_errors_{0}, spool_errors_{0};
  std::atomic<uint64_t> spool_bytes_{0}, spool_records_{0};
  std::atomic<int64_t> spool_oldest_ms_{0};

  std::thread sender_;
};

}  // namespace dbwarden::shipping
