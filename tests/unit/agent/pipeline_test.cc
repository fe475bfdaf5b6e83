// SPDX-License-Identifier: Apache-2.0
//
// The pipeline reuses one statement for what it hands on: every decoded field
// must arrive as the decoder gave it, nothing of the previous statement may
// stay behind, and the analyser's fields are its own.
#include "agent/pipeline.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "../support/recording_sink.h"

namespace dbwarden::agent {
namespace {

Statement everything(const ConnectionInfo& c) {
  Statement s;
  s.connection = &c;
  s.start_ns = 11;
  s.end_ns = 22;
  s.text = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
  s.text_truncated = true;
  s.status_code = "1213";
  s.sqlstate = "40001";
  s.error_message = "could not serialize access";
  s.returned_rows = 7;
  s.command_tag = "UPDATE 7";
  s.statement_name = "s1";
  s.capture_gap = true;
  s.request_bytes = 100;
  s.response_bytes = 200;
  s.parameters = {std::string("5"), std::nullopt};
  s.statement_unresolved = true;
  // What a decoder never fills: the analyser decides these.
  s.operation = "BOGUS";
  s.summary = "BOGUS";
  s.fingerprint = "BOGUS";
  s.collections = {"bogus"};
  return s;
}

TEST_CASE("pipeline: every decoded field reaches each output, none stays behind",
          "[agent][pipeline]") {
  ConnectionInfo c;
  c.db_system = "postgresql";
  dbw_test::RecordingSink a, b;
  Pipeline pipeline({&a, &b});
  const Statement full = everything(c);
  pipeline.on_statement(full);
  Statement plain;
  plain.connection = &c;
  plain.text = "SELECT 1";
  pipeline.on_statement(plain);

  for (const dbw_test::RecordingSink* sink : {&a, &b}) {
    REQUIRE(sink->got.size() == 2);
    const Statement& x = sink->got[0];
    CHECK(dbw_test::DescribeStatement(x) == dbw_test::DescribeStatement(full));
    CHECK(x.parameters == full.parameters);
    CHECK(x.statement_unresolved);
    CHECK(x.operation == "UPDATE");
    CHECK(x.summary == "UPDATE accounts");
    CHECK(x.fingerprint.size() == 16);
    CHECK(x.collections == std::vector<std::string>{"accounts"});
    CHECK_FALSE(x.unbounded_write);

    const Statement& y = sink->got[1];
    CHECK(dbw_test::DescribeStatement(y) == dbw_test::DescribeStatement(plain));
    CHECK(y.parameters.empty());
    CHECK_FALSE(y.statement_unresolved);
    CHECK(y.operation == "SELECT");
    CHECK(y.collections.empty());
  }
  CHECK(pipeline.statements() == 2);
}

}  // namespace
}  // namespace dbwarden::agent
