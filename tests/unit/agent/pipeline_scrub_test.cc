// SPDX-License-Identifier: Apache-2.0
//
// The audit trail is not a PII store (issue 13, item 4): with a policy whose mask rules
// name content detectors, the pipeline masks every detected item in statement text, bound
// values, error messages and summaries before any output sees them, and the log filter does
// the same to log lines. Without a policy (or without detectors) nothing changes. Near-
// misses (a 16-digit number failing Luhn) stay.
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "../support/recording_sink.h"
#include "agent/content_scrub.h"
#include "agent/pipeline.h"
#include "policy/policy.h"

namespace dbwarden::agent {
namespace {

constexpr const char* kPlanted[] = {"4111111111111111", "alice@example.com", "123-45-6789",
                                    "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "GB82WEST12345698765432"};

std::shared_ptr<const policy::Policy> load(const std::string& yaml) {
  auto p = policy::Policy::load_string(yaml, "p.yaml");
  INFO((p.ok() ? std::string() : p.status().message()));
  REQUIRE(p.ok());
  return p.value();
}

constexpr char kMaskPolicy[] =
    "rules:\n"
    "  - name: pii\n"
    "    match: {user: analyst}\n"  // masks results for analysts only; the trail for all
    "    action: mask\n"
    "    detectors: [payment_card, email, us_ssn]\n"
    "  - name: secrets\n"
    "    action: mask\n"
    "    detectors: [token, iban]\n";

struct Run {
  dbw_test::RecordingSink sink;
  ContentScrub scrub;
  Pipeline pipeline{{&sink}};
  ConnectionInfo pg;
  Run() {
    pg.db_system = "postgresql";
    pg.user = "app";
    pipeline.set_scrub(&scrub);
  }
  void statement(const std::string& text, std::vector<std::optional<std::string>> params = {},
                 const std::string& error = "") {
    Statement st;
    st.connection = &pg;
    st.text = text;
    st.parameters = std::move(params);
    if (!error.empty()) {
      st.status_code = "23505";
      st.error_message = error;
    }
    pipeline.on_statement(st);
  }
  void workload() {
    statement("INSERT INTO cards VALUES ('4111111111111111', 'alice@example.com')");
    statement("SELECT * FROM people WHERE ssn = '123-45-6789'");
    statement("UPDATE keys SET k = $1, iban = $2 WHERE id = $3",
              {std::string("sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
               std::string("GB82WEST12345698765432"), std::nullopt});
    statement("INSERT INTO users VALUES (1, 'alice@example.com')", {},
              "duplicate key value violates unique constraint \"users_email_key\": Key "
              "(email)=(alice@example.com) already exists.");
    statement("SELECT 4111111111111112");  // fails Luhn: not a card
  }
  std::string all() const {
    std::string out;
    for (const Statement& s : sink.got) {
      out += s.text + "\n" + s.error_message + "\n" + s.summary + "\n";
      for (const auto& p : s.parameters) out += p.value_or("NULL") + "\n";
    }
    return out;
  }
};

TEST_CASE("pipeline scrub: planted values never reach an output", "[agent][pipeline][mask]") {
  Run r;
  r.scrub.set(load(kMaskPolicy));
  REQUIRE(r.scrub.active());
  r.workload();
  REQUIRE(r.sink.got.size() == 5);
  const std::string all = r.all();
  for (const char* v : kPlanted) {
    INFO(v);
    CHECK(all.find(v) == std::string::npos);
  }
  CHECK(r.sink.got[0].text ==
        "INSERT INTO cards VALUES ('[masked:payment_card]', '[masked:email]')");
  CHECK(r.sink.got[0].redacted);
  CHECK(r.sink.got[2].parameters[0] == "[masked:token]");
  CHECK(r.sink.got[2].parameters[1] == "[masked:iban]");
  CHECK_FALSE(r.sink.got[2].parameters[2].has_value());
  CHECK(r.sink.got[3].error_message.find("(email)=([masked:email])") != std::string::npos);
  // The fingerprint comes from the literals-free normal form: the same with or without.
  CHECK(r.sink.got[0].fingerprint.size() == 16);
  // A near-miss stays, and the record is not marked.
  CHECK(r.sink.got[4].text == "SELECT 4111111111111112");
  CHECK_FALSE(r.sink.got[4].redacted);
  CHECK(r.scrub.items() == 7);
  CHECK(r.pipeline.redacted() == 4);
}

TEST_CASE("pipeline scrub: no policy, or no detectors, changes nothing", "[agent][pipeline]") {
  for (const char* yaml :
       {"", "rules: []\n", "rules:\n  - {name: m, action: mask, columns: ['*.*.ssn']}\n"}) {
    Run r;
    if (*yaml != '\0') r.scrub.set(load(yaml));
    CHECK_FALSE(r.scrub.active());
    r.workload();
    const std::string all = r.all();
    for (const char* v : kPlanted) {
      INFO(v);
      CHECK(all.find(v) != std::string::npos);
    }
    CHECK(r.pipeline.redacted() == 0);
  }
}

TEST_CASE("pipeline scrub: a reload to a policy without detectors stops it", "[agent][mask]") {
  ContentScrub scrub;
  scrub.set(load(kMaskPolicy));
  std::string line = "connection from alice@example.com refused";
  scrub.filter(line);
  CHECK(line == "connection from [masked:email] refused");
  scrub.set(load("rules: []\n"));
  line = "connection from alice@example.com refused";
  scrub.filter(line);
  CHECK(line == "connection from alice@example.com refused");
  scrub.set(nullptr);
  CHECK_FALSE(scrub.active());
}

}  // namespace
}  // namespace dbwarden::agent
