// SPDX-License-Identifier: Apache-2.0
//
// The record the audit throughput benches write: a pgbench-like client's
// 100-byte SELECT returning one row, so their numbers compare.
#pragma once

#include "protocol/statement.h"

namespace dbw_test {

// Owns the connection that `statement` points to, hence neither copied nor moved.
struct BenchStatement {
  BenchStatement() {
    connection.connection_id = 12345;
    connection.db_system = "postgresql";
    connection.client_address = "127.0.0.1";
    connection.client_port = 54321;
    connection.server_port = 5432;
    connection.server_pid = 4242;
    connection.user = "app_user";
    connection.database = "shop";
    connection.application_name = "pgbench";
    statement.connection = &connection;
    statement.text =
        "SELECT a.id, a.name, b.total FROM accounts a JOIN balances b ON b.id = a.id WHERE "
        "a.name = 'o''x''y'";
    statement.operation = "SELECT";
    statement.returned_rows = 1;
    statement.start_ns = 1'000'000'000;
  }
  BenchStatement(const BenchStatement&) = delete;
  BenchStatement& operator=(const BenchStatement&) = delete;

  dbwarden::ConnectionInfo connection;
  dbwarden::Statement statement;
};

}  // namespace dbw_test
