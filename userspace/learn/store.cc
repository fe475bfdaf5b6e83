// SPDX-License-Identifier: Apache-2.0
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <tuple>

#include "learn/learn.h"

namespace dbwarden::learn {
namespace {

constexpr std::string_view kHeader = "dbwarden-learned\t1\t";
constexpr uint64_t kLineEstimate = 96;  // bytes of an F line, for the live-size estimate
constexpr size_t kReadChunk = 1 << 16;

bool plain_byte(unsigned char c) { return c > 0x20 && c != 0x7f && c != '%'; }

void escape_into(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (plain_byte(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool unescape(std::string_view s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

template <typename T>
bool parse_num(std::string_view s, T& out, int base = 10) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

void split_tabs(std::string_view line, std::vector<std::string_view>& out) {
  out.clear();
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) return;
    start = tab + 1;
  }
}

std::string hex16(uint64_t v) {
  char buf[17];
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    buf[i] = kHex[v & 15];
    v >>= 4;
  }
  buf[16] = '\0';
  return buf;
}

// One F line: what the file says of (identity, fingerprint).
void append_entry(const std::string& key, const Entry& e, std::string& out) {
  out += "F\t" + key + "\t" + hex16(e.fingerprint) + "\t" + std::to_string(e.first_s) + "\t" +
         std::to_string(e.last_s) + "\t" + std::to_string(e.count) + "\n";
}

// An identity's three fields as the file holds them.
bool parse_identity(std::string_view user, std::string_view program, std::string_view login_uid,
                    Identity& out) {
  if (!unescape(user, out.user) || !unescape(program, out.program)) return false;
  out.login_uid.reset();
  if (login_uid == "-") return true;
  uint32_t n = 0;
  if (!parse_num(login_uid, n)) return false;
  out.login_uid = n;
  return true;
}

Status errno_status(const std::string& what) {
  return Status::Error(what + ": " + std::strerror(errno));
}

}  // namespace

Identity Identity::of(const ConnectionInfo& who) {
  Identity id;
  id.user = who.user;
  if (who.peer.pid != 0) {
    id.program = !who.peer.systemd_unit.empty() ? who.peer.systemd_unit : who.peer.executable;
    id.login_uid = who.peer.login_uid;
  }
  return id;
}

std::string Identity::to_string() const {
  return "user=" + (user.empty() ? std::string("-") : user) +
         " program=" + (program.empty() ? std::string("-") : program) +
         " login_uid=" + (login_uid ? std::to_string(*login_uid) : std::string("-"));
}

std::string Store::to_key(const Identity& identity) {
  std::string key;
  escape_into(identity.user, key);
  key.push_back('\t');
  escape_into(identity.program, key);
  key.push_back('\t');
  key += identity.login_uid ? std::to_string(*identity.login_uid) : "-";
  return key;
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir, const Limits& limits,
                                           int64_t now_s) {
  std::unique_ptr<Store> s(new Store());
  s->dir_ = dir;
  s->path_ = dir + "/" + std::string(kFileName);
  s->limits_ = limits;
  s->created_s_ = now_s;
  std::lock_guard<std::mutex> hold(s->mu_);
  Status st = s->load_locked();
  if (s->fd_ >= 0) ::flock(s->fd_, LOCK_UN);
  if (!st.ok()) return st;
  return s;
}

Store::~Store() {
  if (fd_ >= 0) ::close(fd_);
}

// Opens the file and takes its lock; a file replaced under us (a compaction by another
// process) is opened again and read from the start.
Status Store::load_locked() {
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd_ < 0) return errno_status("learn: cannot open " + path_);
      idents_.clear();
      total_ = 0;
      offset_ = 0;
      dirty_.clear();
    }
    if (::flock(fd_, LOCK_EX) != 0) return errno_status("learn: cannot lock " + path_);
    struct stat a {
    }, b{};
    if (::stat(path_.c_str(), &a) == 0 && ::fstat(fd_, &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev) {
      if (b.st_size == 0) {
        if (Status st = write_header_locked(); !st.ok()) {
          ::flock(fd_, LOCK_UN);
          return st;
        }
      }
      return apply_tail_locked();  // the caller unlocks
    }
    ::close(fd_);
    fd_ = -1;
  }
  return Status::Error("learn: " + path_ + " keeps being replaced");
}

