// SPDX-License-Identifier: Apache-2.0
#include "audit/chain.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>

namespace dbwarden::audit {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// Both hex digits of every byte value: one lookup and one 2-byte copy a byte
// instead of two of each (the digit loop was ~2/3 of the writer's own code in
// a replay profile).
struct HexPairs {
  char pairs[256][2];
};
constexpr HexPairs make_hex_pairs() {
  HexPairs t{};
  for (int b = 0; b < 256; ++b) {
    t.pairs[b][0] = kHexDigits[b >> 4];
    t.pairs[b][1] = kHexDigits[b & 0xF];
  }
  return t;
}
constexpr HexPairs kHexPairs = make_hex_pairs();

// 64 lowercase hex digits of `digest` at `out`.
void write_hex(const Digest& digest, char* out) {
  for (size_t i = 0; i < digest.size(); ++i)
    std::memcpy(out + 2 * i, kHexPairs.pairs[digest[i]], 2);
}

// Keys shorter than the digest weaken HMAC (RFC 2104 section 3).
constexpr size_t kMinKeyBytes = 16;
constexpr size_t kMaxKeyBytes = 4096;

// `,"dbwarden.seq":N` and the chain field with its closing quote, brace and
// '\n' are at most this long.
constexpr size_t kSeqFieldMax = kSeqKey.size() + 20;
constexpr size_t kChainLineEnd = kChainFieldBytes + 1;

size_t format_seq_field(uint64_t seq, char* buf) {
  std::memcpy(buf, kSeqKey.data(), kSeqKey.size());
  const auto r = std::to_chars(buf + kSeqKey.size(), buf + kSeqFieldMax, seq);
  return static_cast<size_t>(r.ptr - buf);
}

// The chain field, its closing quote and brace, and '\n': kChainLineEnd bytes.
void format_chain_line_end(const Digest& chain, char* buf) {
  std::memcpy(buf, kChainKey.data(), kChainKey.size());
  char* hex = buf + kChainKey.size();
  write_hex(chain, hex);
  std::memcpy(hex + 64, "\"}\n", 3);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

Result<std::unique_ptr<ChainHasher>> ChainHasher::Create(std::string_view key) {
  std::unique_ptr<ChainHasher> h(new ChainHasher());
  if (key.empty()) {
    // Fetch once: EVP_DigestInit_ex with a fetched EVP_MD skips the
    // per-call algorithm lookup.
    h->md_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    h->md_ctx_ = EVP_MD_CTX_new();
    // Bound to the digest once here; next() re-initialises with a null type,
    // which keeps it (measured: ~50 ns a record less than naming it again).
    if (h->md_ == nullptr || h->md_ctx_ == nullptr ||
        EVP_DigestInit_ex2(h->md_ctx_, h->md_, nullptr) != 1) {
      return Status::Error("audit chain: OpenSSL has no SHA-256");
    }
    return h;
  }
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return Status::Error("audit chain: OpenSSL has no HMAC");
  h->mac_ctx_ = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context keeps its own reference
  if (h->mac_ctx_ == nullptr) return Status::Error("audit chain: cannot create an HMAC context");
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_END};
  if (EVP_MAC_init(h->mac_ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   params) != 1) {
    return Status::Error("audit chain: cannot initialise HMAC-SHA-256");
  }
  return h;
}

ChainHasher::~ChainHasher() {
  EVP_MD_CTX_free(md_ctx_);
  EVP_MD_free(md_);
  EVP_MAC_CTX_free(mac_ctx_);
}

Digest ChainHasher::hash(const Digest& prev, std::string_view a, std::string_view b) {
  Digest out{};
  const auto* pa = reinterpret_cast<const unsigned char*>(a.data());
  const auto* pb = reinterpret_cast<const unsigned char*>(b.data());
  if (mac_ctx_ != nullptr) {
    size_t len = 0;
    // A null key re-initialises with the key given at creation.
    EVP_MAC_init(mac_ctx_, nullptr, 0, nullptr);
    EVP_MAC_update(mac_ctx_, prev.data(), prev.size());
    EVP_MAC_update(mac_ctx_, pa, a.size());
    EVP_MAC_update(mac_ctx_, pb, b.size());
    EVP_MAC_final(mac_ctx_, out.data(), &len, out.size());
    return out;
  }
  unsigned int len = 0;
  EVP_DigestInit_ex2(md_ctx_, nullptr, nullptr);
  EVP_DigestUpdate(md_ctx_, prev.data(), prev.size());
  EVP_DigestUpdate(md_ctx_, pa, a.size());
  EVP_DigestUpdate(md_ctx_, pb, b.size());
  EVP_DigestFinal_ex(md_ctx_, out.data(), &len);
  return out;
}

Result<std::string> load_hmac_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("audit chain: cannot read HMAC key file " + path);
  std::string key;
  char buf[512];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    key.append(buf, static_cast<size_t>(in.gcount()));
    if (key.size() > kMaxKeyBytes + 2) break;
  }
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.size() < kMinKeyBytes) {
    return Status::Error("audit chain: HMAC key file " + path + " holds fewer than " +
                         std::to_string(kMinKeyBytes) + " bytes");
  }
  if (key.size() > kMaxKeyBytes) {
    return Status::Error("audit chain: HMAC key file " + path + " holds more than " +
                         std::to_string(kMaxKeyBytes) + " bytes");
  }
  return key;
}

