// SPDX-License-Identifier: Apache-2.0
// Header parsing and framing: one byte short asks for more, two messages in
// one buffer come out one at a time, hostile lengths are rejected, skipped
// bodies are never buffered.
#include "protocol/pgsql/framer.h"

#include <catch2/catch.hpp>

#include "pg_wire.h"
#include "protocol/pgsql/messages.h"

using namespace pgtest;
using dbwarden::pgsql::Frame;
using dbwarden::pgsql::FrameHandler;
using dbwarden::pgsql::Framer;
using dbwarden::pgsql::Header;
using dbwarden::pgsql::ParseState;
using dbwarden::pgsql::ParseTypedHeader;

namespace {

struct Collected {
  char type;
  std::string body;
  bool complete;
  bool gap;
};

class Collector : public FrameHandler {
 public:
  void on_frame(Direction, const Frame& f) override {
    frames.push_back({static_cast<char>(f.type),
                      std::string(reinterpret_cast<const char*>(f.body.data()), f.body.size()),
                      f.body_complete, f.gap});
  }
  void on_framing_lost(Direction) override { ++lost; }
  std::vector<Collected> frames;
  int lost = 0;
};

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

TEST_CASE("pgsql header: one byte short needs more data", "[pgsql]") {
  const std::string msg = Complete("SELECT 1");
  Header h;
  for (size_t n = 0; n < 5; ++n) {
    CHECK(ParseTypedHeader(Direction::kBackend, Span(msg).first(n), &h) ==
          ParseState::kNeedsMoreData);
  }
  REQUIRE(ParseTypedHeader(Direction::kBackend, Span(msg), &h) == ParseState::kSuccess);
  CHECK(h.type == 'C');
  CHECK(h.length == msg.size() - 1);
}

TEST_CASE("pgsql header: hostile lengths and types are invalid", "[pgsql]") {
  Header h;
  auto parse = [&](Direction dir, const std::string& bytes) {
    return ParseTypedHeader(dir, Span(bytes), &h);
  };
  CHECK(parse(Direction::kFrontend, "Q" + I32(3)) == ParseState::kInvalid);
  CHECK(parse(Direction::kFrontend, "Q" + I32(0)) == ParseState::kInvalid);
  CHECK(parse(Direction::kFrontend, "Q" + I32((1u << 30) + 1)) == ParseState::kInvalid);
  CHECK(parse(Direction::kFrontend, "Q" + I32(0xffffffffu)) == ParseState::kInvalid);
  CHECK(parse(Direction::kFrontend, "S" + I32(5)) == ParseState::kInvalid);  // Sync is 4
  CHECK(parse(Direction::kBackend, "Z" + I32(4)) == ParseState::kInvalid);   // Z is 5
  CHECK(parse(Direction::kFrontend, "T" + I32(8)) == ParseState::kInvalid);  // backend-only
  CHECK(parse(Direction::kBackend, "Q" + I32(8)) == ParseState::kInvalid);   // frontend-only
  CHECK(parse(Direction::kFrontend, std::string("\x7f")) == ParseState::kInvalid);
}

TEST_CASE("pgsql framer: two messages in one buffer, then one byte at a time", "[pgsql]") {
  Counters counters;
  Collector c;
  Framer f(Direction::kBackend, Limits{}, counters, c);
  const std::string two = Complete("SELECT 1") + Ready('I');
  f.feed(Span(two), 1);
  REQUIRE(c.frames.size() == 2);
  CHECK(c.frames[0].type == 'C');
  CHECK(c.frames[0].body == CStr("SELECT 1"));
  CHECK(c.frames[1].type == 'Z');
  CHECK(c.frames[1].body == "I");

  const std::string msg = Complete("INSERT 0 5");
  for (size_t i = 0; i + 1 < msg.size(); ++i) {
    f.feed(Span(msg).subspan(i, 1), 2);
    CHECK(c.frames.size() == 2);  // nothing until the last byte
  }
  f.feed(Span(msg).last(1), 3);
  REQUIRE(c.frames.size() == 3);
  CHECK(c.frames[2].body == CStr("INSERT 0 5"));
  CHECK(c.frames[2].complete);
  CHECK(counters.messages == 3);
  CHECK(counters.invalid_messages == 0);
}

TEST_CASE("pgsql framer: skipped bodies are not kept, passwords never", "[pgsql]") {
  Counters counters;
  Collector c;
  Framer f(Direction::kFrontend, Limits{}, counters, c);
  const std::string bytes = Startup("alice", "db") + Password("hunter2") + Query("SELECT 1");
  for (size_t i = 0; i < bytes.size(); ++i) f.feed(Span(bytes).subspan(i, 1), 1);
  REQUIRE(c.frames.size() == 3);
  CHECK(c.frames[1].type == 'p');
  CHECK(c.frames[1].body.empty());
  CHECK_FALSE(c.frames[1].complete);
  CHECK(c.frames[2].body == CStr("SELECT 1"));
}

TEST_CASE("pgsql framer: a 100 MB DataRow is skipped by length", "[pgsql]") {
  Counters counters;
  Collector c;
  Framer f(Direction::kBackend, Limits{}, counters, c);
  const uint32_t body = 100u << 20;
  const std::string header = "D" + I32(body + 4);
  f.feed(Span(header), 1);
  const std::string block(64 << 10, 'x');
  for (uint32_t sent = 0; sent < body; sent += block.size()) {
    f.feed(Span(block).first(std::min<size_t>(block.size(), body - sent)), 2);
  }
  f.feed(Span(Complete("SELECT 1")), 3);
  REQUIRE(c.frames.size() == 2);
  CHECK(c.frames[0].type == 'D');
  CHECK(c.frames[0].body.empty());
  CHECK(c.frames[1].type == 'C');
  CHECK(counters.invalid_messages == 0);
}

TEST_CASE("pgsql framer: gap inside a body keeps framing, gap over a header resyncs", "[pgsql]") {
  Counters counters;
  Collector c;
  Framer f(Direction::kBackend, Limits{}, counters, c);
  const std::string row = DataRow(std::string(1000, 'v'));
  f.feed(Span(row).first(100), 1);
  f.gap(800, 2);
  f.feed(Span(row).subspan(900), 3);
  f.feed(Span(Complete("SELECT 1")), 4);
  REQUIRE(c.frames.size() == 2);
  CHECK(c.frames[0].gap);
  CHECK(c.frames[1].body == CStr("SELECT 1"));
  CHECK(c.lost == 0);

  // The gap swallows the end of one message and the header of the next.
  const std::string stream = Complete("SELECT 1") + Complete("SELECT 2") + Ready();
  f.feed(Span(stream).first(3), 5);
  f.gap(stream.size() - 3 - 6, 6);  // the last 6 bytes (Ready) arrive
  f.feed(Span(stream).last(6), 7);
  CHECK(c.lost == 1);
  CHECK(counters.resyncs == 1);
  REQUIRE(c.frames.size() == 3);
  CHECK(c.frames[2].type == 'Z');
}

TEST_CASE("pgsql framer: garbage is counted and skipped", "[pgsql]") {
  Counters counters;
  Collector c;
  Framer f(Direction::kBackend, Limits{}, counters, c);
  const std::string stream = std::string("\xff\xfe garbage \x01\x02", 14) + Complete("SELECT 7");
  f.feed(Span(stream), 1);
  CHECK(counters.invalid_messages == 1);
  CHECK(counters.resyncs == 1);
  REQUIRE(c.frames.size() == 1);
  CHECK(c.frames[0].body == CStr("SELECT 7"));
}
