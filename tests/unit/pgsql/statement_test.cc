// SPDX-License-Identifier: Apache-2.0
//
// Statement::reset must give back a default Statement whatever was in it: the
// PostgreSQL session refills one per Query instead of building a new one.
#include "protocol/statement.h"

#include <catch2/catch.hpp>

using dbwarden::ConnectionInfo;
using dbwarden::Statement;

TEST_CASE("statement: reset gives the default values back, keeping capacity", "[pgsql]") {
  // A field added to Statement must be reset in reset(); this size moves with it.
  STATIC_REQUIRE(sizeof(Statement) == 392 + 3 * sizeof(std::string) + 2 * sizeof(uint32_t) +
                                          sizeof(std::vector<dbwarden::MaskedCount>));
  const ConnectionInfo info;
  Statement s;
  s.connection = &info;
  s.start_ns = 1;
  s.end_ns = 2;
  s.text = std::string(200, 'q');
  s.text_truncated = true;
  s.status_code = "42P01";
  s.sqlstate = "42P01";
  s.error_message = "relation does not exist";
  s.returned_rows = 3;
  s.command_tag = "SELECT 3";
  s.statement_name = "s1";
  s.capture_gap = true;
  s.request_bytes = 4;
  s.response_bytes = 5;
  s.parameters = {std::string("x"), std::nullopt};
  s.statement_unresolved = true;
  s.operation = "SELECT";
  s.summary = "SELECT t";
  s.fingerprint = "0123456789abcdef";
  s.collections = {"t", "u"};
  s.unbounded_write = true;
  s.policy_rule = "no-drop";
  s.policy_action = "block";
  s.masked_columns = 2;
  s.masked_values = 7;
  s.masked_by = {dbwarden::MaskedCount{"pii", "email", 7}};
  const size_t capacity = s.text.capacity();

  s.reset();
  const Statement d;
  CHECK(s.connection == d.connection);
  CHECK(s.start_ns == d.start_ns);
  CHECK(s.end_ns == d.end_ns);
  CHECK(s.text == d.text);
  CHECK(s.text_truncated == d.text_truncated);
  CHECK(s.status_code == d.status_code);
  CHECK(s.sqlstate == d.sqlstate);
  CHECK(s.error_message == d.error_message);
  CHECK(s.returned_rows == d.returned_rows);
  CHECK(s.command_tag == d.command_tag);
  CHECK(s.statement_name == d.statement_name);
  CHECK(s.capture_gap == d.capture_gap);
  CHECK(s.request_bytes == d.request_bytes);
  CHECK(s.response_bytes == d.response_bytes);
  CHECK(s.parameters == d.parameters);
  CHECK(s.statement_unresolved == d.statement_unresolved);
  CHECK(s.operation == d.operation);
  CHECK(s.summary == d.summary);
  CHECK(s.fingerprint == d.fingerprint);
  CHECK(s.collections == d.collections);
  CHECK(s.unbounded_write == d.unbounded_write);
  CHECK(s.policy_rule == d.policy_rule);
  CHECK(s.policy_action == d.policy_action);
  CHECK(s.masked_columns == d.masked_columns);
  CHECK(s.masked_values == d.masked_values);
  CHECK(s.masked_by.empty());
  CHECK(s.text.capacity() == capacity);
}
