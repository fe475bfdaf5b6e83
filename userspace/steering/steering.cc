// SPDX-License-Identifier: Apache-2.0
//
// Loading, attaching and pinning the steering programs, and the map updates
// the proxy makes. Every map operation goes through a pinned map's fd, so a
// Steering made by attach() and one made by open_pinned() behave the same.
#include "steering/steering.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/unique_fd.h"
#include "steer.h"
#include "steer.skel.h"
#include "steering/path_key.h"

namespace dbwarden::steering {
namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

const std::vector<std::string>& map_names() {
  static const std::vector<std::string> names{"steer_tcp",   "steer_socks",  "steer_exempt_tcp",
                                              "steer_unix",  "steer_origin", "steer_exempt_unix",
                                              "steer_state", "steer_stats",  "steer_locks"};
  return names;
}
// One pinned link per program: while it is pinned the program stays attached.
const std::vector<std::string>& link_names() {
  static const std::vector<std::string> names{"link_tcp", "link_unix_connect",
                                              "link_unix_getpeername"};
  return names;
}

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// FNV-1a 64 over the BPF object: pins from another build (other map layouts)
// are not reused. A change detector, not a security boundary (bpffs is root's).
uint64_t object_identifier() {
  size_t size = 0;
  const auto* bytes = static_cast<const uint8_t*>(steer_bpf__elf_bytes(&size));
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; i++) {
    h ^= bytes[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

// The cgroup v2 hierarchy's mount point (pure v2, or hybrid's "unified").
Result<std::string> cgroup2_root() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string dev, dir, type;
    in >> dev >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  return Status::Error(
      "no cgroup v2 hierarchy in /proc/mounts: unix-socket steering needs one "
      "(mount -t cgroup2 none /sys/fs/cgroup/unified)");
}

// Whether the pins in `dir` can be reused; `reason` says why not.
enum class Pins { kAbsent, kReusable, kStale };
Pins check_pins(const std::string& dir, uint64_t id, std::string* reason) {
  bool any = false, all = true;
  for (const auto* names : {&map_names(), &link_names()}) {
    for (const std::string& n : *names) {
      if (exists(dir + "/" + n)) {
        any = true;
      } else if (all) {
        all = false;
        *reason = n + " is not pinned";
      }
    }
  }
  if (!any) return Pins::kAbsent;
  if (!all) return Pins::kStale;
  UniqueFd st(bpf_obj_get((dir + "/steer_state").c_str()));
  uint32_t zero = 0;
  dbw_steer_state s{};
  if (st.get() < 0 || bpf_map_lookup_elem(st.get(), &zero, &s) != 0) {
    *reason = "cannot read the pinned steer_state map: " + errno_text(errno);
    return Pins::kStale;
  }
  if (s.object_id != id) {
    *reason = "pinned by another build of dbwarden";
    return Pins::kStale;
  }
  return Pins::kReusable;
}

// Loads the programs, attaches them and pins maps and links into `dir`. The
// skeleton is destroyed at the end: from then on only the pins hold them.
Status load_and_pin(const Options& o, uint64_t id) {
  auto cg_root = o.cgroup_root.empty() ? cgroup2_root() : Result<std::string>(o.cgroup_root);
  if (!cg_root.ok()) return cg_root.status();
  UniqueFd cg(open(cg_root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cg.get() < 0)
    return Status::Error("cannot open cgroup " + *cg_root + ": " + errno_text(errno));
  UniqueFd ns(open(o.netns.c_str(), O_RDONLY | O_CLOEXEC));
  if (ns.get() < 0)
    return Status::Error("cannot open network namespace " + o.netns + ": " + errno_text(errno));

  struct Skel {
    steer_bpf* s = steer_bpf__open();
    ~Skel() { steer_bpf__destroy(s); }
  } skel;
  if (!skel.s) return Status::Error("cannot open the steering BPF object: " + errno_text(errno));
  // libbpf 1.1 does not know the unix attach types (kernel 6.7): the programs
  // are declared as connect4/getpeername4 and get their real type here.
  bpf_program__set_expected_attach_type(
      skel.s->progs.dbw_steer_unix_connect,
      static_cast<bpf_attach_type>(49));  // BPF_CGROUP_UNIX_CONNECT
  bpf_program__set_expected_attach_type(
      skel.s->progs.dbw_steer_unix_getpeername,
      static_cast<bpf_attach_type>(52));  // BPF_CGROUP_UNIX_GETPEERNAME
  if (int err = steer_bpf__load(skel.s); err != 0) {
    return Status::Error(
        "cannot load the steering BPF programs (kernel 6.7 or later with BTF "
        "and CAP_BPF/CAP_NET_ADMIN/CAP_SYS_ADMIN needed): " +
        errno_text(err));
  }
  uint32_t zero = 0;
  dbw_steer_state st{};
  st.proxy_alive = 0;
  st.fail_mode = DBW_FAIL_CLOSED;
  st.object_id = id;
  if (bpf_map_update_elem(bpf_map__fd(skel.s->maps.steer_state), &zero, &st, BPF_ANY) != 0) {
    return Status::Error("cannot initialise steer_state: " + errno_text(errno));
  }

  // Maps first: a link pinned without its maps would steer with nothing to
  // resume from.
  bpf_object* obj = skel.s->obj;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj) {
    std::string path = o.pin_dir + "/" + bpf_map__name(map);
    if (int err = bpf_map__pin(map, path.c_str()); err != 0) {
      return Status::Error("cannot pin " + path + ": " + errno_text(err));
    }
  }
  struct Attach {
    bpf_program* prog;
    const char* pin;
    bool netns;
  };
  const Attach attach[] = {
      {skel.s->progs.dbw_steer_tcp, "link_tcp", true},
      {skel.s->progs.dbw_steer_unix_connect, "link_unix_connect", false},
      {skel.s->progs.dbw_steer_unix_getpeername, "link_unix_getpeername", false},
  };
  for (const Attach& a : attach) {
    bpf_link* link = a.netns ? bpf_program__attach_netns(a.prog, ns.get())
                             : bpf_program__attach_cgroup(a.prog, cg.get());
    if (!link) {
      return Status::Error(std::string("cannot attach ") + bpf_program__name(a.prog) + " to " +
                           (a.netns ? o.netns : *cg_root) + ": " + errno_text(errno));
    }
    std::string path = o.pin_dir + "/" + a.pin;
    int err = bpf_link__pin(link, path.c_str());
    bpf_link__destroy(link);  // the pin keeps it attached
    if (err != 0) return Status::Error("cannot pin " + path + ": " + errno_text(err));
  }
  return Status::Ok();
}

// Reads entry 0 of the state map.
Status read_state(int fd, dbw_steer_state* st) {
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd, &zero, st) != 0) {
    return Status::Error("cannot read steer_state: " + errno_text(errno));
  }
  return Status::Ok();
}

