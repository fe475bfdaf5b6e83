// SPDX-License-Identifier: Apache-2.0
//
// The `local_clients` map key (bpf/dbwarden.h struct dbw_client_key) under
// which the connect hook noted the client end of a server-side connection.
#pragma once

#include <optional>

#include "dbwarden.h"

namespace dbwarden::capture {

// Server-side connections only: TCP by both ends (IPv4 in its IPv6-mapped
// form, as the BPF side writes it), unix sockets by the client socket's
// inode (peer_ino; nullopt when the kernel did not give one). Client-side
// connections (to a remote database) have no local client to name.
std::optional<dbw_client_key> local_client_key(const dbw_conn_event& e);

}  // namespace dbwarden::capture
