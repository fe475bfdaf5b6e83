// SPDX-License-Identifier: Apache-2.0
//
// IPv4/IPv6 networks for `client_cidr`. An IPv4-mapped IPv6 client address
// (::ffff:10.1.2.3, what a dual-stack listener reports) matches IPv4 networks.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dbwarden::policy {

struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4: the first 4
  uint8_t prefix = 0;
  std::string text;  // as written, for explain
};

// "10.0.0.0/8", "2001:db8::/32", or a single address ("127.0.0.1" = /32).
// nullopt with `error` set when it is not one; host bits set is an error too
// ("10.1.2.3/8" is almost always a typo for a host or for 10.0.0.0/8).
std::optional<Cidr> parse_cidr(std::string_view text, std::string* error);

// An address as a client_address string holds it; nullopt when it does not parse.
struct Address {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};
};
std::optional<Address> parse_address(std::string_view text);

bool cidr_contains(const Cidr& net, const Address& addr);

}  // namespace dbwarden::policy
