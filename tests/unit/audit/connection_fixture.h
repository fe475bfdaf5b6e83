// SPDX-License-Identifier: Apache-2.0
//
// A TCP connection with every ConnectionInfo field the record prints set, and
// a local client process with every PeerIdentity field set, for the record
// formatting tests.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/statement.h"

namespace dbw_audit_test {

inline dbwarden::ConnectionInfo tcp_connection(uint64_t id = 42) {
  dbwarden::ConnectionInfo c;
  c.connection_id = id;
  c.db_system = "postgresql";
  c.client_address = "10.1.2.3";
  c.client_port = 51234;
  c.server_port = 5432;
  c.server_pid = 4321;
  c.user = "alice";
  c.database = "shop";
  c.application_name = "psql";
  return c;
}

inline dbwarden::PeerIdentity local_peer() {
  dbwarden::PeerIdentity p;
  p.pid = 4242;
  p.uid = 1000;
  p.user_name = "alice";
  p.login_uid = 1001;
  p.login_user = "bob";
  p.command = "psql";
  p.executable = "/usr/lib/postgresql/15/bin/psql";
  p.systemd_unit = "session-3.scope";
  p.container_id = std::string(64, 'a');
  return p;
}

}  // namespace dbw_audit_test
