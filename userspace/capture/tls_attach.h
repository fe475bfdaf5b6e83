// SPDX-License-Identifier: Apache-2.0
//
// Finds the TLS libraries processes on this host have mapped and attaches the
// libssl uprobes of bpf/tls.bpf.h to every distinct OpenSSL libssl file.
//
// A uprobe attached to a file with pid -1 fires in every process mapping that
// file (the kernel keys it by inode), so one attachment per distinct file
// (device + inode) covers the server, its future backends and local clients.
// New files (a container's own libssl, an upgrade, a dlopen) are found by
// rescanning /proc/<pid>/maps: new processes on every rescan, all of them
// every kFullRescanEvery rescans. Server processes are looked at on every
// rescan, but their maps are read again only when their mapped size changed
// (a dlopen maps new segments): reading a postgres backend's maps was ~8 % of
// the agent's CPU under pgbench -S, its one-line stat costs a fraction.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "common/status.h"

struct bpf_object;
struct bpf_link;

namespace dbwarden::capture {

// One file mapped by a process, as /proc/<pid>/maps shows it.
struct MappedFile {
  uint64_t dev = 0;  // makedev(major, minor) of the maps line
  uint64_t inode = 0;
  std::string path;
  bool operator<(const MappedFile& o) const {
    return std::tie(dev, inode, path) < std::tie(o.dev, o.inode, o.path);
  }
};

// Distinct files of a maps text (anonymous and pseudo mappings left out).
std::vector<MappedFile> parse_maps(std::string_view text);

// The virtual memory size (field 23, vsize) of a /proc/<pid>/stat text, or
// nullopt when the text is not one. The command name (field 2) may hold
// spaces and parentheses: fields are counted from its last ')'.
std::optional<uint64_t> parse_stat_vsize(std::string_view text);

enum class TlsLibrary {
  kNone,
  kOpenSsl,  // OpenSSL's libssl.so.*: hooked
  kOther,    // GnuTLS, NSS, wolfSSL, mbed TLS: not hooked, counted and reported
};
TlsLibrary classify_tls_library(std::string_view path);

struct TlsStats {
  // From the BPF side (enum dbw_tls_stat).
  uint64_t connections = 0;            // tracked connections found to carry TLS
  uint64_t plaintext_calls = 0;        // SSL_read/SSL_write results emitted
  uint64_t ciphertext_suppressed = 0;  // syscalls of TLS connections not emitted
  uint64_t unknown_ssl = 0;            // server TLS calls on an SSL* of no tracked socket
  uint64_t calls_not_recorded = 0;     // server libssl calls the kernel had no memory to note
  // From the scans.
  uint64_t libraries_hooked = 0;    // distinct libssl files with probes attached
  uint64_t unhooked_libraries = 0;  // distinct other TLS library files in relevant processes
  uint64_t attach_failures = 0;     // libssl files whose SSL_read/SSL_write could not be hooked
  // Where the probes went (tls_probe_sites.h), summed over hooked files.
  uint64_t functions_at_sites = 0;      // entry + return sites, no uretprobe
  uint64_t functions_on_uretprobe = 0;  // fallback: entry at offset 0 + uretprobe
};

class TlsAttacher {
 public:
  static constexpr int kFullRescanEvery = 30;

  // `obj` is the loaded capture object holding the programs of bpf/tls.bpf.h.
  // `relevant` says whether a process's unhooked TLS libraries matter (the
  // servers'): a host has many processes with GnuTLS that never talk to us.
  static Result<std::unique_ptr<TlsAttacher>> Create(bpf_object* obj,
                                                     std::function<bool(uint32_t)> relevant);
  ~TlsAttacher();
  TlsAttacher(const TlsAttacher&) = delete;
  TlsAttacher& operator=(const TlsAttacher&) = delete;

  // Scans processes and attaches to libssl files not seen before. Returns one
  // human-readable note per new finding (hooked file, unhooked library,
  // failure), for the agent's log.
  std::vector<std::string> rescan();
  TlsStats stats() const;

 private:
  TlsAttacher(bpf_object* obj, std::function<bool(uint32_t)> relevant);
  void scan_process(uint32_t pid, std::vector<std::string>& notes);
  void attach_file(uint32_t pid, const MappedFile& f, std::vector<std::string>& notes);

  bpf_object* obj_;
  std::function<bool(uint32_t)> relevant_;
  std::vector<bpf_link*> links_;
  std::set<std::pair<uint64_t, uint64_t>> hooked_;    // (dev, inode) of libssl files
  std::set<std::pair<uint64_t, uint64_t>> unhooked_;  // other TLS libraries reported
  // Processes seen at the last rescan -> their vsize when their maps were last
  // read (nullopt: not read, or not a server process).
  std::map<uint32_t, std::optional<uint64_t>> seen_pids_;
  uint64_t attach_failures_ = 0;
  uint64_t functions_at_sites_ = 0;
  uint64_t functions_on_uretprobe_ = 0;
  int scans_ = 0;
};

}  // namespace dbwarden::capture