Status Store::write_header_locked() {
  const std::string header = std::string(kHeader) + std::to_string(created_s_) + "\n";
  if (::write(fd_, header.data(), header.size()) != static_cast<ssize_t>(header.size()) ||
      ::fdatasync(fd_) != 0) {
    return errno_status("learn: cannot write " + path_);
  }
  sync_dir();  // the new file's name survives a crash too
  return Status::Ok();
}

void Store::sync_dir() const {
  if (const int d = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    (void)::fsync(d);
    ::close(d);
  }
}

Status Store::apply_tail_locked() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return errno_status("learn: cannot stat " + path_);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::string buf;
  while (offset_ < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadChunk, size - offset_));
    const size_t had = buf.size();
    buf.resize(had + want);
    const ssize_t n = ::pread(fd_, buf.data() + had, want, static_cast<off_t>(offset_ + had));
    if (n <= 0) return errno_status("learn: cannot read " + path_);
    buf.resize(had + static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      const std::string_view line(buf.data() + start, nl - start);
      if (offset_ == 0 && start == 0) {
        if (!line.starts_with(kHeader) || !parse_num(line.substr(kHeader.size()), created_s_)) {
          return Status::Error("learn: " + path_ + " is not a dbwarden learned set (header)");
        }
        continue;
      }
      apply_line(line);
    }
    offset_ += start;
    buf.erase(0, start);
    if (offset_ + buf.size() >= size) break;
  }
  if (!buf.empty()) {
    // A line without its newline while we hold the lock: a writer died mid-line. Cut it,
    // or the next append would glue onto it.
    ++stats_.bad_lines;
    if (::ftruncate(fd_, static_cast<off_t>(offset_)) != 0) {
      return errno_status("learn: cannot cut the torn last line of " + path_);
    }
  }
  live_bytes_ = total_ * kLineEstimate;
  return Status::Ok();
}

void Store::apply_line(std::string_view line) {
  std::vector<std::string_view> f;
  split_tabs(line, f);
  if (f.size() == 8 && f[0] == "F") {
    Entry e;
    if (!parse_num(f[4], e.fingerprint, 16) || f[4].size() != 16 || !parse_num(f[5], e.first_s) ||
        !parse_num(f[6], e.last_s) || !parse_num(f[7], e.count)) {
      ++stats_.bad_lines;
      return;
    }
    Identity id;
    if (!parse_identity(f[1], f[2], f[3], id)) {
      ++stats_.bad_lines;
      return;
    }
    // Keyed as to_key() writes it: a hand-edited escape or number names the same identity.
    std::string key = to_key(id);
    auto it = idents_.find(key);
    if (it == idents_.end()) {
      if (total_ >= limits_.max_total) {
        ++stats_.capped_total;
        return;
      }
      it = idents_.emplace(std::move(key), Ident{std::move(id), {}}).first;
    }
    auto& fps = it->second.fps;
    auto fp = fps.find(e.fingerprint);
    if (fp == fps.end()) {
      if (total_ >= limits_.max_total) {
        ++stats_.capped_total;
      } else if (fps.size() >= limits_.max_per_identity) {
        ++stats_.capped_identity;
      } else {
        fps.emplace(e.fingerprint, Fp{e});
        ++total_;
      }
      if (fps.empty()) idents_.erase(it);
      return;
    }
    // A later line replaces an earlier one; the first sighting stays the earliest.
    e.first_s = std::min(e.first_s, fp->second.e.first_s);
    e.count = std::max(e.count, fp->second.e.count);
    e.last_s = std::max(e.last_s, fp->second.e.last_s);
    fp->second.e = e;
    return;
  }
  if (f.size() == 5 && f[0] == "P") {
    uint64_t fingerprint = 0;
    if (f[4] != "*" && (f[4].size() != 16 || !parse_num(f[4], fingerprint, 16))) {
      ++stats_.bad_lines;
      return;
    }
    Identity id;
    if (!parse_identity(f[1], f[2], f[3], id)) {
      ++stats_.bad_lines;
      return;
    }
    const std::string key = to_key(id);
    erase_if(&key, f[4] == "*" ? 0 : fingerprint, 0);
    return;
  }
  int64_t cutoff = 0;
  if (f.size() == 2 && f[0] == "A" && parse_num(f[1], cutoff)) {
    erase_if(nullptr, 0, cutoff);
    return;
  }
  ++stats_.bad_lines;
}

