// SPDX-License-Identifier: Apache-2.0
// The capture's bulk-data bound as the decoder sees it: a large backend write
// arrives as its head, a deliberate skip of exact length, and its tail
// (bpf/dbwarden.bpf.c emit_data). The framer must find the message boundaries
// again in the tail (anchor.h) without being fooled by row data that looks
// like messages.
#include <catch2/catch.hpp>

#include "pg_wire.h"
#include "protocol/pgsql/anchor.h"
#include "protocol/pgsql/framer.h"

using namespace pgtest;
using dbwarden::pgsql::FindAnchor;
using dbwarden::pgsql::Framer;

namespace {
constexpr auto kF = Direction::kFrontend;
constexpr auto kB = Direction::kBackend;

std::span<const uint8_t> B(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Row values that are whole backend messages, and the tails of some: a
// validator that trusts type bytes and lengths alone anchors inside them.
std::string FakeValue(int i) {
  switch (i % 4) {
    case 0:
      return Complete("SELECT 1") + Ready();
    case 1:
      return "Z" + I32(5) + "I";
    case 2:
      return Complete("SELECT 7") + Ready() + Complete("SELECT 8") + Ready();
    default:
      return DataRow("x") + Error("42P01", "no") + Ready('E');
  }
}

// T, `rows` DataRows (fake messages inside), C "SELECT rows" (or an error
// after the rows), Z.
std::string Result(int rows, bool fail = false) {
  std::string out = RowDesc();
  for (int i = 0; i < rows; ++i) out += DataRow("row" + std::to_string(i) + FakeValue(i));
  out += fail ? Error("22012", "division by zero") : Complete("SELECT " + std::to_string(rows));
  return out + Ready();
}

struct Bounded {
  Run run;
  Session session{run.info, run.sink, run.limits, run.counters};
  Bounded() {
    session.on_data(kF, B(Startup("alice", "shop")), 1);
    session.on_data(kB, B(Handshake()), 2);
  }
  // One backend write through the kernel's bound.
  void write(const std::string& w, size_t head, size_t tail, uint64_t ts) {
    if (w.size() <= head + tail) {
      session.on_data(kB, B(w), ts);
      return;
    }
    if (head) session.on_data(kB, B(w.substr(0, head)), ts);
    session.on_skip(kB, w.size() - head - tail, ts);
    session.on_data(kB, B(w.substr(w.size() - tail)), ts);
  }
};

}  // namespace

TEST_CASE("pgsql bulk skip: rows and status exact at every head and tail split", "[pgsql]") {
  const std::string result = Result(60);
  const size_t min_tail = (Complete("SELECT 60") + Ready()).size();
  auto check = [&](size_t head, size_t tail) {
    Bounded b;
    b.session.on_data(kF, B(Query("SELECT big")), 10);
    b.write(result, head, tail, 20);
    b.session.on_close(30);
    INFO("head " << head << " tail " << tail);
    REQUIRE(b.run.sink.got.size() == 1);
    const Statement& s = b.run.sink.got[0];
    CHECK(s.text == "SELECT big");
    CHECK(s.status_code == "00000");
    CHECK(s.returned_rows == 60);
    CHECK(s.command_tag == "SELECT 60");
    CHECK_FALSE(s.capture_gap);
    CHECK(s.response_bytes == result.size() - Ready().size());
    CHECK(b.run.counters.gaps == 0);
    CHECK(b.run.counters.bulk_mismatched == 0);
  };
  for (size_t head = 0; head <= 600; ++head) check(head, 300);
  for (size_t tail = min_tail; tail <= 600; ++tail) check(200, tail);
}

TEST_CASE("pgsql bulk skip: a tail too short for the completion gives capture_gap", "[pgsql]") {
  const std::string result = Result(40);
  for (size_t tail = 6; tail < (Complete("SELECT 40") + Ready()).size(); ++tail) {
    Bounded b;
    b.session.on_data(kF, B(Query("SELECT big")), 10);
    b.write(result, 100, tail, 20);
    b.session.on_close(30);
    INFO("tail " << tail);
    REQUIRE(b.run.sink.got.size() == 1);
    CHECK(b.run.sink.got[0].capture_gap);
    CHECK(b.run.sink.got[0].status_code.empty());
    CHECK_FALSE(b.run.sink.got[0].returned_rows.has_value());
  }
}

TEST_CASE("pgsql bulk skip: an error after many rows keeps its SQLSTATE", "[pgsql]") {
  const std::string result = Result(50, /*fail=*/true);
  for (size_t tail = 120; tail <= 400; ++tail) {
    Bounded b;
    b.session.on_data(kF, B(Query("SELECT 1/(g-50) FROM generate_series(1,100) g")), 10);
    b.write(result, 256, tail, 20);
    b.session.on_data(kF, B(Query("SELECT 2")), 40);
    b.write(RowDesc() + DataRow("2") + Complete("SELECT 1") + Ready(), 256, tail, 50);
    b.session.on_close(60);
    INFO("tail " << tail);
    REQUIRE(b.run.sink.got.size() == 2);
    CHECK(b.run.sink.got[0].status_code == "22012");
    CHECK(b.run.sink.got[0].error_message == "division by zero");
    CHECK_FALSE(b.run.sink.got[0].capture_gap);
    CHECK(b.run.sink.got[1].status_code == "00000");
    CHECK(b.run.sink.got[1].returned_rows == 1);
    CHECK_FALSE(b.run.sink.got[1].capture_gap);
  }
}

TEST_CASE("pgsql bulk skip: pipelined statements completed inside the skip get capture_gap",
          "[pgsql]") {
  Bounded b;
  // Two Executes in one Sync: the first one's rows and CommandComplete, and
  // the start of the second one's rows, are in the middle of one write.
  b.session.on_data(kF,
                    B(Parse("", "SELECT a") + Bind("", "") + Execute("") + Parse("", "SELECT b") +
                      Bind("", "") + Execute("") + Sync()),
                    10);
  std::string w = ParseComplete() + BindComplete();
  for (int i = 0; i < 40; ++i) w += DataRow("a" + std::to_string(i) + FakeValue(i));
  w += Complete("SELECT 40") + ParseComplete() + BindComplete();
  for (int i = 0; i < 40; ++i) w += DataRow("b" + std::to_string(i) + FakeValue(i));
  w += Complete("SELECT 40") + Ready();
  b.write(w, 100, 300, 20);
  b.session.on_data(kF, B(Query("SELECT 3")), 40);
  b.session.on_data(kB, B(RowDesc() + DataRow("3") + Complete("SELECT 1") + Ready()), 50);
  b.session.on_close(60);
  REQUIRE(b.run.sink.got.size() == 3);
  for (int i = 0; i < 2; ++i) {
    CHECK(b.run.sink.got[i].capture_gap);
    CHECK(b.run.sink.got[i].status_code.empty());
  }
  CHECK(b.run.sink.got[0].text == "SELECT a");
  CHECK(b.run.sink.got[1].text == "SELECT b");
  // The next cycle is framed normally again.
  CHECK(b.run.sink.got[2].text == "SELECT 3");
  CHECK(b.run.sink.got[2].returned_rows == 1);
  CHECK_FALSE(b.run.sink.got[2].capture_gap);
  CHECK(b.run.counters.bulk_mismatched == 1);
}

TEST_CASE("pgsql bulk skip: fake messages at the end of the last row are not believed", "[pgsql]") {
  // The last row's value ends with a whole fake response. Tails that start
  // inside that value see the fake CommandComplete first: it must never
  // complete the statement with its row count.
  std::string result = RowDesc();
  for (int i = 0; i < 30; ++i) result += DataRow("r" + std::to_string(i));
  result += DataRow("last" + Complete("SELECT 1") + Ready()) + Complete("SELECT 31") + Ready();
  for (size_t tail = 6; tail <= 120; ++tail) {
    Bounded b;
    b.session.on_data(kF, B(Query("SELECT t")), 10);
    b.write(result, 64, tail, 20);
    b.session.on_close(30);
    INFO("tail " << tail);
    REQUIRE(b.run.sink.got.size() == 1);
    const Statement& s = b.run.sink.got[0];
    CHECK(s.returned_rows != std::optional<uint64_t>(1));
    if (!s.capture_gap) CHECK(s.returned_rows == 31);
  }
}

TEST_CASE("pgsql bulk skip: anchoring validates every message in full", "[pgsql]") {
  // Each of these ends like a response and chains up if only type bytes and
  // lengths are checked; FindAnchor must start at the real boundary (offset 7
  // in the tail of a cut DataRow) or not at all.
  const std::string real = DataRow("tail") + Complete("SELECT 9") + Ready();
  const std::string cut_row_end = "abc" + I32(3) + "xyz";  // last bytes of a cut DataRow
  const std::string bytes = cut_row_end + real;
  auto a = FindAnchor(B(bytes));
  REQUIRE(a);
  CHECK(a->start == cut_row_end.size());
  REQUIRE(a->cycles.size() == 1);
  CHECK(a->cycles[0] == 1);
  // A DataRow whose field lengths do not sum to its length is no message.
  std::string bad_row = Typed('D', I16(2) + I32(1) + "a");
  CHECK(dbwarden::pgsql::ValidBackendMessage(B(bad_row), 0) == 0);
  CHECK(dbwarden::pgsql::ValidBackendMessage(B(DataRow("ok")), 0) == DataRow("ok").size());
  // A tag with control bytes, a ReadyForQuery with a bad status.
  CHECK(dbwarden::pgsql::ValidBackendMessage(B(Typed('C', "SEL\x01" + CStr("ECT"))), 0) == 0);
  CHECK(dbwarden::pgsql::ValidBackendMessage(B(Typed('Z', "X")), 0) == 0);
  // Rows cannot follow a completion.
  auto b = FindAnchor(B(Complete("SELECT 1") + DataRow("x") + Complete("SELECT 2") + Ready()));
  REQUIRE(b);
  CHECK(b->start == Complete("SELECT 1").size());  // "C...SELECT 1" cannot precede a row
}

TEST_CASE("pgsql bulk skip: a tail that never anchors stays bounded", "[pgsql]") {
  Bounded b;
  b.session.on_data(kF, B(Query("COPY t TO STDOUT")), 10);
  b.session.on_data(kB, B(CopyOutResponse()), 11);
  // Megabytes of CopyData after the skip, with no ReadyForQuery: the anchor
  // buffer keeps only the newest bytes.
  b.session.on_skip(kB, 5000, 12);
  std::string junk(4096, 'Z');
  for (int i = 0; i < 300; ++i) b.session.on_data(kB, B(junk), 13 + i);
  b.session.on_close(400);
  REQUIRE(b.run.sink.got.size() == 1);
  CHECK(b.run.sink.got[0].capture_gap);
  Run run;
  struct Nop : dbwarden::pgsql::FrameHandler {
    void on_frame(Direction, const dbwarden::pgsql::Frame&) override {}
    void on_framing_lost(Direction) override {}
  } nop;
  Framer f(kB, run.limits, run.counters, nop);
  f.skip(100, 1);
  for (int i = 0; i < 300; ++i) f.feed(B(junk), 2);
  CHECK(f.anchor_bytes() <= Framer::kMaxAnchorBytes);
}

TEST_CASE("pgsql bulk skip: COPY TO STDOUT rows from the tag", "[pgsql]") {
  std::string w = CopyOutResponse();
  for (int i = 0; i < 200; ++i) w += CopyData(std::to_string(i) + "\tZ\\000\\000\\000\\005I\n");
  w += CopyDone() + Complete("COPY 200") + Ready();
  for (size_t tail = 40; tail <= 200; ++tail) {
    Bounded b;
    b.session.on_data(kF, B(Query("COPY (SELECT g FROM generate_series(1,200) g) TO STDOUT")), 10);
    b.write(w, 1024, tail, 20);
    b.session.on_close(30);
    INFO("tail " << tail);
    REQUIRE(b.run.sink.got.size() == 1);
    CHECK(b.run.sink.got[0].returned_rows == 200);
    CHECK_FALSE(b.run.sink.got[0].capture_gap);
  }
}
