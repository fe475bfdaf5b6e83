// SPDX-License-Identifier: Apache-2.0
//
// The `local_clients` map key (bpf/dbwarden.h struct dbw_client_key) under
// which the connect hook noted the client end of a server-side connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "dbwarden.h"

namespace dbwarden::capture {

// Server-side connections only: TCP by both ends (IPv4 in its IPv6-mapped
// form, as the BPF side writes it), unix sockets by the client socket's
// inode (peer_ino; nullopt when the kernel did not give one). Client-side
// connections (to a remote database) have no local client to name.
std::optional<dbw_client_key> local_client_key(const dbw_conn_event& e);
// The same key for a TCP client known by its addresses (text, IPv4 or IPv6) and ports, as
// the proxy knows the clients steered to it; nullopt when an address does not parse or the
// families differ.
std::optional<dbw_client_key> tcp_client_key(const std::string& client_address,
                                             uint16_t client_port,
                                             const std::string& server_address,
                                             uint16_t server_port);

// The cgroup names the hook read (innermost first) as a path: "/a/b/c" when it
// reached the root, ".../b/c" (a suffix) when the cgroup is deeper; "/" for the
// root cgroup itself.
std::string cgroup_path(const dbw_client_info& info);

}  // namespace dbwarden::capture
