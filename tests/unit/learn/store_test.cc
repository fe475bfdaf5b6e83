// SPDX-License-Identifier: Apache-2.0
//
// Learn mode's store: what it learns survives a reopen, caps hold and are counted, prunes
// (also from another process's handle) apply, a torn last line is cut, malformed lines are
// skipped and counted, and compaction keeps the set.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "../support/temp_dir.h"
#include "learn/learn.h"

namespace {

using dbwarden::learn::Identity;
using dbwarden::learn::Limits;
using dbwarden::learn::Store;
using Seen = Store::Seen;

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<Store> open(const std::string& dir, Limits limits = {}, int64_t now = 1000) {
  auto s = Store::Open(dir, limits, now);
  REQUIRE(s.ok());
  return std::move(s.value());
}

const Identity kEtl{"etl", "/usr/local/bin/nightly", 1000};
const Identity kWeb{"web", "app.service", std::nullopt};

}  // namespace

TEST_CASE("learn store: learned fingerprints survive a reopen with counts and times") {
  dbw_test::TempDir dir;
  const std::string etl = Store::to_key(kEtl), web = Store::to_key(kWeb);
  {
    auto s = open(dir.path, {}, 1000);
    CHECK(s->created_s() == 1000);
    CHECK(s->observe(etl, 0x1111, 1001, true) == Seen::kLearned);
    CHECK(s->observe(etl, 0x1111, 1002, true) == Seen::kKnown);
    CHECK(s->observe(etl, 0x2222, 1003, true) == Seen::kLearned);
    CHECK(s->observe(web, 0x1111, 1004, false) == Seen::kNovel);  // protect: not learned
    REQUIRE(s->flush(true).ok());
    CHECK(s->observe(etl, 0x1111, 1010, true) == Seen::kKnown);
    REQUIRE(s->flush(true).ok());
  }
  auto s = open(dir.path, {}, 5000);
  CHECK(s->created_s() == 1000);  // the window counts from the first start
  CHECK(s->known(etl, 0x1111));
  CHECK(s->known(etl, 0x2222));
  CHECK_FALSE(s->known(web, 0x1111));
  CHECK_FALSE(s->known(etl, 0x3333));
  const auto all = s->list();
  REQUIRE(all.size() == 1);
  CHECK(all[0].identity == kEtl);
  REQUIRE(all[0].entries.size() == 2);
  CHECK(all[0].entries[0].fingerprint == 0x1111);
  CHECK(all[0].entries[0].count == 3);
  CHECK(all[0].entries[0].first_s == 1001);
  CHECK(all[0].entries[0].last_s == 1010);
  CHECK(all[0].entries[1].count == 1);
}

TEST_CASE("learn store: identities differ by user, program and login uid") {
  dbw_test::TempDir dir;
  auto s = open(dir.path);
  const Identity a{"etl", "/bin/psql", 1000}, b{"etl", "/bin/psql", 1001},
      c{"etl", "/bin/psql", std::nullopt}, d{"etl", "/bin/other", 1000},
      e{"app", "/bin/psql", 1000};
  CHECK(s->observe(Store::to_key(a), 7, 1, true) == Seen::kLearned);
  for (const Identity& other : {b, c, d, e}) {
    CHECK(s->observe(Store::to_key(other), 7, 1, false) == Seen::kNovel);
  }
}

TEST_CASE("learn store: odd bytes in names round-trip through the file") {
  dbw_test::TempDir dir;
  const Identity odd{"we\tird%user", "/opt/my app/bin\nx", 0};
  {
    auto s = open(dir.path);
    CHECK(s->observe(Store::to_key(odd), 42, 1, true) == Seen::kLearned);
    REQUIRE(s->flush(false).ok());
  }
  auto s = open(dir.path);
  CHECK(s->known(Store::to_key(odd), 42));
  REQUIRE(s->list().size() == 1);
  CHECK(s->list()[0].identity == odd);
  CHECK(s->stats().bad_lines == 0);
}

TEST_CASE("learn store: caps per identity and in total refuse and count") {
  dbw_test::TempDir dir;
  auto s = open(dir.path, Limits{2, 3});
  const std::string etl = Store::to_key(kEtl), web = Store::to_key(kWeb);
  CHECK(s->observe(etl, 1, 1, true) == Seen::kLearned);
  CHECK(s->observe(etl, 2, 1, true) == Seen::kLearned);
  CHECK(s->observe(etl, 3, 1, true) == Seen::kCapped);
  CHECK(s->observe(web, 1, 1, true) == Seen::kLearned);
  CHECK(s->observe(web, 2, 1, true) == Seen::kCapped);  // 3 in total
  CHECK(s->observe(etl, 1, 2, true) == Seen::kKnown);   // known ones still count
  const auto st = s->stats();
  CHECK(st.capped_identity == 1);
  CHECK(st.capped_total == 1);
  CHECK(st.fingerprints == 3);
  CHECK(st.identities == 2);
  REQUIRE(s->flush(true).ok());
  // A reopen under a smaller cap keeps only what fits, and says so.
  auto t = open(dir.path, Limits{1, 100});
  CHECK(t->stats().fingerprints == 2);
  CHECK(t->stats().capped_identity == 1);
}

