// SPDX-License-Identifier: Apache-2.0
//
// The approvers' tokens for the HTTP API and the web inbox (issue 14). A token is 256
// random bits, shown once by `dbwarden approvals token add NAME`; the agent keeps only its
// SHA-256, in the file named by `approvals-tokens`, one approver a line:
//
//   # name  sha256(token), hex
//   alice   3f0c...e1 (64 hex digits)
//
// The name is the approver's login name, compared with the policy's approver groups as
// the CLI's passwd name is. A presented token is hashed and compared with every entry in
// constant time (CRYPTO_memcmp, no early exit), so neither a match's position nor a
// common prefix shows in the answer's timing.
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dbwarden::agent {

using TokenHash = std::array<uint8_t, 32>;

struct TokenEntry {
  std::string name;
  TokenHash hash{};
};

inline constexpr char kTokenPrefix[] = "dbwa_";  // tells a leaked token's kind at a glance
inline constexpr size_t kMaxTokens = 4096;

TokenHash hash_token(std::string_view token);
std::string to_hex(const uint8_t* bytes, size_t n);
// Equal in time independent of where they differ.
bool same_hash(const TokenHash& a, const TokenHash& b);
// A fresh token: the prefix and 64 hex digits of 32 bytes from the OpenSSL CSPRNG.
Result<std::string> new_token();
// Approver names as the policy has them: 1-64 letters, digits, '-', '_', '.'.
bool valid_approver_name(std::string_view name);

// The file's text; an error names the line. Duplicate names are refused.
Result<std::vector<TokenEntry>> parse_tokens(std::string_view text);
std::string format_tokens(const std::vector<TokenEntry>& entries);
// The owner of `token`, or nullopt. Looks at every entry, whatever matched.
std::optional<TokenEntry> find_token(const std::vector<TokenEntry>& entries,
                                     std::string_view token);

// The tokens file as the agent reads it: loaded at start (an unreadable or malformed file
// stops the start), then read again whenever it changes (inode, size or mtime), so that
// `token add` and `token remove` take effect at once. A change that does not parse keeps
// the entries in force, and says why once.
class TokenFile {
 public:
  static Result<std::unique_ptr<TokenFile>> Open(std::string path);
  explicit TokenFile(std::vector<TokenEntry> entries) : entries_(std::move(entries)) {}
  std::optional<TokenEntry> find(std::string_view token);
  // Whether `name` still has a token whose hash is `hash` (a session ends with its token).
  bool holds(const std::string& name, const TokenHash& hash);

 private:
  TokenFile() = default;
  void refresh();

  std::mutex mu_;
  std::string path_;
  struct stat seen_ {};
  std::vector<TokenEntry> entries_;
  std::string last_error_;
};

// `dbwarden approvals token add|remove|list`: the file is rewritten whole (a temporary
// file, then rename), mode 0600, under an flock so that two adds do not lose one.
Status add_token(const std::string& path, const std::string& name, const std::string& token);
Status remove_token(const std::string& path, const std::string& name);
Result<std::vector<TokenEntry>> read_tokens(const std::string& path);

}  // namespace dbwarden::agent
