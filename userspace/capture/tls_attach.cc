// SPDX-License-Identifier: Apache-2.0
#include "capture/tls_attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "capture/tls_elf.h"
#include "capture/tls_probe_sites.h"
#include "common/read_file.h"
#include "dbwarden.h"

namespace dbwarden::capture {
namespace {

bool parse_num(std::string_view s, int base, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// Next whitespace-separated field of `line` from `pos`.
std::string_view next_field(std::string_view line, size_t& pos) {
  while (pos < line.size() && line[pos] == ' ') pos++;
  size_t start = pos;
  while (pos < line.size() && line[pos] != ' ') pos++;
  return line.substr(start, pos - start);
}

std::string basename_of(std::string_view path) {
  auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string comm_of(uint32_t pid) {
  std::string c = read_whole_file("/proc/" + std::to_string(pid) + "/comm");
  while (!c.empty() && c.back() == '\n') c.pop_back();
  return c;
}

std::vector<uint32_t> all_pids() {
  std::vector<uint32_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    uint64_t v = 0;
    if (parse_num(e->d_name, 10, v) && v <= UINT32_MAX) out.push_back(static_cast<uint32_t>(v));
  }
  closedir(d);
  return out;
}

std::optional<uint64_t> stat_vsize(uint32_t pid) {
  return parse_stat_vsize(read_whole_file("/proc/" + std::to_string(pid) + "/stat"));
}

}  // namespace

std::optional<uint64_t> parse_stat_vsize(std::string_view text) {
  const size_t paren = text.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  size_t pos = paren + 1;
  std::string_view field;
  // After the name: field 3 (state) ... field 23 (vsize).
  for (int i = 3; i <= 23; i++) field = next_field(text, pos);
  uint64_t v = 0;
  if (!parse_num(field, 10, v)) return std::nullopt;
  return v;
}

std::vector<MappedFile> parse_maps(std::string_view text) {
  // Each line: "start-end perms offset major:minor inode   pathname"
  // (https://www.kernel.org/doc/html/latest/filesystems/proc.html, /proc/PID/maps).
  std::set<MappedFile> files;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    size_t pos = 0;
    next_field(line, pos);  // address range
    next_field(line, pos);  // perms
    next_field(line, pos);  // offset
    std::string_view dev = next_field(line, pos);
    std::string_view ino = next_field(line, pos);
    while (pos < line.size() && line[pos] == ' ') pos++;
    std::string_view path = line.substr(std::min(pos, line.size()));
    uint64_t inode = 0, major = 0, minor = 0;
    auto colon = dev.find(':');
    if (path.empty() || path[0] != '/' || colon == std::string_view::npos ||
        !parse_num(ino, 10, inode) || inode == 0 || !parse_num(dev.substr(0, colon), 16, major) ||
        !parse_num(dev.substr(colon + 1), 16, minor)) {
      continue;  // anonymous, [heap], [vdso], or a malformed line
    }
    // A file replaced on disk (package upgrade) is still mapped but has no path to attach to.
    if (path.size() > 10 && path.substr(path.size() - 10) == " (deleted)") continue;
    files.insert({makedev(static_cast<unsigned>(major), static_cast<unsigned>(minor)), inode,
                  std::string(path)});
  }
  return {files.begin(), files.end()};
}

TlsLibrary classify_tls_library(std::string_view path) {
  std::string name = basename_of(path);
  auto starts = [&](std::string_view p) { return name.compare(0, p.size(), p) == 0; };
  // OpenSSL: libssl.so, libssl.so.3, libssl.so.1.1. NSS's "libssl3.so" is not OpenSSL.
  if (starts("libssl.so")) return TlsLibrary::kOpenSsl;
  if (starts("libgnutls.so") || starts("libssl3.so") || starts("libnss3.so") ||
      starts("libwolfssl.so") || starts("libmbedtls.so") || starts("libboringssl") ||
      starts("libs2n.so")) {
    return TlsLibrary::kOther;
  }
  return TlsLibrary::kNone;
}

namespace {
// A hooked function and its programs of bpf/tls.bpf.h. `required`: a libssl
// without it cannot be captured (SSL_read_ex and friends only exist since 1.1.1).
constexpr struct {
  const char* function;
  const char* enter;  // at the entry site
  const char* exit;   // at every return site, or as the uretprobe
  bool required;
} kFunctions[] = {
    {"SSL_read", "dbw_ssl_read_enter", "dbw_ssl_exit", true},
    {"SSL_write", "dbw_ssl_write_enter", "dbw_ssl_exit", true},
    {"SSL_read_ex", "dbw_ssl_read_ex_enter", "dbw_ssl_exit", false},
    {"SSL_write_ex", "dbw_ssl_write_ex_enter", "dbw_ssl_exit", false},
    // The handshake moves ciphertext too: it is where a connection becomes TLS.
    {"SSL_do_handshake", "dbw_ssl_handshake_enter", "dbw_ssl_handshake_exit", true},
    {"SSL_accept", "dbw_ssl_handshake_enter", "dbw_ssl_handshake_exit", true},
    {"SSL_connect", "dbw_ssl_handshake_enter", "dbw_ssl_handshake_exit", true},
};

bpf_link* attach_at(bpf_program* prog, const std::string& path, const char* function,
                    uint64_t offset, bool retprobe) {
  bpf_uprobe_opts opts{};
  opts.sz = sizeof(opts);
  opts.retprobe = retprobe;
  opts.func_name = function;  // libbpf adds the symbol's file offset to `offset`
  return bpf_program__attach_uprobe_opts(prog, -1, path.c_str(), offset, &opts);
}

// DBWARDEN_TLS_PROBE_SITES=0 puts every function back on entry + uretprobe:
// the comparison of bench/README.md ("TLS"), and a way out should a site ever
// be wrong on some libssl build.
bool probe_sites_enabled() {
  const char* v = getenv("DBWARDEN_TLS_PROBE_SITES");
  return !(v && std::string_view(v) == "0");
}

std::string describe(const char* function, const ProbeSites& s) {
  std::string d = std::string(function) + " entry +" + std::to_string(s.entry) +
                  (s.entry_emulated ? "" : " (single-step)");
  if (s.returns.empty()) return d + ", uretprobe (" + s.fallback_reason + ")";
  d += ", returns";
  for (uint64_t r : s.returns) d += " +" + std::to_string(r);
  return d;
}
}  // namespace

TlsAttacher::TlsAttacher(bpf_object* obj, std::function<bool(uint32_t)> relevant)
    : obj_(obj), relevant_(std::move(relevant)) {}

TlsAttacher::~TlsAttacher() {
  for (bpf_link* l : links_) bpf_link__destroy(l);
}

Result<std::unique_ptr<TlsAttacher>> TlsAttacher::Create(bpf_object* obj,
                                                         std::function<bool(uint32_t)> relevant) {
  for (const auto& fn : kFunctions) {
    for (const char* program : {fn.enter, fn.exit}) {
      if (!bpf_object__find_program_by_name(obj, program)) {
        return Status::Error(std::string("TLS capture: the BPF object has no program ") + program);
      }
    }
  }
  if (!bpf_object__find_map_by_name(obj, "tls_stats")) {
    return Status::Error("TLS capture: the BPF object has no tls_stats map");
  }
  return std::unique_ptr<TlsAttacher>(new TlsAttacher(obj, std::move(relevant)));
}

void TlsAttacher::attach_file(uint32_t pid, const MappedFile& f, std::vector<std::string>& notes) {
  // Through the process's root, so that a container's own libssl is the file attached.
  std::string path = "/proc/" + std::to_string(pid) + "/root" + f.path;
  std::vector<bpf_link*> made;
  std::string missing, placed;
  bool ok = true;
  bool denied = false;
  uint64_t at_sites = 0, on_uretprobe = 0;
  for (const auto& fn : kFunctions) {
    bpf_program* enter = bpf_object__find_program_by_name(obj_, fn.enter);
    bpf_program* exit = bpf_object__find_program_by_name(obj_, fn.exit);
    // No code or no site: the uretprobe, which works everywhere (with a single-step).
    ProbeSites sites;
    Result<FunctionCode> code = read_function_code(path, fn.function);
    if (!code.ok()) {
      sites.fallback_reason = code.status().message();
    } else if (!probe_sites_enabled()) {
      sites.fallback_reason = "DBWARDEN_TLS_PROBE_SITES=0";
    } else {
      Result<ProbeSites> chosen = choose_probe_sites(code->bytes);
      if (chosen.ok()) {
        sites = std::move(chosen.value());
      } else {
        sites.fallback_reason = chosen.status().message();
      }
    }
    std::vector<bpf_link*> mine;
    bool all = true;
    auto attach = [&](bpf_program* prog, uint64_t offset, bool retprobe) {
      bpf_link* l = attach_at(prog, path, fn.function, offset, retprobe);
      if (!l && (errno == EACCES || errno == EPERM)) denied = true;
      all &= l != nullptr;
      mine.push_back(l);
    };
    attach(enter, sites.entry, false);
    if (sites.returns.empty()) {
      attach(exit, 0, true);
    } else {
      for (uint64_t r : sites.returns) attach(exit, r, false);
    }
    if (!all) {
      for (bpf_link* l : mine) bpf_link__destroy(l);  // accepts nullptr
      missing += std::string(missing.empty() ? "" : ", ") + fn.function;
      if (fn.required) ok = false;
      continue;
    }
    made.insert(made.end(), mine.begin(), mine.end());
    (sites.returns.empty() ? on_uretprobe : at_sites)++;
    placed += std::string(placed.empty() ? "" : "; ") + describe(fn.function, sites);
  }
  if (!ok) {
    for (bpf_link* l : made) bpf_link__destroy(l);
    attach_failures_++;
    // Kernel 6.x lets only CAP_SYS_ADMIN create uprobe perf events (CAP_PERFMON
    // is not enough), and the packaged unit leaves it out by default.
    notes.push_back("TLS: cannot hook " + f.path + " (pid " + std::to_string(pid) + "): no " +
                    missing + "; its TLS connections are not decoded" +
                    (denied ? " (permission denied: uprobes need CAP_SYS_ADMIN; see README, "
                              "\"TLS capture\")"
                            : ""));
    return;
  }
  links_.insert(links_.end(), made.begin(), made.end());
  functions_at_sites_ += at_sites;
  functions_on_uretprobe_ += on_uretprobe;
  notes.push_back("TLS: hooked " + f.path + " (first seen in pid " + std::to_string(pid) + " " +
                  comm_of(pid) + ")" + (missing.empty() ? "" : "; absent: " + missing));
  notes.push_back("TLS: probe sites in " + f.path + ": " + placed);
}

void TlsAttacher::scan_process(uint32_t pid, std::vector<std::string>& notes) {
  std::string maps = read_whole_file("/proc/" + std::to_string(pid) + "/maps");
  std::vector<MappedFile> files = parse_maps(maps);
  // A process with OpenSSL's libssl speaks TLS through it; another TLS library
  // next to it is a dependency's (PostgreSQL's libldap pulls in GnuTLS).
  bool has_openssl = false;
  for (const MappedFile& f : files) {
    has_openssl |= classify_tls_library(f.path) == TlsLibrary::kOpenSsl;
  }
  for (const MappedFile& f : files) {
    TlsLibrary kind = classify_tls_library(f.path);
    if (kind == TlsLibrary::kNone) continue;
    auto key = std::make_pair(f.dev, f.inode);
    if (kind == TlsLibrary::kOpenSsl) {
      // A failed file is also remembered: retrying every second would only repeat the note.
      if (hooked_.insert(key).second) attach_file(pid, f, notes);
    } else if (!has_openssl && relevant_ && relevant_(pid) && unhooked_.insert(key).second) {
      notes.push_back("TLS: " + f.path + " in pid " + std::to_string(pid) + " (" + comm_of(pid) +
                      ") is not hooked; TLS connections made with it are counted as "
                      "tls_not_captured and not decoded");
    }
  }
}

std::vector<std::string> TlsAttacher::rescan() {
  std::vector<std::string> notes;
  bool full = scans_++ % kFullRescanEvery == 0;
  std::map<uint32_t, std::optional<uint64_t>> now;
  for (uint32_t pid : all_pids()) {
    const auto seen = seen_pids_.find(pid);
    const bool is_new = seen == seen_pids_.end();
    std::optional<uint64_t>& size = now[pid];
    if (!(relevant_ && relevant_(pid))) {
      // Others: when new, or on a full scan.
      if (full || is_new) scan_process(pid, notes);
      continue;
    }
    // Server processes may dlopen at any time: their maps are read again when
    // their size moved (read before the maps, so a later dlopen moves it
    // again), when it cannot be read, and on a full scan.
    size = stat_vsize(pid);
    if (full || is_new || !size || seen->second != size) {
      scan_process(pid, notes);
    }
  }
  seen_pids_ = std::move(now);
  return notes;
}

TlsStats TlsAttacher::stats() const {
  TlsStats s;
  std::vector<uint64_t> by_stat(DBW_TLS_STAT_MAX, 0);
  const bpf_map* map = bpf_object__find_map_by_name(obj_, "tls_stats");
  int ncpu = libbpf_num_possible_cpus();
  if (map && ncpu > 0) {
    std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
    for (uint32_t i = 0; i < DBW_TLS_STAT_MAX; i++) {
      if (bpf_map__lookup_elem(map, &i, sizeof(i), per_cpu.data(),
                               per_cpu.size() * sizeof(uint64_t), 0) == 0) {
        for (uint64_t v : per_cpu) by_stat[i] += v;
      }
    }
  }
  s.connections = by_stat[DBW_TLS_STAT_CONNECTIONS];
  s.plaintext_calls = by_stat[DBW_TLS_STAT_PLAINTEXT_CALLS];
  s.ciphertext_suppressed = by_stat[DBW_TLS_STAT_CIPHERTEXT_SUPPRESSED];
  s.unknown_ssl = by_stat[DBW_TLS_STAT_UNKNOWN_SSL];
  s.calls_not_recorded = by_stat[DBW_TLS_STAT_CALL_NOT_RECORDED];
  s.libraries_hooked = hooked_.size() - attach_failures_;
  s.unhooked_libraries = unhooked_.size();
  s.attach_failures = attach_failures_;
  s.functions_at_sites = functions_at_sites_;
  s.functions_on_uretprobe = functions_on_uretprobe_;
  return s;
}

}  // namespace dbwarden::capture
