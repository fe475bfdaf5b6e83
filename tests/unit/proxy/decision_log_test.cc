// SPDX-License-Identifier: Apache-2.0
//
// The verdicts a relay keeps for its records (proxy/decision_log.h): the newest verdict for
// a text answers, a text judged again takes one slot, and the oldest goes when the log is
// full.
#include "proxy/decision_log.h"

#include <catch2/catch.hpp>
#include <string>

namespace dbwarden::proxy {
namespace {

JudgedStatement judged(std::string text, std::string rule, bool block = false) {
  JudgedStatement s;
  s.text = std::move(text);
  s.verdict.rule = std::move(rule);
  s.verdict.action = block ? "block" : "allow";
  s.verdict.block = block;
  return s;
}

TEST_CASE("decision log: the newest verdict for a text answers", "[proxy]") {
  DecisionLog log;
  CHECK(log.find("SELECT 1") == nullptr);
  log.remember(judged("SELECT 1", "first"));
  log.remember(judged("SELECT 2", "other"));
  log.remember(judged("SELECT 1", "second", true));
  const Verdict* v = log.find("SELECT 1");
  REQUIRE(v != nullptr);
  CHECK(v->rule == "second");
  CHECK(v->block);
  CHECK(log.find("SELECT 2")->rule == "other");
  CHECK(log.find("SELECT 3") == nullptr);
  log.clear();
  CHECK(log.find("SELECT 1") == nullptr);
  CHECK(log.find("SELECT 2") == nullptr);
}

TEST_CASE("decision log: bounded, the oldest goes first, a repeated text keeps one entry",
          "[proxy]") {
  DecisionLog log;
  for (size_t i = 0; i < DecisionLog::kMaxEntries; ++i) {
    log.remember(judged("SELECT " + std::to_string(i), "r" + std::to_string(i)));
  }
  for (size_t i = 0; i < DecisionLog::kMaxEntries; ++i) {
    REQUIRE(log.find("SELECT " + std::to_string(i)) != nullptr);
  }
  // One more: the oldest goes, every other stays.
  log.remember(judged("SELECT new", "n"));
  CHECK(log.find("SELECT 0") == nullptr);
  CHECK(log.find("SELECT 1") != nullptr);
  CHECK(log.find("SELECT new")->rule == "n");
  // Judged again many times: the text still answers with its newest verdict, and
  // texts remembered after its first judgement are only evicted by new texts.
  for (int i = 0; i < 3; ++i) log.remember(judged("SELECT new", "n" + std::to_string(i)));
  CHECK(log.find("SELECT new")->rule == "n2");
  size_t kept = 0;
  for (size_t i = 0; i < DecisionLog::kMaxEntries; ++i) {
    kept += log.find("SELECT " + std::to_string(i)) != nullptr;
  }
  CHECK(kept >= DecisionLog::kMaxEntries - 4);
}

}  // namespace
}  // namespace dbwarden::proxy
