// SPDX-License-Identifier: Apache-2.0
//
// The floor programs of bpf/io_floor.bpf.c, loaded for one of bench_bpf_io_cost's floor
// conditions (or bench_bpf_floor_live's): one pair of programs on the capture's two socket
// tracepoints, its ring and a consumer thread that drains it like the agent (poll every
// 100 ms) and counts what it carried, so the bench can check the ring against the bytes
// exchanged.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io_floor.h"
#include "io_floor.skel.h"
#include "thread_cpu.h"

namespace dbwarden::bench {

class FloorCapture {
 public:
  enum class Kind { kEmpty, kMinimalNoTimestamp, kMinimal };

  // Loads and attaches the pair of `kind` with a ring of `ring_bytes`; exits on failure
  // (a bench: nothing to recover).
  FloorCapture(Kind kind, uint32_t ring_bytes) {
    skel_ = io_floor_bpf__open();
    if (!skel_) fail("open");
    const char* pair = kind == Kind::kEmpty                ? "floor_empty_"
                       : kind == Kind::kMinimalNoTimestamp ? "floor_nots_"
                                                           : "floor_min_";
    bpf_program* p = nullptr;
    while ((p = bpf_object__next_program(skel_->obj, p))) {
      const bool mine = std::strncmp(bpf_program__name(p), pair, std::strlen(pair)) == 0;
      if (bpf_program__set_autoload(p, mine) != 0) fail("set_autoload");
    }
    if (bpf_map__set_max_entries(skel_->maps.floor_events, ring_bytes) != 0) fail("ring size");
    if (io_floor_bpf__load(skel_) != 0) fail("load");
    if (io_floor_bpf__attach(skel_) != 0) fail("attach");
    ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.floor_events), &FloorCapture::on_record, this,
                             nullptr);
    if (!ring_) fail("ring_buffer__new");
    consumer_ = std::thread([this] {
      while (!stop_.load()) {
        // The programs never wake the reader (as the capture's, below its backlog mark):
        // wait out the timeout, then read what is there.
        const int n = ring_buffer__poll(ring_, 100);
        if ((n < 0 && n != -EINTR) || ring_buffer__consume(ring_) < 0) fail("reading the ring");
        consumer_cpu_ns.store(thread_cpu_ns());
      }
    });
  }
  FloorCapture(const FloorCapture&) = delete;
  FloorCapture& operator=(const FloorCapture&) = delete;
  ~FloorCapture() {
    stop_ = true;
    consumer_.join();
    ring_buffer__free(ring_);
    io_floor_bpf__destroy(skel_);
  }

  // Sets the process's bit in the floor's tracked-pid set (atomic: as the agent does).
  void track(uint32_t tgid) {
    __atomic_fetch_or(&skel_->bss->floor_pid_bits[(tgid >> 6) & 0xffffu], 1ULL << (tgid & 63),
                      __ATOMIC_SEQ_CST);
  }
  // Clears it (bench_bpf_floor_live: a tracked process ended, its pid may be reused).
  void untrack(uint32_t tgid) {
    __atomic_fetch_and(&skel_->bss->floor_pid_bits[(tgid >> 6) & 0xffffu], ~(1ULL << (tgid & 63)),
                       __ATOMIC_SEQ_CST);
  }

  // (name, run count, run time ns) of the loaded programs.
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> stats() const {
    std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> out;
    bpf_program* p = nullptr;
    while ((p = bpf_object__next_program(skel_->obj, p))) {
      const int fd = bpf_program__fd(p);
      if (fd < 0) continue;  // not this condition's pair
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
      out.push_back({bpf_program__name(p), {info.run_cnt, info.run_time_ns}});
    }
    return out;
  }

  std::atomic<uint64_t> records{0}, bytes{0}, gaps{0};
  std::atomic<double> consumer_cpu_ns{0};

 private:
  [[noreturn]] static void fail(const char* what) {
    std::fprintf(stderr, "bench_bpf_io_cost: floor programs: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
  }
  // A record whose copy came short of what the call moved (up to the slot) is a gap.
  static int on_record(void* ctx, void* data, size_t size) {
    auto* self = static_cast<FloorCapture*>(ctx);
    if (size < sizeof(dbw_floor_event)) return 0;
    const auto* e = static_cast<const dbw_floor_event*>(data);
    const uint32_t want = e->length < DBW_FLOOR_BYTES ? e->length : DBW_FLOOR_BYTES;
    self->records++;
    self->bytes += e->captured;
    if (e->captured != want) self->gaps++;
    return 0;
  }

  io_floor_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread consumer_;
};

}  // namespace dbwarden::bench
