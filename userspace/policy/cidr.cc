// SPDX-License-Identifier: Apache-2.0
#include "policy/cidr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace dbwarden::policy {

std::optional<Address> parse_address(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  Address a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
  a.v6 = true;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.bytes.data(), kMapped, sizeof kMapped) == 0) {
    std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
    std::memset(a.bytes.data() + 4, 0, 12);
    a.v6 = false;
  }
  return a;
}

std::optional<Cidr> parse_cidr(std::string_view text, std::string* error) {
  const size_t slash = text.find('/');
  const std::string_view host = text.substr(0, slash);
  Address a;
  char buf[INET6_ADDRSTRLEN];
  bool ok = !host.empty() && host.size() < sizeof buf;
  if (ok) {
    std::memcpy(buf, host.data(), host.size());
    buf[host.size()] = '\0';
    if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) {
      a.v6 = false;
    } else if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) {
      a.v6 = true;
    } else {
      ok = false;
    }
  }
  if (!ok) {
    *error = "`" + std::string(text) + "` is not an IPv4 or IPv6 address or network";
    return std::nullopt;
  }
  const unsigned max = a.v6 ? 128 : 32;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || prefix > max) {
      *error = "`" + std::string(text) + "`: the prefix length must be 0-" + std::to_string(max);
      return std::nullopt;
    }
  }
  Cidr c;
  c.v6 = a.v6;
  c.bytes = a.bytes;
  c.prefix = static_cast<uint8_t>(prefix);
  c.text = std::string(text);
  for (unsigned bit = prefix; bit < max; ++bit) {
    if (c.bytes[bit / 8] & (0x80u >> (bit % 8))) {
      *error = "`" + std::string(text) + "` has host bits set after /" + std::to_string(prefix) +
               "; write the network address";
      return std::nullopt;
    }
  }
  return c;
}

bool cidr_contains(const Cidr& net, const Address& addr) {
  if (net.v6 != addr.v6) return false;
  const unsigned whole = net.prefix / 8;
  if (std::memcmp(net.bytes.data(), addr.bytes.data(), whole) != 0) return false;
  const unsigned rest = net.prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return (net.bytes[whole] & mask) == (addr.bytes[whole] & mask);
}

}  // namespace dbwarden::policy
