// SPDX-License-Identifier: Apache-2.0
#include "capture/capture.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dbwarden.skel.h"

namespace dbwarden::capture {
namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

// libbpf prints through this; keep its warnings, drop its debug chatter.
int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  return vfprintf(stderr, fmt, args);
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

Status ensure_tracefs() {
  if (path_exists("/sys/kernel/tracing/events") ||
      path_exists("/sys/kernel/debug/tracing/events")) {
    return Status::Ok();
  }
  return Status::Error(
      "tracefs is not mounted: run `mount -t tracefs tracefs /sys/kernel/tracing` (`make run` "
      "does this; under systemd, sys-kernel-tracing.mount does)");
}

// TLS uprobes are attached per libssl file by TlsAttacher, never by the
// skeleton, and so never pinned: a resumed agent loads and attaches them again
// (they share the pinned maps with the pinned syscall programs).
bool is_uprobe(bpf_program* p) {
  const std::string_view section = bpf_program__section_name(p);
  return section.rfind("uprobe", 0) == 0 || section.rfind("uretprobe", 0) == 0;
}

// The programs the skeleton attaches, whose links are pinned (choose_programs
// turned the others off).
std::vector<std::string> pinned_program_names(bpf_object* obj) {
  std::vector<std::string> out;
  bpf_program* p = nullptr;
  while ((p = bpf_object__next_program(obj, p))) {
    if (!is_uprobe(p) && bpf_program__autoload(p)) out.emplace_back(bpf_program__name(p));
  }
  return out;
}

uint64_t identifier(const Options& options, DataHooks hooks) {
  size_t size = 0;
  const void* elf = dbwarden_bpf__elf_bytes(&size);
  return object_identifier(std::span(static_cast<const uint8_t*>(elf), size), options.ringbuf_bytes,
                           options.wakeup_bytes, options.bulk_head_bytes, options.bulk_tail_bytes,
                           static_cast<uint32_t>(hooks));
}

// Whether the running kernel has the raw tracepoints `names` (tp_btf programs
// attach by their BTF type; a missing one fails the whole object's load).
bool kernel_has_raw_tracepoints(std::initializer_list<const char*> names) {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return false;
  bool found = true;
  for (const char* name : names) {
    found = found && btf__find_by_name_kind(vmlinux, (std::string("btf_trace_") + name).c_str(),
                                            BTF_KIND_TYPEDEF) > 0;
  }
  btf__free(vmlinux);
  return found;
}

// The per-syscall data programs the socket tracepoints make redundant.
bool is_syscall_data_fallback(std::string_view name) {
  for (const char* n :
       {"dbw_sys_read", "dbw_sys_write", "dbw_sys_readv", "dbw_sys_writev", "dbw_sys_recvfrom",
        "dbw_sys_sendto", "dbw_sys_recvmsg", "dbw_sys_sendmsg"}) {
    if (name == n) return true;
  }
  return false;
}

// Before load: the data hooks (bpf/io_hooks.bpf.h) for this kernel, and no
// program for a syscall tracepoint the kernel does not have (its attach would
// fail the agent's start; the calls it would see are named on stderr instead).
Result<DataHooks> choose_programs(dbwarden_bpf* skel, DataHooks wanted) {
  const bool socket_tps = kernel_has_raw_tracepoints({"sock_send_length", "sock_recv_length"});
  if (wanted == DataHooks::kSocket && !socket_tps) {
    return Status::Error(
        "the kernel has no sock_send_length/sock_recv_length tracepoints (Linux >= 6.3 with "
        "BTF): use the per-syscall data hooks");
  }
  const DataHooks hooks =
      wanted == DataHooks::kSyscall || !socket_tps ? DataHooks::kSyscall : DataHooks::kSocket;
  const std::string events = path_exists("/sys/kernel/tracing/events")
                                 ? "/sys/kernel/tracing/events/"
                                 : "/sys/kernel/debug/tracing/events/";
  bpf_program* p = nullptr;
  while ((p = bpf_object__next_program(skel->obj, p))) {
    const std::string_view name = bpf_program__name(p);
    const std::string_view section = bpf_program__section_name(p);
    bool load = true;
    if (hooks == DataHooks::kSocket) {
      load = !is_syscall_data_fallback(name);
    } else if (section.rfind("tp_btf/sock_", 0) == 0) {
      load = false;
    }
    constexpr std::string_view kTracepoint = "tracepoint/";
    if (load && section.rfind(kTracepoint, 0) == 0) {
      const std::string event(section.substr(kTracepoint.size()));
      if (!path_exists(events + event)) {
        std::fprintf(stderr,
                     "dbwarden: this kernel has no tracepoint %s: those system calls are not "
                     "captured\n",
                     event.c_str());
        load = false;
      }
    }
    if (!load) bpf_program__set_autoload(p, false);
  }
  return hooks;
}

// Before load: decide between resuming and starting fresh, and point libbpf's
// maps at their pins (it reuses a pinned map, or creates and pins it). When
// resuming, the programs are not loaded at all: the pinned ones run on.
enum class PinMode { kUnpinned, kFresh, kResume };

Result<PinMode> prepare_pins(dbwarden_bpf* skel, const Options& options, DataHooks hooks) {
  const std::string& dir = options.pin_dir;
  std::vector<std::string> programs = pinned_program_names(skel->obj);
  PinCheck check = check_pins(dir, identifier(options, hooks), programs);
  if (check.state == PinState::kStale) {
    std::fprintf(stderr, "dbwarden: removing stale BPF pins in %s: %s\n", dir.c_str(),
                 check.reason.c_str());
    if (Status s = remove_pins(dir); !s.ok()) return s;
  }
  bool resume = check.state == PinState::kResumable;
  if (!resume && mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    // Capture matters more than surviving a restart: go on unpinned, loudly.
    std::fprintf(stderr,
                 "dbwarden: cannot create the BPF pin directory %s (%s; is bpffs mounted at "
                 "/sys/fs/bpf and writable?): capturing without pins, a restart will not "
                 "resume\n",
                 dir.c_str(), errno_text(errno).c_str());
    return PinMode::kUnpinned;
  }
  for (const std::string& name : pinned_map_names()) {
    bpf_map* map = bpf_object__find_map_by_name(skel->obj, name.c_str());
    if (!map) return Status::Error("BPF object has no map " + name);
    if (int err = bpf_map__set_pin_path(map, (dir + "/" + map_pin_name(name)).c_str())) {
      return Status::Error("pinning map " + name + ": " + errno_text(err));
    }
  }
  if (resume) {
    bpf_program* p = nullptr;
    while ((p = bpf_object__next_program(skel->obj, p))) {
      if (!is_uprobe(p)) bpf_program__set_autoload(p, false);
    }
  }
  return resume ? PinMode::kResume : PinMode::kFresh;
}

// A fresh start: stamp the pins with the object's identifier and start
// connection ids at 1, before any program can run.
Status init_meta(dbwarden_bpf* skel, const Options& options, DataHooks hooks) {
  uint32_t zero = 0;
  dbw_meta meta{};
  meta.object_id = identifier(options, hooks);
  meta.next_conn_id = 1;
  if (bpf_map__update_elem(skel->maps.meta, &zero, sizeof(zero), &meta, sizeof(meta), BPF_ANY)) {
    return Status::Error("writing the meta map: " + errno_text(errno));
  }
  return Status::Ok();
}

Status pin_links(dbwarden_bpf* skel, const std::string& dir) {
  for (int i = 0; i < skel->skeleton->prog_cnt; i++) {
    bpf_link* link = *skel->skeleton->progs[i].link;
    std::string path = dir + "/" + link_pin_name(skel->skeleton->progs[i].name);
    if (!link) continue;
    if (int err = bpf_link__pin(link, path.c_str())) {
      Status s = Status::Error("pinning " + path + ": " + errno_text(err));
      (void)remove_pins(dir);  // incomplete pins would only be removed at the next start
      return s;
    }
  }
  return Status::Ok();
}

}  // namespace