// key set: that identity (fingerprint 0: all of it); key null: every entry last seen
// before cutoff_s.
size_t Store::erase_if(const std::string* key, uint64_t fingerprint, int64_t cutoff_s) {
  size_t erased = 0;
  for (auto it = idents_.begin(); it != idents_.end();) {
    auto& fps = it->second.fps;
    if (key != nullptr && it->first != *key) {
      ++it;
      continue;
    }
    for (auto f = fps.begin(); f != fps.end();) {
      const bool go = key != nullptr ? (fingerprint == 0 || f->first == fingerprint)
                                     : f->second.e.last_s < cutoff_s;
      if (go) {
        f = fps.erase(f);
        ++erased;
      } else {
        ++f;
      }
    }
    it = fps.empty() ? idents_.erase(it) : std::next(it);
  }
  total_ -= erased;
  return erased;
}

Store::Seen Store::observe(const std::string& key, uint64_t fingerprint, int64_t now_s,
                           bool learn) {
  std::lock_guard<std::mutex> hold(mu_);
  auto it = idents_.find(key);
  if (it != idents_.end()) {
    auto f = it->second.fps.find(fingerprint);
    if (f != it->second.fps.end()) {
      Fp& fp = f->second;
      ++fp.e.count;
      fp.e.last_s = std::max(fp.e.last_s, now_s);
      if (!fp.dirty_new && !fp.dirty_count) {
        fp.dirty_count = true;
        dirty_.emplace_back(key, fingerprint);
      }
      return Seen::kKnown;
    }
  }
  if (!learn) return Seen::kNovel;
  if (total_ >= limits_.max_total) {
    ++stats_.capped_total;
    return Seen::kCapped;
  }
  if (it != idents_.end() && it->second.fps.size() >= limits_.max_per_identity) {
    ++stats_.capped_identity;
    return Seen::kCapped;
  }
  if (it == idents_.end()) {
    std::vector<std::string_view> f;
    split_tabs(key, f);
    Identity id;
    if (f.size() != 3 || !parse_identity(f[0], f[1], f[2], id)) {
      return Seen::kNovel;  // not a key to_key() made
    }
    it = idents_.emplace(key, Ident{std::move(id), {}}).first;
  }
  Fp fp;
  fp.e = Entry{fingerprint, 1, now_s, now_s};
  fp.dirty_new = true;
  it->second.fps.emplace(fingerprint, fp);
  dirty_.emplace_back(key, fingerprint);
  ++total_;
  ++stats_.learned;
  return Seen::kLearned;
}

bool Store::known(const std::string& key, uint64_t fingerprint) const {
  std::lock_guard<std::mutex> hold(mu_);
  const auto it = idents_.find(key);
  return it != idents_.end() && it->second.fps.contains(fingerprint);
}

Status Store::append_locked(const std::string& lines) {
  size_t done = 0;
  while (done < lines.size()) {
    const ssize_t n = ::write(fd_, lines.data() + done, lines.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status err = errno_status("learn: cannot append to " + path_);
      // Whole lines or nothing: a part written would glue onto the next append.
      (void)::ftruncate(fd_, static_cast<off_t>(offset_));
      return err;
    }
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0) return errno_status("learn: cannot sync " + path_);
  offset_ += lines.size();
  return Status::Ok();
}

Status Store::flush(bool with_counts) {
  std::lock_guard<std::mutex> hold(mu_);
  if (Status st = load_locked(); !st.ok()) {
    if (fd_ >= 0) ::flock(fd_, LOCK_UN);
    ++stats_.write_errors;
    return st;
  }
  std::string lines;
  std::vector<std::pair<std::string, uint64_t>> later;
  std::vector<Fp*> written;
  for (auto& [key, fingerprint] : dirty_) {
    auto it = idents_.find(key);
    if (it == idents_.end()) continue;  // pruned meanwhile
    auto f = it->second.fps.find(fingerprint);
    if (f == it->second.fps.end()) continue;
    Fp& fp = f->second;
    if (!fp.dirty_new && !(fp.dirty_count && with_counts)) {
      if (fp.dirty_count) later.emplace_back(std::move(key), fingerprint);
      continue;
    }
    append_entry(key, fp.e, lines);
    written.push_back(&fp);
    later.emplace_back(std::move(key), fingerprint);  // until the write is known good
  }
  Status st = lines.empty() ? Status::Ok() : append_locked(lines);
  if (st.ok()) {
    for (Fp* fp : written) fp->dirty_new = fp->dirty_count = false;
    // Keep only the entries still waiting for their counts.
    std::erase_if(later, [&](const auto& k) {
      auto it = idents_.find(k.first);
      if (it == idents_.end()) return true;
      auto f = it->second.fps.find(k.second);
      return f == it->second.fps.end() || (!f->second.dirty_new && !f->second.dirty_count);
    });
    live_bytes_ = total_ * kLineEstimate;
    if (offset_ > limits_.compact_min_bytes && offset_ > 4 * live_bytes_) st = compact_locked();
  } else {
    ++stats_.write_errors;
  }
  dirty_ = std::move(later);
  ::flock(fd_, LOCK_UN);
  return st;
}

