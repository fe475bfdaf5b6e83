// SPDX-License-Identifier: Apache-2.0
//
// The proxy's records on their way to the pipeline (agent/record_queue.h): the decision is
// written into the queued copy, each record keeps a snapshot of its own connection however
// the connections interleave, and recycled slots carry nothing of an earlier record.
#include "agent/record_queue.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace dbwarden::agent {
namespace {

struct Keep : StatementSink {
  struct Got {
    Statement s;
    ConnectionInfo c;
  };
  std::vector<Got> got;
  void on_statement(const Statement& s) override {
    REQUIRE(s.connection != nullptr);
    got.push_back({s, *s.connection});
    got.back().s.connection = nullptr;
  }
};

TEST_CASE("record queue: decision written in, connections kept apart, slots reused clean",
          "[proxy]") {
  RecordQueue q;
  std::vector<ConnectionInfo> conns(3);
  for (size_t i = 0; i < conns.size(); ++i) {
    conns[i].connection_id = 100 + i;
    conns[i].user = "user" + std::to_string(i);
    conns[i].db_system = "postgresql";
  }
  Keep out;
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < conns.size(); ++i) {
      Statement s;
      s.connection = &conns[i];
      s.text = "SELECT " + std::to_string(round) + std::string(40, 'x');  // not inline
      if (round == 0) {
        s.error_message = "boom";
        s.parameters.emplace_back("p");
      }
      q.on_record(s, i == 1 ? "no-drop" : "", i == 1 ? "block" : "allow", nullptr);
    }
    if (round == 1) {
      // Names change mid-connection: later records carry the new ones.
      conns[2].database = "shop";
    }
    CHECK(q.drain(out) == conns.size());
  }
  REQUIRE(out.got.size() == 9);
  for (size_t k = 0; k < out.got.size(); ++k) {
    const size_t round = k / 3, i = k % 3;
    const auto& g = out.got[k];
    CHECK(g.s.text.rfind("SELECT " + std::to_string(round), 0) == 0);
    CHECK(g.s.policy_rule == (i == 1 ? "no-drop" : ""));
    CHECK(g.s.policy_action == (i == 1 ? "block" : "allow"));
    CHECK(g.c.connection_id == 100 + i);
    CHECK(g.c.user == "user" + std::to_string(i));
    // Recycled slots: what round 0 set is gone later.
    CHECK(g.s.error_message == (round == 0 ? "boom" : ""));
    CHECK(g.s.parameters.size() == (round == 0 ? 1u : 0u));
  }
  CHECK(out.got[2].c.database.empty());    // round 0
  CHECK(out.got[8].c.database == "shop");  // round 2
  CHECK(q.drain(out) == 0);
}

}  // namespace
}  // namespace dbwarden::agent
