// SPDX-License-Identifier: Apache-2.0
#include "agent/approval_tokens.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/log.h"
#include "common/read_file.h"
#include "common/unique_fd.h"

namespace dbwarden::agent {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_hash(std::string_view hex, TokenHash& out) {
  if (hex.size() != 2 * out.size()) return false;
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool same_stat(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

// Rewrites `path` with `entries`: a temporary file beside it, then rename, so a reader sees
// the old file or the new one.
Status write_tokens(const std::string& path, const std::vector<TokenEntry>& entries) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::Error(tmp + ": " + std::strerror(errno));
  const std::string text = format_tokens(entries);
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = write(fd.get(), text.data() + off, text.size() - off);
    if (n <= 0) return Status::Error(tmp + ": " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  if (fchmod(fd.get(), 0600) != 0 || fsync(fd.get()) != 0) {
    return Status::Error(tmp + ": " + std::strerror(errno));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Error(path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

// Holds an flock on PATH.lock for the read-modify-write of `token add|remove`.
Result<UniqueFd> lock_tokens(const std::string& path) {
  const std::string lock = path + ".lock";
  UniqueFd fd(open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid() || flock(fd.get(), LOCK_EX) != 0) {
    return Status::Error(lock + ": " + std::strerror(errno));
  }
  return fd;
}

}  // namespace

TokenHash hash_token(std::string_view token) {
  TokenHash h{};
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), h.data(), &len, EVP_sha256(), nullptr);
  return h;
}

std::string to_hex(const uint8_t* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 15]);
  }
  return out;
}

bool same_hash(const TokenHash& a, const TokenHash& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::string> new_token() {
  uint8_t bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return Status::Error("no random bytes from OpenSSL for a new token");
  }
  std::string token = kTokenPrefix + to_hex(bytes, sizeof bytes);
  OPENSSL_cleanse(bytes, sizeof bytes);
  return token;
}

bool valid_approver_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

Result<std::vector<TokenEntry>> parse_tokens(std::string_view text) {
  std::vector<TokenEntry> out;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    size_t gap = 0;
    while (gap < line.size() && !space(line[gap])) ++gap;
    const std::string_view name = line.substr(0, gap);
    const std::string_view hex = trim(line.substr(gap));
    TokenEntry e;
    if (!valid_approver_name(name)) {
      return Status::Error(where + "the name must be 1-64 letters, digits, '-', '_' or '.'");
    }
    if (!parse_hash(hex, e.hash)) {
      return Status::Error(where + "expected NAME and the token's SHA-256 as 64 hex digits " +
                           "(`dbwarden approvals token add NAME` writes such a line)");
    }
    e.name = name;
    for (const TokenEntry& seen : out) {
      if (seen.name == e.name) return Status::Error(where + "'" + e.name + "' is listed twice");
    }
    if (out.size() >= kMaxTokens) {
      return Status::Error(where + "more than " + std::to_string(kMaxTokens) + " tokens");
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string format_tokens(const std::vector<TokenEntry>& entries) {
  std::string out =
      "# dbwarden approvers' tokens: NAME SHA-256(token). Written by `dbwarden approvals "
      "token add`;\n# the tokens themselves are never stored.\n";
  for (const TokenEntry& e : entries) {
    out += e.name + " " + to_hex(e.hash.data(), e.hash.size()) + "\n";
  }
  return out;
}

std::optional<TokenEntry> find_token(const std::vector<TokenEntry>& entries,
                                     std::string_view token) {
  const TokenHash h = hash_token(token);
  std::optional<TokenEntry> found;
  for (const TokenEntry& e : entries) {
    // No break: every entry costs the same, match or not.
    if (same_hash(e.hash, h) && !found) found = e;
  }
  return found;
}

Result<std::unique_ptr<TokenFile>> TokenFile::Open(std::string path) {
  std::unique_ptr<TokenFile> f(new TokenFile());
  f->path_ = std::move(path);
  auto entries = read_tokens(f->path_);
  if (!entries.ok()) return entries.status();
  f->entries_ = std::move(entries.value());
  stat(f->path_.c_str(), &f->seen_);
  return f;
}

void TokenFile::refresh() {
  if (path_.empty()) return;
  struct stat now {};
  if (stat(path_.c_str(), &now) != 0) {
    // Gone: nobody holds a token any more.
    if (seen_.st_ino != 0)
      DBW_LOG(kWarning, "approvals-tokens %s is gone: no token is valid", path_.c_str());
    seen_ = {};
    entries_.clear();
    return;
  }
  if (same_stat(now, seen_)) return;
  seen_ = now;
  auto entries = read_tokens(path_);
  if (!entries.ok()) {
    if (entries.status().message() != last_error_) {
      last_error_ = entries.status().message();
      DBW_LOG(kError, "%s; the tokens read before stay in force", last_error_.c_str());
    }
    return;
  }
  last_error_.clear();
  entries_ = std::move(entries.value());
}

std::optional<TokenEntry> TokenFile::find(std::string_view token) {
  std::lock_guard<std::mutex> lock(mu_);
  refresh();
  return find_token(entries_, token);
}

bool TokenFile::holds(const std::string& name, const TokenHash& hash) {
  std::lock_guard<std::mutex> lock(mu_);
  refresh();
  for (const TokenEntry& e : entries_) {
    if (e.name == name && same_hash(e.hash, hash)) return true;
  }
  return false;
}

Result<std::vector<TokenEntry>> read_tokens(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return Status::Error("approvals-tokens " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || st.st_size > static_cast<off_t>(kMaxFileBytes)) {
    return Status::Error("approvals-tokens " + path + ": not a token file (over 1 MiB)");
  }
  if (st.st_mode & 0077) {
    // Hashes only, but a readable list of approvers and a writable one are both a gift.
    DBW_LOG(kWarning,
            "approvals-tokens %s is readable or writable by others (mode %03o): "
            "chmod 600 it",
            path.c_str(), static_cast<unsigned>(st.st_mode & 0777));
  }
  auto parsed = parse_tokens(read_whole_file(path, kMaxFileBytes));
  if (!parsed.ok())
    return Status::Error("approvals-tokens " + path + " " + parsed.status().message());
  return parsed;
}

Status add_token(const std::string& path, const std::string& name, const std::string& token) {
  if (!valid_approver_name(name)) {
    return Status::Error(
        "the name must be 1-64 letters, digits, '-', '_' or '.' (an approver's "
        "login name, as in the policy's approver_groups)");
  }
  auto lock = lock_tokens(path);
  if (!lock.ok()) return lock.status();
  std::vector<TokenEntry> entries;
  if (access(path.c_str(), F_OK) == 0) {
    auto read = read_tokens(path);
    if (!read.ok()) return read.status();
    entries = std::move(read.value());
  }
  for (const TokenEntry& e : entries) {
    if (e.name == name) {
      return Status::Error("'" + name +
                           "' has a token already: `dbwarden approvals token "
                           "remove " +
                           name + "` first (one token per approver)");
    }
  }
  entries.push_back(TokenEntry{name, hash_token(token)});
  return write_tokens(path, entries);
}

Status remove_token(const std::string& path, const std::string& name) {
  auto lock = lock_tokens(path);
  if (!lock.ok()) return lock.status();
  auto read = read_tokens(path);
  if (!read.ok()) return read.status();
  std::vector<TokenEntry> entries = std::move(read.value());
  const size_t before = entries.size();
  std::erase_if(entries, [&](const TokenEntry& e) { return e.name == name; });
  if (entries.size() == before) return Status::Error("'" + name + "' has no token in " + path);
  return write_tokens(path, entries);
}

}  // namespace dbwarden::agent
