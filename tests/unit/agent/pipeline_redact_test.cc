// SPDX-License-Identifier: Apache-2.0
//
// The pipeline redacts credentials before any output sees a statement: text,
// bound values and the server's message, for both dialects, and says so in
// Statement::redacted. The next statement on the same pipeline starts clean.
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../support/recording_sink.h"
#include "agent/pipeline.h"

namespace dbwarden::agent {
namespace {

TEST_CASE("pipeline: credentials never reach an output", "[agent][pipeline][redact]") {
  ConnectionInfo pg;
  pg.db_system = "postgresql";
  ConnectionInfo my;
  my.db_system = "mysql";
  dbw_test::RecordingSink sink;
  Pipeline pipeline({&sink});

  auto run = [&](const ConnectionInfo& c, const char* text, const char* status, const char* message,
                 std::vector<std::optional<std::string>> values) {
    Statement st;
    st.connection = &c;
    st.text = text;
    st.status_code = status;
    st.error_message = message;
    st.parameters = std::move(values);
    pipeline.on_statement(st);
    return st;
  };
  run(pg, "CREATE ROLE bob LOGIN PASSWORD 'pg-secret-1'", "42710", "role \"bob\" already exists",
      {});
  const Statement bound =
      run(pg, "SELECT dblink_connect($1), $2 = crypt($2, 'x') FROM users WHERE password = $2",
          "00000", "", {std::string("host=h password=pg-secret-2"), std::string("pg-secret-3")});
  run(my, "GRANT ALL ON *.* TO a IDENTIFIED BY 'my-secret-4' FOO", "42000",
      "You have an error in your SQL syntax; near 'IDENTIFIED BY 'my-secret-4' FOO'", {});
  run(pg, "SELECT 1", "00000", "", {std::string("a=b")});

  REQUIRE(sink.got.size() == 4);
  for (const Statement& s : sink.got) {
    INFO(s.text);
    std::string all = s.text + s.error_message + s.summary;
    for (const auto& p : s.parameters) all += p.value_or("");
    for (const auto& c : s.collections) all += c;
    CHECK(all.find("secret") == std::string::npos);
  }
  CHECK(sink.got[0].text == "CREATE ROLE bob LOGIN PASSWORD '<redacted>'");
  CHECK(sink.got[0].error_message == "role \"bob\" already exists");
  CHECK(sink.got[0].redacted);
  CHECK(sink.got[1].text == bound.text);
  CHECK(sink.got[1].parameters[0] == "host=h password=<redacted>");
  CHECK(sink.got[1].parameters[1] == "<redacted>");
  CHECK(sink.got[1].redacted);
  CHECK(sink.got[2].text == "GRANT ALL ON *.* TO a IDENTIFIED BY '<redacted>' FOO");
  CHECK(sink.got[2].error_message ==
        "You have an error in your SQL syntax; near 'IDENTIFIED BY '<redacted>' FOO'");
  CHECK(sink.got[2].redacted);
  CHECK(sink.got[3].text == "SELECT 1");
  CHECK(sink.got[3].parameters[0] == "a=b");
  CHECK_FALSE(sink.got[3].redacted);
  CHECK(pipeline.redacted() == 3);

  // The same shape with another password: the same fingerprint.
  run(pg, "CREATE ROLE bob LOGIN PASSWORD 'another one'", "00000", "", {});
  CHECK(sink.got.back().fingerprint == sink.got[0].fingerprint);
}

}  // namespace
}  // namespace dbwarden::agent
