// SPDX-License-Identifier: Apache-2.0
//
// The hash chain that makes the audit trail tamper-evident. Every record ends
// with two fields the writer appends after format_record's keys:
//
//   {...record keys...,"dbwarden.seq":N,"dbwarden.chain":"<64 hex digits>"}
//
// seq counts records from 0 over the whole chain (all files, all restarts).
// The record's canonical bytes are the line without the chain field, i.e.
// `{...,"dbwarden.seq":N}`, and
//
//   chain[N] = H(chain[N-1] as 32 raw bytes || canonical bytes of record N)
//
// with chain[-1] = 32 zero bytes and H = SHA-256, or HMAC-SHA-256 keyed with
// the key file's bytes when a key is configured. The chain field has a fixed
// length and comes last, so a reader finds it without a JSON parser and the
// writer hashes the line prefix exactly once.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

// OpenSSL's handle types, so that this header does not pull in OpenSSL.
struct evp_md_ctx_st;
struct evp_md_st;
struct evp_mac_ctx_st;

namespace dbwarden::audit {

using Digest = std::array<uint8_t, 32>;

inline constexpr std::string_view kSeqKey = ",\"dbwarden.seq\":";
inline constexpr std::string_view kChainKey = ",\"dbwarden.chain\":\"";
// kChainKey, 64 hex digits, the closing quote and brace.
inline constexpr size_t kChainFieldBytes = kChainKey.size() + 64 + 2;
inline constexpr std::string_view kAlgSha256 = "sha256";
inline constexpr std::string_view kAlgHmacSha256 = "hmac-sha256";

// Computes chain values with OpenSSL EVP. Not thread-safe; one per thread.
class ChainHasher {
 public:
  // An empty key gives plain SHA-256; otherwise HMAC-SHA-256 with that key.
  static Result<std::unique_ptr<ChainHasher>> Create(std::string_view key);
  ~ChainHasher();
  ChainHasher(const ChainHasher&) = delete;
  ChainHasher& operator=(const ChainHasher&) = delete;

  // H(prev || prefix || "}"): `prefix` is the canonical record without its
  // closing brace, which the writer has not written yet at that point.
  Digest next(const Digest& prev, std::string_view prefix) { return hash(prev, prefix, "}"); }
  // H(prev || a || b): the writer hashes a record where it lies (`a`) and its
  // seq field with the closing brace from the stack (`b`).
  Digest hash(const Digest& prev, std::string_view a, std::string_view b);
  bool keyed() const { return mac_ctx_ != nullptr; }
  std::string_view algorithm() const { return keyed() ? kAlgHmacSha256 : kAlgSha256; }

 private:
  ChainHasher() = default;
  ::evp_md_ctx_st* md_ctx_ = nullptr;
  ::evp_md_st* md_ = nullptr;
  ::evp_mac_ctx_st* mac_ctx_ = nullptr;
};

// Reads an HMAC key file: its bytes, less trailing newlines. The error says
// why (unreadable, too short, too long) but never shows key bytes.
Result<std::string> load_hmac_key(const std::string& path);

void append_hex(const Digest& digest, std::string& out);
std::string to_hex(const Digest& digest);
// Exactly 64 lowercase hex digits.
bool parse_hex(std::string_view hex, Digest& out);

// The chain fields of one line (without its '\n'), or nullopt when the line
// does not end in a well-formed seq and chain field.
struct RecordChain {
  std::string_view prefix;  // canonical bytes without the closing brace
  uint64_t seq = 0;
  Digest chain{};
};
std::optional<RecordChain> parse_record_chain(std::string_view line);

// Appends `,"dbwarden.seq":N` to the canonical prefix in `out` and then the
// chain field and '\n'. `out` holds a record from `start` on, without its
// closing brace. Returns the new chain value.
Digest append_chain_fields(ChainHasher& hasher, const Digest& prev, uint64_t seq, size_t start,
                           std::string& out);
// The same for a record that lies elsewhere: appends `body` (a record without
// its closing brace) and its seq and chain fields and '\n' to `out`. Hashes
// `body` where it lies: the same bytes as append_chain_fields would write.
Digest append_chained_record(ChainHasher& hasher, const Digest& prev, uint64_t seq,
                             std::string_view body, std::string& out);

}  // namespace dbwarden::audit