void append_hex(const Digest& digest, std::string& out) {
  char buf[64];
  write_hex(digest, buf);
  out.append(buf, sizeof(buf));
}

std::string to_hex(const Digest& digest) {
  std::string s;
  append_hex(digest, s);
  return s;
}

bool parse_hex(std::string_view hex, Digest& out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::optional<RecordChain> parse_record_chain(std::string_view line) {
  if (line.size() < kChainFieldBytes + 2) return std::nullopt;
  const size_t chain_at = line.size() - kChainFieldBytes;
  if (line.substr(chain_at, kChainKey.size()) != kChainKey) return std::nullopt;
  if (line.substr(line.size() - 2) != "\"}") return std::nullopt;
  RecordChain rc;
  if (!parse_hex(line.substr(chain_at + kChainKey.size(), 64), rc.chain)) return std::nullopt;
  rc.prefix = line.substr(0, chain_at);
  // The seq digits end the prefix: `...,"dbwarden.seq":123`.
  size_t digits = rc.prefix.size();
  while (digits > 0 && rc.prefix[digits - 1] >= '0' && rc.prefix[digits - 1] <= '9') --digits;
  if (digits == rc.prefix.size() || rc.prefix.size() - digits > 20) return std::nullopt;
  if (digits < kSeqKey.size() + 1 ||
      rc.prefix.substr(digits - kSeqKey.size(), kSeqKey.size()) != kSeqKey) {
    return std::nullopt;
  }
  const char* first = rc.prefix.data() + digits;
  const char* last = rc.prefix.data() + rc.prefix.size();
  const auto r = std::from_chars(first, last, rc.seq);
  if (r.ec != std::errc() || r.ptr != last) return std::nullopt;
  if (last - first > 1 && *first == '0') return std::nullopt;  // one spelling per number
  if (rc.prefix.front() != '{') return std::nullopt;
  return rc;
}

namespace {

// The canonical record ends with the seq field and the brace: hashed as one
// piece from `buf`, where the chain field then overwrites the brace.
Digest hash_record(ChainHasher& hasher, const Digest& prev, std::string_view body, char* buf,
                   size_t seq_len) {
  buf[seq_len] = '}';
  return hasher.hash(prev, body, std::string_view(buf, seq_len + 1));
}

}  // namespace

Digest append_chain_fields(ChainHasher& hasher, const Digest& prev, uint64_t seq, size_t start,
                           std::string& out) {
  char buf[kSeqFieldMax + kChainLineEnd];
  const size_t seq_len = format_seq_field(seq, buf);
  const Digest chain = hash_record(hasher, prev, std::string_view(out).substr(start), buf, seq_len);
  format_chain_line_end(chain, buf + seq_len);
  out.append(buf, seq_len + kChainLineEnd);
  return chain;
}

Digest append_chained_record(ChainHasher& hasher, const Digest& prev, uint64_t seq,
                             std::string_view body, std::string& out) {
  char buf[kSeqFieldMax + kChainLineEnd];
  const size_t seq_len = format_seq_field(seq, buf);
  const Digest chain = hash_record(hasher, prev, body, buf, seq_len);
  format_chain_line_end(chain, buf + seq_len);
  out.append(body);
  out.append(buf, seq_len + kChainLineEnd);
  return chain;
}

}  // namespace dbwarden::audit