TEST_CASE("learn store: a prune by another handle reaches the running one") {
  dbw_test::TempDir dir;
  const std::string etl = Store::to_key(kEtl), web = Store::to_key(kWeb);
  auto agent = open(dir.path);
  agent->observe(etl, 1, 100, true);
  agent->observe(web, 2, 100, true);
  REQUIRE(agent->flush(true).ok());
  {
    auto cli = open(dir.path);  // `dbwarden policy learned prune`
    auto n = cli->prune_identity(kEtl);
    REQUIRE(n.ok());
    CHECK(n.value() == 1);
  }
  // The agent learned more meanwhile; its flush applies the prune first.
  agent->observe(web, 3, 101, true);
  REQUIRE(agent->flush(true).ok());
  CHECK_FALSE(agent->known(etl, 1));
  CHECK(agent->known(web, 2));
  CHECK(agent->known(web, 3));
  auto again = open(dir.path);
  CHECK_FALSE(again->known(etl, 1));
  CHECK(again->known(web, 3));
}

TEST_CASE("learn store: prune by age removes what was last seen before the cutoff") {
  dbw_test::TempDir dir;
  const std::string etl = Store::to_key(kEtl);
  auto s = open(dir.path);
  s->observe(etl, 1, 100, true);
  s->observe(etl, 2, 100, true);
  s->observe(etl, 2, 500, true);  // seen again later
  REQUIRE(s->flush(true).ok());
  auto n = s->prune_older_than(300);
  REQUIRE(n.ok());
  CHECK(n.value() == 1);
  auto t = open(dir.path);
  CHECK_FALSE(t->known(etl, 1));
  CHECK(t->known(etl, 2));
}

TEST_CASE("learn store: a torn last line is cut and malformed lines are counted") {
  dbw_test::TempDir dir;
  const std::string etl = Store::to_key(kEtl);
  {
    auto s = open(dir.path);
    s->observe(etl, 1, 100, true);
    REQUIRE(s->flush(true).ok());
  }
  const std::string path = dir.path + "/learned.log";
  {
    std::ofstream out(path, std::ios::app);
    out << "garbage line\n";
    out << "F\tetl\t-\t-\tnothex\t1\t1\t1\n";
    out << "F\tetl\t/x\t-\t00000000000000";  // a crash mid-line
  }
  auto s = open(dir.path);
  CHECK(s->known(etl, 1));
  CHECK(s->stats().bad_lines == 3);
  CHECK(file_text(path).back() == '\n');
  // Appends after the cut read back whole.
  s->observe(etl, 9, 100, true);
  REQUIRE(s->flush(true).ok());
  auto t = open(dir.path);
  CHECK(t->known(etl, 9));
  CHECK(t->stats().bad_lines == 2);
}

TEST_CASE("learn store: a file that is not a learned set is refused") {
  dbw_test::TempDir dir;
  { std::ofstream(dir.path + "/learned.log") << "something else\n"; }
  auto s = Store::Open(dir.path, {}, 1);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message().find("not a dbwarden learned set") != std::string::npos);
}

TEST_CASE("learn store: count updates are held back until asked for, new ones are not") {
  dbw_test::TempDir dir;
  const std::string etl = Store::to_key(kEtl);
  auto s = open(dir.path);
  s->observe(etl, 1, 100, true);
  REQUIRE(s->flush(false).ok());
  const size_t after_new = file_text(dir.path + "/learned.log").size();
  s->observe(etl, 1, 101, true);
  REQUIRE(s->flush(false).ok());
  CHECK(file_text(dir.path + "/learned.log").size() == after_new);
  REQUIRE(s->flush(true).ok());
  CHECK(file_text(dir.path + "/learned.log").size() > after_new);
  auto t = open(dir.path);
  REQUIRE(t->list().size() == 1);
  CHECK(t->list()[0].entries[0].count == 2);
}

TEST_CASE("learn store: compaction rewrites a file of mostly dead lines and keeps the set") {
  dbw_test::TempDir dir;
  const std::string etl = Store::to_key(kEtl);
  Limits small;
  small.compact_min_bytes = 16 << 10;
  auto s = open(dir.path, small);
  s->observe(etl, 1, 100, true);
  s->observe(etl, 2, 100, true);
  // Each flush with counts rewrites both entries: ~130 bytes a round, 16 KiB after ~130.
  for (int i = 0; i < 1000; ++i) {
    s->observe(etl, 1, 100 + i, true);
    s->observe(etl, 2, 100 + i, true);
    REQUIRE(s->flush(true).ok());
    if (s->stats().compactions > 0) break;
  }
  CHECK(s->stats().compactions == 1);
  CHECK(file_text(dir.path + "/learned.log").size() < 4096);
  s->observe(etl, 3, 9000, true);
  REQUIRE(s->flush(true).ok());
  auto t = open(dir.path);
  CHECK(t->stats().fingerprints == 3);
  CHECK(t->list()[0].entries[0].last_s >= 200);
}