Status validate_bulk_bound(uint32_t head_bytes, uint32_t tail_bytes) {
  const std::string max = std::to_string(DBW_BULK_MAX_BYTES);
  if (head_bytes > DBW_BULK_MAX_BYTES) {
    return Status::Error("--bulk-head-bytes must be at most " + max + ", got " +
                         std::to_string(head_bytes));
  }
  if (tail_bytes > DBW_BULK_MAX_BYTES) {
    return Status::Error("--bulk-tail-bytes must be at most " + max + ", got " +
                         std::to_string(tail_bytes));
  }
  // The tail must hold CommandComplete + ReadyForQuery (and an ErrorResponse
  // if it fits); without one the decoder could never recover a completion.
  if (tail_bytes == 0 && head_bytes != 0) {
    return Status::Error(
        "--bulk-head-bytes needs --bulk-tail-bytes: set both to 0 to turn the bulk-data bound "
        "off");
  }
  if (tail_bytes != 0 && tail_bytes < 64) {
    return Status::Error("--bulk-tail-bytes must be 0 (off) or at least 64, got " +
                         std::to_string(tail_bytes));
  }
  return Status::Ok();
}

const char* drop_reason_name(int reason) {
  switch (reason) {
    case DBW_DROP_RINGBUF_FULL: return "ringbuf_full";
    case DBW_DROP_TRUNCATED: return "truncated";
    case DBW_DROP_CONN_TABLE_FULL: return "conn_table_full";
    case DBW_DROP_READ_FAILED: return "read_failed";
    case DBW_DROP_COMPAT_SYSCALL:
      return "compat_syscall";
    default: return "unknown";
  }
}

