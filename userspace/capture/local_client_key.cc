// SPDX-License-Identifier: Apache-2.0
#include "capture/local_client_key.h"

#include <arpa/inet.h>

#include <cstring>

namespace dbwarden::capture {
namespace {

// dbw_conn_event addresses: IPv4 in the first 4 bytes, IPv6 in all 16.
void mapped_address(const __u8 (&in)[16], __u8 family, __u8 (&out)[16]) {
  if (family == DBW_FAMILY_INET) {
    std::memset(out, 0, sizeof(out));
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out + 12, in, 4);
  } else {
    std::memcpy(out, in, sizeof(out));
  }
}

// An address as text in the map's form (IPv4 mapped into IPv6); its family, 0 if unparsed.
int text_address(const std::string& text, __u8 (&out)[16]) {
  __u8 v4[16] = {};
  if (inet_pton(AF_INET, text.c_str(), v4) == 1) {
    mapped_address(v4, DBW_FAMILY_INET, out);
    return AF_INET;
  }
  return inet_pton(AF_INET6, text.c_str(), out) == 1 ? AF_INET6 : 0;
}

}  // namespace

std::optional<dbw_client_key> tcp_client_key(const std::string& client_address,
                                             uint16_t client_port,
                                             const std::string& server_address,
                                             uint16_t server_port) {
  dbw_client_key key{};
  const int family = text_address(client_address, key.client_addr);
  if (family == 0 || text_address(server_address, key.server_addr) != family) return std::nullopt;
  key.client_port = client_port;
  key.server_port = server_port;
  return key;
}

std::optional<dbw_client_key> local_client_key(const dbw_conn_event& e) {
  if (e.side != DBW_SIDE_SERVER) return std::nullopt;
  dbw_client_key key{};
  if (e.family == DBW_FAMILY_UNIX) {
    if (e.peer_ino == 0) return std::nullopt;
    key.unix_ino = e.peer_ino;
    return key;
  }
  if (e.family != DBW_FAMILY_INET && e.family != DBW_FAMILY_INET6) return std::nullopt;
  mapped_address(e.client_addr, e.family, key.client_addr);
  mapped_address(e.server_addr, e.family, key.server_addr);
  key.client_port = e.client_port;
  key.server_port = e.server_port;
  return key;
}

std::string cgroup_path(const dbw_client_info& info) {
  std::string path;
  for (const auto& level : info.cgroup) {
    const size_t n = strnlen(level, sizeof(level));
    if (n == 0) return path.empty() ? "/" : path;  // the root: the path is whole
    path.insert(0, "/" + std::string(level, n));
  }
  return "..." + path;
}

}  // namespace dbwarden::capture
