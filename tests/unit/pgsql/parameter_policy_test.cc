// SPDX-License-Identifier: Apache-2.0
// The parameter hook between the decoders and the outputs: the pipeline
// applies it to every statement, `record-parameters` picks it.
#include "agent/parameter_policy.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "../support/recording_sink.h"
#include "agent/config.h"
#include "agent/pipeline.h"

namespace dbwarden::agent {
namespace {

Statement WithParameters() {
  static const ConnectionInfo info;
  Statement s;
  s.connection = &info;
  s.text = "SELECT $1, $2";
  s.parameters = {std::string("secret"), std::nullopt};
  return s;
}

Config Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "run");
  std::ostringstream out;
  auto r = parse_run_config(static_cast<int>(args.size()), args.data(), out);
  REQUIRE(r.ok());
  REQUIRE(r.value().has_value());
  return *r.value();
}

}  // namespace

TEST_CASE("parameter policy: the pipeline keeps values by default", "[pgsql]") {
  dbw_test::RecordingSink a, b;
  Pipeline pipeline({&a, &b});
  pipeline.on_statement(WithParameters());
  REQUIRE(a.got.size() == 1);
  CHECK(a.got[0].parameters == WithParameters().parameters);
  CHECK(b.got[0].parameters == WithParameters().parameters);
}

TEST_CASE("parameter policy: record-parameters=false drops values before every output",
          "[pgsql]") {
  dbw_test::RecordingSink a, b;
  const auto policy = MakeParameterPolicy(false);
  Pipeline pipeline({&a, &b}, policy.get());
  pipeline.on_statement(WithParameters());
  REQUIRE(a.got.size() == 1);
  REQUIRE(b.got.size() == 1);
  CHECK(a.got[0].parameters.empty());
  CHECK(b.got[0].parameters.empty());
  CHECK(a.got[0].text == "SELECT $1, $2");

  const auto keep = MakeParameterPolicy(true);
  Statement s = WithParameters();
  keep->apply(s);
  CHECK(s.parameters.size() == 2);
}

TEST_CASE("parameter policy: record-parameters on the command line and in the file", "[pgsql]") {
  CHECK(Parse({}).record_parameters);
  CHECK_FALSE(Parse({"--record-parameters", "false"}).record_parameters);
  CHECK(Parse({"--record-parameters", "true"}).record_parameters);
  char tmpl[] = "/tmp/dbw-pgproto-XXXXXX";
  const int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(tmpl) << "record-parameters = false\n";
  CHECK_FALSE(Parse({"--config", tmpl}).record_parameters);
  std::remove(tmpl);
}

}  // namespace dbwarden::agent