Status Store::refresh() {
  std::lock_guard<std::mutex> hold(mu_);
  Status st = load_locked();
  if (fd_ >= 0) ::flock(fd_, LOCK_UN);
  return st;
}

// The whole set, written beside the file and renamed over it: a crash leaves the old file
// or the new one, never half of either.
Status Store::compact_locked() {
  const std::string tmp = path_ + ".tmp";
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return errno_status("learn: cannot create " + tmp);
  std::string text = std::string(kHeader) + std::to_string(created_s_) + "\n";
  for (auto& [key, ident] : idents_) {
    for (auto& [fingerprint, fp] : ident.fps) {
      append_entry(key, fp.e, text);
      fp.dirty_new = fp.dirty_count = false;
    }
  }
  bool ok = true;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(out, text.data() + done, text.size() - done);
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(out) == 0;
  ::close(out);
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    Status err = errno_status("learn: cannot rewrite " + path_);
    ::unlink(tmp.c_str());
    return err;
  }
  sync_dir();
  dirty_.clear();
  // The old file's lock goes with its descriptor; a process waiting on it sees the file
  // replaced and opens the new one.
  const int fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd < 0) return errno_status("learn: cannot reopen " + path_);
  ::close(fd_);
  fd_ = fd;
  ::flock(fd_, LOCK_EX);  // released by the caller
  offset_ = text.size();
  ++stats_.compactions;
  return Status::Ok();
}

Result<size_t> Store::prune_identity(const Identity& identity) {
  std::lock_guard<std::mutex> hold(mu_);
  if (Status st = load_locked(); !st.ok()) {
    if (fd_ >= 0) ::flock(fd_, LOCK_UN);
    return st;
  }
  const std::string key = to_key(identity);
  const size_t n = erase_if(&key, 0, 0);
  Status st = append_locked("P\t" + key + "\t*\n");
  ::flock(fd_, LOCK_UN);
  if (!st.ok()) return st;
  return n;
}

Result<size_t> Store::prune_older_than(int64_t cutoff_s) {
  std::lock_guard<std::mutex> hold(mu_);
  if (Status st = load_locked(); !st.ok()) {
    if (fd_ >= 0) ::flock(fd_, LOCK_UN);
    return st;
  }
  const size_t n = erase_if(nullptr, 0, cutoff_s);
  Status st = append_locked("A\t" + std::to_string(cutoff_s) + "\n");
  ::flock(fd_, LOCK_UN);
  if (!st.ok()) return st;
  return n;
}

std::vector<IdentityEntries> Store::list() const {
  std::lock_guard<std::mutex> hold(mu_);
  std::vector<IdentityEntries> out;
  for (const auto& [key, ident] : idents_) {
    IdentityEntries ie{ident.identity, {}};
    for (const auto& [fingerprint, fp] : ident.fps) ie.entries.push_back(fp.e);
    std::sort(ie.entries.begin(), ie.entries.end(), [](const Entry& a, const Entry& b) {
      return a.first_s != b.first_s ? a.first_s < b.first_s : a.fingerprint < b.fingerprint;
    });
    out.push_back(std::move(ie));
  }
  std::sort(out.begin(), out.end(), [](const IdentityEntries& a, const IdentityEntries& b) {
    const Identity &x = a.identity, &y = b.identity;
    return std::tie(x.user, x.program, x.login_uid) < std::tie(y.user, y.program, y.login_uid);
  });
  return out;
}

Stats Store::stats() const {
  std::lock_guard<std::mutex> hold(mu_);
  Stats s = stats_;
  s.identities = idents_.size();
  s.fingerprints = total_;
  return s;
}

void Store::set_limits(const Limits& limits) {
  std::lock_guard<std::mutex> hold(mu_);
  limits_ = limits;
}

}  // namespace dbwarden::learn
