// SPDX-License-Identifier: Apache-2.0
#include "metrics/top_fingerprints.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>

using dbwarden::metrics::TopFingerprints;

TEST_CASE("top fingerprints: exact while everything fits", "[metrics]") {
  TopFingerprints top(10);
  for (int i = 0; i < 5; ++i) {
    for (int k = 0; k <= i; ++k) top.add("fp" + std::to_string(i), "S" + std::to_string(i));
  }
  const auto t = top.top(3);
  REQUIRE(t.size() == 3);
  CHECK(t[0].fingerprint == "fp4");
  CHECK(t[0].count == 5);
  CHECK(t[0].summary == "S4");
  CHECK(t[1].count == 4);
  CHECK(t[2].count == 3);
  CHECK(t[0].error == 0);
  CHECK(top.top(100).size() == 5);
}

TEST_CASE("top fingerprints: memory is bounded and the heavy hitters survive a flood",
          "[metrics]") {
  TopFingerprints top(50);
  std::mt19937 rng(7);  // fixed seed: replayable
  // 100,000 statements of ever-new fingerprints and five heavy ones, 4,000 each:
  // above total / capacity = 120,000 / 50 = 2,400, the bound past which the
  // algorithm guarantees a fingerprint is kept.
  for (int i = 0; i < 100000; ++i) {
    top.add("noise" + std::to_string(rng()), "noise");
    if (i % 5 == 0) top.add("heavy" + std::to_string(i % 25 / 5), "heavy");
  }
  CHECK(top.size() == 50);
  CHECK(top.evictions() > 0);
  const auto t = top.top(5);
  REQUIRE(t.size() == 5);
  for (const auto& e : t) {
    CHECK(e.fingerprint.rfind("heavy", 0) == 0);
    CHECK(e.count >= 4000);            // counts are upper bounds: true count 4,000 each
    CHECK(e.count - e.error <= 4000);  // ... and count - error a lower bound
  }
}