dbw_steer_endpoint endpoint_key(const Endpoint& e) {
  dbw_steer_endpoint k{};
  k.family = static_cast<uint8_t>(e.family);
  k.port = e.port;
  std::memcpy(k.addr, e.addr.data(), sizeof(k.addr));
  return k;
}

// Every key of a hash map, walked with BPF_MAP_GET_NEXT_KEY.
template <typename Key>
Result<std::vector<Key>> map_keys(int fd, const char* name) {
  std::vector<Key> out;
  Key key{}, next{};
  Key* prev = nullptr;
  for (size_t guard = 0; guard < (1u << 20); guard++) {
    if (bpf_map_get_next_key(fd, prev, &next) != 0) {
      if (errno == ENOENT) return out;
      return Status::Error(std::string("walking ") + name + ": " + errno_text(errno));
    }
    out.push_back(next);
    key = next;
    prev = &key;
  }
  return out;
}

// Deletes every entry of a hash map.
Status clear_map(int fd) {
  std::vector<uint8_t> key(64);  // the largest key of the exempt maps is 20 bytes
  for (size_t guard = 0; guard < (1u << 20); guard++) {
    if (bpf_map_get_next_key(fd, nullptr, key.data()) != 0) {
      if (errno == ENOENT) return Status::Ok();
      return Status::Error("clearing a steering map: " + errno_text(errno));
    }
    if (bpf_map_delete_elem(fd, key.data()) != 0 && errno != ENOENT) {
      return Status::Error("clearing a steering map: " + errno_text(errno));
    }
  }
  return Status::Error("clearing a steering map: entries keep coming");
}