const char* data_hooks_name(DataHooks hooks) {
  switch (hooks) {
    case DataHooks::kAuto:
      return "auto";
    case DataHooks::kSocket:
      return "socket";
    case DataHooks::kSyscall:
      return "syscall";
  }
  return "unknown";
}

struct BpfCapture::Impl {
  dbwarden_bpf* skel = nullptr;
  bool resumed = false;
  DataHooks hooks = DataHooks::kAuto;
  ring_buffer* ring = nullptr;
  EventHandler* handler = nullptr;
  std::unique_ptr<TlsAttacher> tls;
  ~Impl() {
    tls.reset();  // detach the uprobes before the object goes
    ring_buffer__free(ring);
    dbwarden_bpf__destroy(skel);
  }
};

BpfCapture::BpfCapture(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpfCapture::~BpfCapture() = default;

Result<std::unique_ptr<BpfCapture>> BpfCapture::Open(const Options& options,
                                                     EventHandler& handler) {
  libbpf_set_print(libbpf_print);
  if (Status s = ensure_tracefs(); !s.ok()) return s;
  if (options.ringbuf_bytes < 4096 || (options.ringbuf_bytes & (options.ringbuf_bytes - 1))) {
    return Status::Error("ring buffer size must be a power of two of at least 4096 bytes, got " +
                         std::to_string(options.ringbuf_bytes));
  }

  auto impl = std::make_unique<Impl>();
  impl->handler = &handler;
  impl->skel = dbwarden_bpf__open();
  if (!impl->skel) {
    return Status::Error("opening the BPF object failed: " + errno_text(errno));
  }
  impl->skel->rodata->wakeup_bytes = options.wakeup_bytes;
  if (Status s = validate_bulk_bound(options.bulk_head_bytes, options.bulk_tail_bytes); !s.ok()) {
    return s;
  }
  impl->skel->rodata->bulk_head_bytes = options.bulk_head_bytes;
  impl->skel->rodata->bulk_tail_bytes = options.bulk_tail_bytes;
  if (int err = bpf_map__set_max_entries(impl->skel->maps.events, options.ringbuf_bytes)) {
    return Status::Error("sizing the ring buffer failed: " + errno_text(err));
  }
  auto hooks = choose_programs(impl->skel, options.data_hooks);
  if (!hooks.ok()) return hooks.status();
  impl->hooks = hooks.value();
  bool pinned = false;
  if (!options.pin_dir.empty()) {
    auto mode = prepare_pins(impl->skel, options, impl->hooks);
    if (!mode.ok()) return mode.status();
    impl->resumed = mode.value() == PinMode::kResume;
    pinned = mode.value() != PinMode::kUnpinned;
  }
  if (int err = dbwarden_bpf__load(impl->skel)) {
    return Status::Error("loading the BPF programs failed (" + errno_text(err) +
                         "); the kernel needs BTF (/sys/kernel/btf/vmlinux) and the agent "
                         "CAP_BPF/CAP_SYS_ADMIN");
  }
  {
    // This agent's own sockets are never a server's, nor are other network
    // namespaces' (bpf/dbwarden.bpf.c `agent`); written before attaching, and
    // again on a resume (a new agent, a new pid).
    uint32_t zero = 0;
    dbw_agent self{};
    self.tgid = static_cast<uint32_t>(getpid());
    struct stat ns {};
    if (stat("/proc/self/ns/net", &ns) != 0) {
      return Status::Error("reading the agent's network namespace: " + errno_text(errno));
    }
    self.netns_ino = static_cast<uint32_t>(ns.st_ino);
    if (bpf_map__update_elem(impl->skel->maps.agent, &zero, sizeof(zero), &self, sizeof(self),
                             BPF_ANY)) {
      return Status::Error("writing the agent map: " + errno_text(errno));
    }
  }
  if (!impl->resumed) {
    // Unpinned, the counter starts at 1 too: the meta map is always initialised.
    if (Status s = init_meta(impl->skel, options, impl->hooks); !s.ok()) return s;
    if (int err = dbwarden_bpf__attach(impl->skel)) {
      return Status::Error("attaching the BPF programs failed: " + errno_text(err));
    }
    if (pinned) {
      if (Status s = pin_links(impl->skel, options.pin_dir); !s.ok()) return s;
    }
  }
  auto tls = TlsAttacher::Create(
      impl->skel->obj, [skel = impl->skel](uint32_t pid) {
        uint8_t v = 0;
        return bpf_map__lookup_elem(skel->maps.pids, &pid, sizeof(pid), &v, sizeof(v), 0) == 0;
      });
  if (!tls.ok()) return tls.status();
  impl->tls = std::move(tls.value());
  auto capture = std::unique_ptr<BpfCapture>(new BpfCapture(std::move(impl)));
  if (!options.record_path.empty()) {
    auto rec = RecordingWriter::Create(options.record_path);
    if (!rec.ok()) return rec.status();
    capture->recording_ = std::move(rec.value());
  }
  capture->impl_->ring = ring_buffer__new(bpf_map__fd(capture->impl_->skel->maps.events),
                                          &BpfCapture::dispatch, capture.get(), nullptr);
  if (!capture->impl_->ring) {
    return Status::Error("opening the ring buffer failed: " + errno_text(errno));
  }
  return capture;
}

// What dispatch() returns when poll()'s budget is spent: libbpf then stores
// the consumer position past that record and returns this from its poll and
// consume calls (no record is lost or read twice). No errno of epoll_wait(2).
constexpr int kBudgetSpent = -ECANCELED;

int BpfCapture::dispatch(void* ctx, void* data, size_t size) {
  auto* self = static_cast<BpfCapture*>(ctx);
  self->records_++;
  self->ring_bytes_ += (size + 8 + 7) & ~size_t{7};  // BPF_RINGBUF_HDR_SZ, 8-byte aligned
  if (self->recording_) self->recording_->write(data, size);
  if (!capture::dispatch(data, size, *self->impl_->handler)) {
    self->malformed_++;
  } else if (static_cast<const dbw_event_header*>(data)->kind == DBW_EV_DATA) {
    self->payload_bytes_ += static_cast<const dbw_data_event*>(data)->captured;
  }
  return --self->budget_left_ > 0 ? 0 : kBudgetSpent;
}

Status BpfCapture::watch_port(uint16_t port, bool bulk_bound) {
  uint32_t key = port;
  uint8_t on = DBW_PORT_WATCHED | (bulk_bound ? DBW_PORT_BULK_BOUND : 0);
  if (bpf_map__update_elem(impl_->skel->maps.ports, &key, sizeof(key), &on, sizeof(on), BPF_ANY)) {
    return Status::Error("watching port " + std::to_string(port) + ": " + errno_text(errno));
  }
  return Status::Ok();
}

Status BpfCapture::watch_unix_path(const std::string& path, uint16_t port) {
  dbw_unix_path key{};
  if (path.size() >= sizeof(key.path)) {
    return Status::Error("unix socket path too long: " + path);
  }
  std::memcpy(key.path, path.data(), path.size());
  if (bpf_map__update_elem(impl_->skel->maps.unix_paths, &key, sizeof(key), &port, sizeof(port),
                           BPF_ANY)) {
    return Status::Error("watching " + path + ": " + errno_text(errno));
  }
  return Status::Ok();
}

Status BpfCapture::track_process(uint32_t pid) { return track(pid, DBW_PID_SERVER, BPF_ANY); }

Status BpfCapture::track_client_process(uint32_t pid) {
  // BPF_NOEXIST: a server process stays one (its fork children inherit the kind).
  Status s = track(pid, DBW_PID_CLIENT, BPF_NOEXIST);
  return !s.ok() && is_tracked(pid) ? Status::Ok() : s;
}

Status BpfCapture::track(uint32_t pid, uint8_t kind, uint64_t flags) {
  if (bpf_map__update_elem(impl_->skel->maps.pids, &pid, sizeof(pid), &kind, sizeof(kind), flags)) {
    return Status::Error("tracking pid " + std::to_string(pid) + ": " + errno_text(errno));
  }
  // The bit the programs test (pid_bits in bpf/dbwarden.bpf.c), in the mmapped .bss; atomic,
  // because the fork hook may set a neighbouring pid's bit in the same word meanwhile.
  auto& bits = impl_->skel->bss->pid_bits;
  __atomic_fetch_or(&bits[(pid >> 6) & (std::size(bits) - 1)], uint64_t{1} << (pid & 63),
                    __ATOMIC_SEQ_CST);
  return Status::Ok();
}

bool BpfCapture::is_tracked(uint32_t pid) const {
  uint8_t v = 0;
  return bpf_map__lookup_elem(impl_->skel->maps.pids, &pid, sizeof(pid), &v, sizeof(v), 0) == 0;
}

std::optional<dbw_client_info> BpfCapture::local_client(const dbw_client_key& key) const {
  dbw_client_info info{};
  if (bpf_map__lookup_elem(impl_->skel->maps.local_clients, &key, sizeof(key), &info, sizeof(info),
                           0) != 0) {
    return std::nullopt;
  }
  return info;
}

Status BpfCapture::unwatch_port(uint16_t port) {
  uint32_t key = port;
  uint8_t off = 0;
  if (bpf_map__update_elem(impl_->skel->maps.ports, &key, sizeof(key), &off, sizeof(off),
                           BPF_ANY)) {
    return Status::Error("unwatching port " + std::to_string(port) + ": " + errno_text(errno));
  }
  return Status::Ok();
}

Status BpfCapture::unwatch_unix_path(const std::string& path) {
  dbw_unix_path key{};
  if (path.size() >= sizeof(key.path)) return Status::Ok();  // never watched
  std::memcpy(key.path, path.data(), path.size());
  if (bpf_map__delete_elem(impl_->skel->maps.unix_paths, &key, sizeof(key), 0) &&
      errno != ENOENT) {
    return Status::Error("unwatching " + path + ": " + errno_text(errno));
  }
  return Status::Ok();
}

Result<std::vector<uint16_t>> BpfCapture::watched_ports() const {
  return read_watched_ports(bpf_map__fd(impl_->skel->maps.ports));
}

bool BpfCapture::resumed() const { return impl_->resumed; }

DataHooks BpfCapture::data_hooks() const { return impl_->hooks; }

Result<std::vector<TrackedSocket>> BpfCapture::tracked_sockets() const {
  return read_tracked_sockets(bpf_map__fd(impl_->skel->maps.conns));
}

void BpfCapture::forget_socket(uint64_t sock_ino) {
  bpf_map__delete_elem(impl_->skel->maps.conns, &sock_ino, sizeof(sock_ino), 0);
}

bool BpfCapture::mute_socket(uint64_t sock_ino) {
  // Read, set, write back: an offset the programs advance meanwhile is lost, which is
  // harmless, as nothing of this socket is copied from now on.
  dbw_conn_state st{};
  const int fd = bpf_map__fd(impl_->skel->maps.conns);
  if (bpf_map_lookup_elem(fd, &sock_ino, &st) != 0) return false;
  st.muted = 1;
  return bpf_map_update_elem(fd, &sock_ino, &st, BPF_EXIST) == 0;
}

Result<int> BpfCapture::poll(int timeout_ms) {
  // libbpf's ring_buffer__poll() and __consume() read until the ring is empty,
  // so a producer as fast as this thread would keep them from returning.
  const uint64_t before = records_;
  budget_left_ = kPollBudget;
  // The programs submit with BPF_RB_NO_WAKEUP (a wake-up per record would cost
  // more than the capture), so epoll only fires past wakeup_bytes of backlog.
  // Wait for that or the timeout, then consume whatever is there either way.
  int n = ring_buffer__poll(impl_->ring, timeout_ms);
  if (n < 0 && n != -EINTR && n != kBudgetSpent) {
    return Status::Error("reading the ring buffer failed: " + errno_text(n));
  }
  if (n != kBudgetSpent) {
    const int m = ring_buffer__consume(impl_->ring);
    if (m < 0 && m != kBudgetSpent) {
      return Status::Error("reading the ring buffer failed: " + errno_text(m));
    }
  }
  return static_cast<int>(records_ - before);
}

TlsAttacher& BpfCapture::tls() { return *impl_->tls; }

DropCounts BpfCapture::drops() const {
  DropCounts out;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t reason = 0; reason < DBW_DROP_MAX; reason++) {
    if (bpf_map__lookup_elem(impl_->skel->maps.drops, &reason, sizeof(reason), per_cpu.data(),
                             per_cpu.size() * sizeof(uint64_t), 0) == 0) {
      for (uint64_t v : per_cpu) out.by_reason[reason] += v;
    }
  }
  out.malformed_records = malformed_;
  return out;
}