// Detaches and unpins everything, leaving the (locked) directory in place.
// `removed` (optional) counts the pins removed.
Status unpin_all(const std::string& pin_dir, int* removed) {
  // Links first: the programs stop before the maps they read go away. An
  // unpinned link is freed only after an RCU grace period; detaching it
  // explicitly makes steering stop before this returns.
  for (const std::string& name : link_names()) {
    UniqueFd link(bpf_obj_get((pin_dir + "/" + name).c_str()));
    if (link.valid() && bpf_link_detach(link.get()) != 0 && errno != EINVAL) {
      return Status::Error("cannot detach " + pin_dir + "/" + name + ": " + errno_text(errno));
    }
  }
  for (const auto* names : {&link_names(), &map_names()}) {
    for (const std::string& name : *names) {
      std::string path = pin_dir + "/" + name;
      if (unlink(path.c_str()) == 0) {
        if (removed) (*removed)++;
      } else if (errno != ENOENT) {
        return Status::Error("cannot remove " + path + ": " + errno_text(errno));
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Steering>> Steering::attach(const Options& options) {
  const uint64_t id = object_identifier();
  // Two attach() at once (two proxies starting) would take each other's
  // half-made pins for stale ones: the pin directory is locked meanwhile.
  if (mkdir(options.pin_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Error("cannot create pin directory " + options.pin_dir + ": " +
                         errno_text(errno) + " (is bpffs mounted at /sys/fs/bpf?)");
  }
  UniqueFd lock(open(options.pin_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!lock.valid() || flock(lock.get(), LOCK_EX) != 0) {
    return Status::Error("cannot lock pin directory " + options.pin_dir + ": " + errno_text(errno));
  }
  std::unique_ptr<Steering> s(new Steering());
  std::string reason;
  switch (check_pins(options.pin_dir, id, &reason)) {
    case Pins::kReusable:
      s->resumed_ = true;
      break;
    case Pins::kStale:
      // Replacing pins leaves a moment without steering; it only happens
      // after an upgrade or a half-finished attach.
      s->replaced_reason_ = reason;
      // Sockets the old pins locked get their permissions back first: the new
      // pins start without locks, and the caller locks again.
      if (auto un = unlock_pinned(options.pin_dir); !un.ok()) {
        s->replaced_reason_ += "; " + un.status().message();
      }
      if (Status st = unpin_all(options.pin_dir, nullptr); !st.ok()) return st;
      [[fallthrough]];
    case Pins::kAbsent:
      if (Status st = load_and_pin(options, id); !st.ok()) {
        unpin_all(options.pin_dir, nullptr);  // nothing half-attached stays behind
        return st;
      }
      break;
  }
  if (Status st = s->open_maps(options.pin_dir); !st.ok()) return st;
  // attach() is the proxy's start: exemptions a previous proxy left behind
  // (killed between registering and dropping them) go.
  for (int fd : {s->exempt_tcp_fd_, s->exempt_unix_fd_}) {
    if (Status st = clear_map(fd); !st.ok()) return st;
  }
  return s;
}

Result<std::unique_ptr<Steering>> Steering::open_pinned(const std::string& pin_dir) {
  std::unique_ptr<Steering> s(new Steering());
  s->resumed_ = true;
  if (Status st = s->open_maps(pin_dir); !st.ok()) return st;
  return s;
}

Status Steering::open_maps(const std::string& pin_dir) {
  pin_dir_ = pin_dir;
  struct {
    int* fd;
    const char* name;
  } maps[] = {{&tcp_fd_, "steer_tcp"},
              {&socks_fd_, "steer_socks"},
              {&exempt_tcp_fd_, "steer_exempt_tcp"},
              {&unix_fd_, "steer_unix"},
              {&exempt_unix_fd_, "steer_exempt_unix"},
              {&origin_fd_, "steer_origin"},
              {&state_fd_, "steer_state"},
              {&stats_fd_, "steer_stats"},
              {&locks_fd_, "steer_locks"}};
  for (auto& m : maps) {
    std::string path = pin_dir + "/" + m.name;
    *m.fd = bpf_obj_get(path.c_str());
    if (*m.fd < 0) {
      return Status::Error("cannot open pinned map " + path + ": " + errno_text(errno) +
                           (errno == ENOENT ? " (steering is not attached)" : ""));
    }
  }
  return Status::Ok();
}

Steering::~Steering() {
  for (int fd : {tcp_fd_, socks_fd_, exempt_tcp_fd_, unix_fd_, exempt_unix_fd_, origin_fd_,
                 state_fd_, stats_fd_, locks_fd_}) {
    if (fd >= 0) close(fd);
  }
}

Status Steering::detach(const std::string& pin_dir, int* removed) {
  // Locked sockets first: without steering a lock would only refuse clients.
  if (auto un = unlock_pinned(pin_dir); !un.ok()) return un.status();
  int n = 0;
  if (Status st = unpin_all(pin_dir, &n); !st.ok()) return st;
  if (rmdir(pin_dir.c_str()) != 0 && errno != ENOENT) {
    return Status::Error("cannot remove " + pin_dir + ": " + errno_text(errno) +
                         (errno == ENOTEMPTY ? " (it holds files dbwarden did not pin)" : ""));
  }
  if (removed) *removed = n;
  return Status::Ok();
}

Status Steering::set_fail_mode(FailMode mode) {
  dbw_steer_state st{};
  if (Status s = read_state(state_fd_, &st); !s.ok()) return s;
  st.fail_mode = mode == FailMode::kOpen ? DBW_FAIL_OPEN : DBW_FAIL_CLOSED;
  uint32_t zero = 0;
  if (bpf_map_update_elem(state_fd_, &zero, &st, BPF_ANY) != 0) {
    return Status::Error("cannot write steer_state: " + errno_text(errno));
  }
  return Status::Ok();
}

Status Steering::set_proxy_alive(bool alive) {
  dbw_steer_state st{};
  if (Status s = read_state(state_fd_, &st); !s.ok()) return s;
  st.proxy_alive = alive ? 1 : 0;
  uint32_t zero = 0;
  if (bpf_map_update_elem(state_fd_, &zero, &st, BPF_ANY) != 0) {
    return Status::Error("cannot write steer_state: " + errno_text(errno));
  }
  return Status::Ok();
}

Result<State> Steering::state() const {
  dbw_steer_state st{};
  if (Status s = read_state(state_fd_, &st); !s.ok()) return s;
  State out;
  out.proxy_alive = st.proxy_alive != 0;
  out.fail_mode = st.fail_mode == DBW_FAIL_OPEN ? FailMode::kOpen : FailMode::kClosed;
  // A SOCKMAP lookup from userspace yields the socket's cookie, ENOENT when empty.
  uint32_t slot = kLifeSlot;
  uint64_t cookie = 0;
  out.life_socket = bpf_map_lookup_elem(socks_fd_, &slot, &cookie) == 0;
  return out;
}

Result<Counters> Steering::counters() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Status::Error("cannot count possible CPUs: " + errno_text(cpus));
  uint64_t sum[DBW_STEER_STAT_COUNT] = {};
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  for (uint32_t i = 0; i < DBW_STEER_STAT_COUNT; i++) {
    if (bpf_map_lookup_elem(stats_fd_, &i, per_cpu.data()) != 0) {
      return Status::Error("cannot read steer_stats: " + errno_text(errno));
    }
    for (uint64_t v : per_cpu) sum[i] += v;
  }
  Counters c;
  c.tcp_steered = sum[DBW_STEER_TCP_STEERED];
  c.tcp_exempt = sum[DBW_STEER_TCP_EXEMPT];
  c.tcp_fail_open = sum[DBW_STEER_TCP_FAIL_OPEN];
  c.tcp_fail_closed = sum[DBW_STEER_TCP_FAIL_CLOSED];
  c.tcp_assign_error = sum[DBW_STEER_TCP_ASSIGN_ERROR];
  c.unix_steered = sum[DBW_STEER_UNIX_STEERED];
  c.unix_exempt = sum[DBW_STEER_UNIX_EXEMPT];
  c.unix_fail_open = sum[DBW_STEER_UNIX_FAIL_OPEN];
  c.unix_fail_closed = sum[DBW_STEER_UNIX_FAIL_CLOSED];
  c.unix_rewrite_error = sum[DBW_STEER_UNIX_REWRITE_ERROR];
  return c;
}

Result<std::vector<ProgramStats>> Steering::program_stats() const {
  std::vector<ProgramStats> out;
  for (const std::string& name : link_names()) {
    const std::string path = pin_dir_ + "/" + name;
    UniqueFd link(bpf_obj_get(path.c_str()));
    bpf_link_info li{};
    uint32_t len = sizeof(li);
    if (!link.valid() || bpf_obj_get_info_by_fd(link.get(), &li, &len) != 0) {
      return Status::Error("cannot read " + path + ": " + errno_text(errno));
    }
    UniqueFd prog(bpf_prog_get_fd_by_id(li.prog_id));
    bpf_prog_info pi{};
    len = sizeof(pi);
    if (!prog.valid() || bpf_obj_get_info_by_fd(prog.get(), &pi, &len) != 0) {
      return Status::Error("cannot read the program of " + path + ": " + errno_text(errno));
    }
    out.push_back({name, pi.run_cnt, pi.run_time_ns});
  }
  return out;
}

Status Steering::protect_tcp(const Endpoint& server, uint32_t slot) {
  if (server.family != AF_INET && server.family != AF_INET6) {
    return Status::Error("protect_tcp: " + server.to_string() + " is not IPv4 or IPv6");
  }
  if (slot == kLifeSlot || slot >= kMaxSlots) {
    return Status::Error("protect_tcp: slot " + std::to_string(slot) + " is not in 1.." +
                         std::to_string(kMaxSlots - 1));
  }
  dbw_steer_endpoint key = endpoint_key(server);
  dbw_steer_tcp_target target{slot};
  if (bpf_map_update_elem(tcp_fd_, &key, &target, BPF_ANY) != 0) {
    return Status::Error(
        "cannot protect " + server.to_string() + ": " + errno_text(errno) +
        (errno == E2BIG ? " (at most " + std::to_string(DBW_STEER_MAX_TCP) + " endpoints)" : ""));
  }
  return Status::Ok();
}

Status Steering::unprotect_tcp(const Endpoint& server) {
  dbw_steer_endpoint key = endpoint_key(server);
  if (bpf_map_delete_elem(tcp_fd_, &key) != 0 && errno != ENOENT) {
    return Status::Error("cannot unprotect " + server.to_string() + ": " + errno_text(errno));
  }
  return Status::Ok();
}

Result<std::vector<Endpoint>> Steering::protected_tcp() const {
  auto keys = map_keys<dbw_steer_endpoint>(tcp_fd_, "steer_tcp");
  if (!keys.ok()) return keys.status();
  std::vector<Endpoint> out;
  for (const dbw_steer_endpoint& k : *keys) {
    Endpoint e;
    e.family = k.family;
    e.port = k.port;
    std::memcpy(e.addr.data(), k.addr, sizeof(k.addr));
    out.push_back(e);
  }
  return out;
}

Status Steering::set_proxy_socket(uint32_t slot, int listen_fd) {
  if (slot >= kMaxSlots) return Status::Error("slot " + std::to_string(slot) + " out of range");
  uint64_t value = static_cast<uint64_t>(listen_fd);
  if (bpf_map_update_elem(socks_fd_, &slot, &value, BPF_ANY) != 0) {
    return Status::Error("cannot put socket fd " + std::to_string(listen_fd) + " in slot " +
                         std::to_string(slot) + ": " + errno_text(errno) +
                         " (a listening TCP socket is needed)");
  }
  return Status::Ok();
}

Status Steering::clear_proxy_socket(uint32_t slot) {
  if (bpf_map_delete_elem(socks_fd_, &slot) != 0 && errno != ENOENT) {
    return Status::Error("cannot clear slot " + std::to_string(slot) + ": " + errno_text(errno));
  }
  return Status::Ok();
}

Status Steering::protect_unix(const std::string& server_path, const std::string& proxy_path) {
  auto key = path_key(server_path);
  if (!key.ok()) return key.status();
  auto proxy = path_key(proxy_path);
  if (!proxy.ok()) return proxy.status();
  dbw_steer_unix_target target{};
  target.proxy_len = static_cast<uint32_t>(proxy_path.size());
  std::memcpy(target.proxy_path, proxy_path.data(), proxy_path.size());
  if (bpf_map_update_elem(unix_fd_, &key.value(), &target, BPF_ANY) != 0) {
    return Status::Error(
        "cannot protect " + server_path + ": " + errno_text(errno) +
        (errno == E2BIG ? " (at most " + std::to_string(DBW_STEER_MAX_UNIX) + " paths)" : ""));
  }
  // getpeername shows the first path protected through this proxy path (the
  // aliases of one socket share a proxy path).
  if (bpf_map_update_elem(origin_fd_, &proxy.value(), &key.value(), BPF_NOEXIST) != 0 &&
      errno != EEXIST) {
    return Status::Error("cannot record the origin of " + proxy_path + ": " + errno_text(errno));
  }
  return Status::Ok();
}

Status Steering::unprotect_unix(const std::string& server_path) {
  auto key = path_key(server_path);
  if (!key.ok()) return key.status();
  dbw_steer_unix_target target{};
  if (bpf_map_lookup_elem(unix_fd_, &key.value(), &target) != 0) return Status::Ok();
  if (bpf_map_delete_elem(unix_fd_, &key.value()) != 0 && errno != ENOENT) {
    return Status::Error("cannot unprotect " + server_path + ": " + errno_text(errno));
  }
  // The origin goes with the last path that used this proxy path.
  dbw_steer_path proxy{};
  std::memcpy(proxy.path, target.proxy_path, sizeof(proxy.path));
  auto paths = map_keys<dbw_steer_path>(unix_fd_, "steer_unix");
  if (!paths.ok()) return paths.status();
  for (const dbw_steer_path& p : *paths) {
    dbw_steer_unix_target t{};
    if (bpf_map_lookup_elem(unix_fd_, &p, &t) == 0 &&
        std::memcmp(t.proxy_path, target.proxy_path, sizeof(t.proxy_path)) == 0) {
      return Status::Ok();
    }
  }
  if (bpf_map_delete_elem(origin_fd_, &proxy) != 0 && errno != ENOENT) {
    return Status::Error("cannot unprotect " + server_path + ": " + errno_text(errno));
  }
  return Status::Ok();
}

Result<std::vector<std::string>> Steering::protected_unix() const {
  auto keys = map_keys<dbw_steer_path>(unix_fd_, "steer_unix");
  if (!keys.ok()) return keys.status();
  std::vector<std::string> out;
  for (const dbw_steer_path& k : *keys) out.emplace_back(k.path, strnlen(k.path, sizeof(k.path)));
  return out;
}

}  // namespace dbwarden::steering