BulkCounts BpfCapture::bulk() const {
  BulkCounts out;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  uint64_t* fields[DBW_BULK_STAT_MAX] = {&out.skipped_bytes, &out.skipped_records};
  for (uint32_t stat = 0; stat < DBW_BULK_STAT_MAX; stat++) {
    if (bpf_map__lookup_elem(impl_->skel->maps.bulk, &stat, sizeof(stat), per_cpu.data(),
                             per_cpu.size() * sizeof(uint64_t), 0) == 0) {
      for (uint64_t v : per_cpu) *fields[stat] += v;
    }
  }
  return out;
}

std::vector<ProgramStats> BpfCapture::program_stats() const {
  std::vector<ProgramStats> out;
  bpf_program* p = nullptr;
  while ((p = bpf_object__next_program(impl_->skel->obj, p))) {
    const int fd = bpf_program__fd(p);
    if (fd < 0) continue;  // not loaded: another kernel's hook, or a resume
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
    out.push_back({bpf_program__name(p), info.run_cnt, info.run_time_ns});
  }
  return out;
}

std::optional<BpfCapture::StepProfile> BpfCapture::step_profile() const {
  bpf_map* map = bpf_object__find_map_by_name(impl_->skel->obj, "step_prof");
  const int ncpu = libbpf_num_possible_cpus();
  if (!map || ncpu <= 0) return std::nullopt;
  // The map's value per CPU: the last mark, then ns[] and count[] (step_profile.bpf.h).
  constexpr size_t kWords = 1 + 2 * DBW_PROF_STEPS;
  std::vector<uint64_t> values(static_cast<size_t>(ncpu) * kWords);
  uint32_t zero = 0;
  if (bpf_map__lookup_elem(map, &zero, sizeof(zero), values.data(),
                           values.size() * sizeof(uint64_t), 0) != 0) {
    return std::nullopt;
  }
  StepProfile out;
  for (size_t cpu = 0; cpu < static_cast<size_t>(ncpu); cpu++) {
    const uint64_t* v = &values[cpu * kWords];
    for (size_t i = 0; i < DBW_PROF_STEPS; i++) {
      out.ns[i] += v[1 + i];
      out.count[i] += v[1 + DBW_PROF_STEPS + i];
    }
  }
  return out;
}

}  // namespace dbwarden::capture
