// SPDX-License-Identifier: Apache-2.0
//
// The masked answer of one MySQL command (proxy/mysql_results.h): text and binary rows,
// NULLs, lengths, sequence ids, multi-results, CLIENT_DEPRECATE_EOF on and off, bytes cut
// anywhere, refusals, with the real masking engine. Wire helpers: tests/unit/mysql/my_wire.h.
#include "proxy/mysql_results.h"

#include <catch2/catch.hpp>
#include <set>

#include "../mysql/my_wire.h"
#include "masking/masking.h"

using namespace mytest;
using dbwarden::masking::Column;
using dbwarden::masking::Masker;
using dbwarden::masking::Outcome;
using dbwarden::masking::Style;
using dbwarden::proxy::MysqlResultMasker;
using dbwarden::proxy::MysqlResultPlanner;

namespace {

const Masker& TheMasker() {
  static const auto m = [] {
    auto r = Masker::create({});
    REQUIRE(r.ok());
    return std::move(r.value());
  }();
  return *m;
}

// Masks whole the columns named in `whole` (by org_name), e-mails in every text value when
// `emails`, and refuses a result with an expression column (empty org_name) when `refuse`.
struct TestPlanner : MysqlResultPlanner {
  std::set<std::string> whole;
  Style style = Style::kFull;
  bool emails = false, refuse = false;
  std::vector<bool> masked;
  bool expression = false;
  int results = 0;

  void column(size_t index, const dbwarden::mysql::ColumnDefinition& def) override {
    if (index == 0) {
      masked.clear();
      expression = false;
    }
    masked.push_back(whole.count(std::string(def.org_name)) > 0);
    expression |= def.org_name.empty();
  }
  Rows columns_done(size_t count, std::string& refusal) override {
    ++results;
    REQUIRE(count == masked.size());
    if (refuse && expression) {
      refusal = "derived from a masked column";
      return Rows::kRefuse;
    }
    for (bool m : masked) {
      if (m) return Rows::kMask;
    }
    return emails ? Rows::kMask : Rows::kPass;
  }
  Outcome value(size_t index, const Column& type, std::string_view in, std::string& out) override {
    if (masked[index]) return TheMasker().mask_value(type, style, in, out);
    if (emails) return TheMasker().mask_content(type, Style::kFull, 1, in, out);
    return Outcome::kUnchanged;
  }
};

// A column of shop.customers (org_name "" = an expression).
Bytes Def(uint8_t seq, std::string_view org_name, uint8_t type = 253, uint16_t flags = 0,
          uint16_t charset = 45) {
  return ColumnDefOf(seq, "shop", org_name.empty() ? "" : "customers", org_name, type, flags,
                     charset);
}

// End of rows: EOF, or OK with header 0xfe under CLIENT_DEPRECATE_EOF.
Bytes End(uint8_t seq, bool deprecate_eof, uint16_t status = 2) {
  return deprecate_eof ? Ok(seq, 0, status, '\xfe') : Eof(seq, status);
}

// Two text columns, (ssn, note), three rows, one with NULLs.
Bytes TextResult(uint8_t seq, bool deprecate_eof, std::string_view ssn1, std::string_view ssn2,
                 uint16_t status = 2) {
  Bytes out = Packet(seq, Lenenc(2)) + Def(uint8_t(seq + 1), "ssn") + Def(uint8_t(seq + 2), "note");
  seq = uint8_t(seq + 3);
  if (!deprecate_eof) out += Eof(seq++);
  out += TextRow(seq++, {std::string(ssn1), std::string("hi")});
  out += TextRow(seq++, {std::nullopt, std::nullopt});
  out += TextRow(seq++, {std::string(ssn2), std::string("mail me: ann@example.com")});
  out += End(seq, deprecate_eof, status);
  return out;
}

struct Fed {
  std::string client;
  size_t used = 0;
};

Fed FeedAll(MysqlResultMasker& m, std::string_view bytes, size_t piece = 0) {
  Fed f;
  std::vector<uint8_t> out;
  size_t at = 0;
  while (at < bytes.size() && m.state() == MysqlResultMasker::State::kRunning) {
    const size_t n = piece ? std::min(piece, bytes.size() - at) : bytes.size() - at;
    const size_t used = m.feed({reinterpret_cast<const uint8_t*>(bytes.data()) + at, n}, out);
    at += used;
    if (used < n) break;
  }
  f.client.assign(out.begin(), out.end());
  f.used = at;
  return f;
}

}  // namespace

TEST_CASE(
    "mysql results: text rows get their masked values with new lengths, NULLs kept, "
    "sequence ids untouched, with and without DEPRECATE_EOF",
    "[proxy][mysql][masking]") {
  for (const bool deprecate_eof : {true, false}) {
    for (const size_t piece : {size_t{0}, size_t{1}, size_t{7}}) {
      CAPTURE(deprecate_eof, piece);
      TestPlanner p;
      p.whole = {"ssn"};
      MysqlResultMasker m;
      m.start(p, /*binary=*/false, deprecate_eof, /*metadata_byte=*/false);
      const Bytes in = TextResult(1, deprecate_eof, "123-45-6789", "987-65-4321");
      const Fed got = FeedAll(m, in, piece);
      CHECK(m.state() == MysqlResultMasker::State::kDone);
      CHECK(got.used == in.size());
      CHECK(got.client == TextResult(1, deprecate_eof, "****", "****"));
    }
  }
}

TEST_CASE(
    "mysql results: a result no rule touches passes byte for byte, and bytes after the "
    "answer are not taken",
    "[proxy][mysql][masking]") {
  TestPlanner p;
  MysqlResultMasker m;
  m.start(p, false, true, false);
  const Bytes in = TextResult(1, true, "123-45-6789", "987-65-4321");
  const Fed got = FeedAll(m, in + Ok(1));
  CHECK(got.client == in);
  CHECK(got.used == in.size());
}

TEST_CASE("mysql results: content detectors mask items inside text values",
          "[proxy][mysql][masking]") {
  TestPlanner p;
  p.emails = true;
  MysqlResultMasker m;
  m.start(p, false, false, false);
  const Fed got = FeedAll(m, TextResult(1, false, "a", "b"));
  CHECK(got.client.find("ann@example.com") == std::string::npos);
  CHECK(got.client.find("mail me: ") != std::string::npos);
  CHECK(m.state() == MysqlResultMasker::State::kDone);
}

TEST_CASE("mysql results: multi-results are each masked and the answer ends with the last",
          "[proxy][mysql][masking]") {
  for (const bool deprecate_eof : {true, false}) {
    CAPTURE(deprecate_eof);
    TestPlanner p;
    p.whole = {"ssn"};
    MysqlResultMasker m;
    m.start(p, false, deprecate_eof, false);
    // Two result sets chained by SERVER_MORE_RESULTS_EXISTS, then a CALL's final OK.
    const uint8_t second = deprecate_eof ? 8 : 9;
    const Bytes in = TextResult(1, deprecate_eof, "111-11-1111", "222-22-2222", 0x0a) +
                     TextResult(second, deprecate_eof, "333-33-3333", "444-44-4444", 0x0a) +
                     Ok(uint8_t(second * 2 - 1), 0, 2);
    const Bytes want = TextResult(1, deprecate_eof, "****", "****", 0x0a) +
                       TextResult(second, deprecate_eof, "****", "****", 0x0a) +
                       Ok(uint8_t(second * 2 - 1), 0, 2);
    for (const size_t piece : {size_t{0}, size_t{3}}) {
      m.start(p, false, deprecate_eof, false);
      const Fed got = FeedAll(m, in + Query("next"), piece);
      CHECK(got.client == want);
      CHECK(got.used == in.size());
      CHECK(m.state() == MysqlResultMasker::State::kDone);
    }
  }
}

TEST_CASE("mysql results: binary rows keep fixed widths, NULL bitmap and length prefixes",
          "[proxy][mysql][masking]") {
  // id INT NOT NULL, ssn VARCHAR, born DATE (nullable), salary DECIMAL NOT NULL.
  constexpr uint8_t kLong = 3, kVarString = 253, kDate = 10, kNewDecimal = 246;
  auto result = [&](const std::string& row1, const std::string& row2) {
    return Packet(1, Lenenc(4)) + Def(2, "id", kLong, 1) + Def(3, "ssn", kVarString) +
           Def(4, "born", kDate) + Def(5, "salary", kNewDecimal, 1) + Packet(6, row1) +
           Packet(7, row2) + Ok(8, 0, 2, '\xfe');
  };
  const std::string date = std::string("\x04") + U16(1980) + char(7) + char(14);
  // NULL bitmap: (4 + 9) / 8 = 1 byte, column i at bit i + 2.
  const std::string row1 = std::string(1, '\0') + std::string(1, '\0') + U32(42) +
                           LenStr("123-45-6789") + date + LenStr("1234.50");
  const std::string row2 = std::string(1, '\0') + std::string(1, char(1 << (1 + 2))) + U32(7) +
                           date + LenStr("99.00");  // ssn NULL
  const Bytes in = result(row1, row2);
  SECTION("style null: nullable columns become NULL, NOT NULL ones their substitute") {
    TestPlanner p;
    p.whole = {"id", "ssn", "born", "salary"};
    p.style = Style::kNull;
    MysqlResultMasker m;
    m.start(p, /*binary=*/true, true, false);
    const Fed got = FeedAll(m, in, 5);
    const std::string want1 =
        std::string(1, '\0') + std::string(1, char((1 << 3) | (1 << 4))) + U32(0) + LenStr("0");
    const std::string want2 = want1;
    CHECK(got.client == result(want1, want2));
  }
  SECTION("style full: text masked, the others their type's substitute") {
    TestPlanner p;
    p.whole = {"ssn", "born"};
    MysqlResultMasker m;
    m.start(p, true, true, false);
    const Fed got = FeedAll(m, in);
    const std::string epoch = std::string("\x04") + U16(1970) + char(1) + char(1);
    const std::string want1 = std::string(1, '\0') + std::string(1, '\0') + U32(42) +
                              LenStr("****") + epoch + LenStr("1234.50");
    const std::string want2 =
        std::string(1, '\0') + std::string(1, char(1 << 3)) + U32(7) + epoch + LenStr("99.00");
    CHECK(got.client == result(want1, want2));
  }
}

TEST_CASE(
    "mysql results: a refused result is one ERR in place of the result set and the "
    "rest is swallowed",
    "[proxy][mysql][masking]") {
  for (const bool deprecate_eof : {true, false}) {
    CAPTURE(deprecate_eof);
    TestPlanner p;
    p.whole = {"ssn"};
    p.refuse = true;
    MysqlResultMasker m;
    m.start(p, false, deprecate_eof, false);
    Bytes in = Packet(1, Lenenc(2)) + Def(2, "ssn") + Def(3, "");
    uint8_t seq = 4;
    if (!deprecate_eof) in += Eof(seq++);
    in += TextRow(seq++, {std::string("123-45-6789"), std::string("6789")});
    in += End(seq, deprecate_eof);
    const Fed got = FeedAll(m, in + Query("next"), 2);
    CHECK(got.used == in.size());
    CHECK(m.state() == MysqlResultMasker::State::kDone);
    CHECK(got.client == Err(1, 1143, "42000", "derived from a masked column"));
    CHECK(m.refusal() == "derived from a masked column");
  }
}

TEST_CASE("mysql results: OK, ERR and LOCAL INFILE answers pass, an unreadable count breaks",
          "[proxy][mysql][masking]") {
  TestPlanner p;
  MysqlResultMasker m;
  m.start(p, false, true, false);
  CHECK(FeedAll(m, Ok(1, 3)).client == Ok(1, 3));
  CHECK(m.state() == MysqlResultMasker::State::kDone);
  m.start(p, false, true, false);
  CHECK(FeedAll(m, Err(1, 1146, "42S02", "no table")).client == Err(1, 1146, "42S02", "no table"));
  CHECK(m.state() == MysqlResultMasker::State::kDone);
  m.start(p, false, true, false);
  CHECK(FeedAll(m, Packet(1, "\xfbx.csv")).client == Packet(1, "\xfbx.csv"));
  CHECK(m.state() == MysqlResultMasker::State::kInfile);
  m.start(p, false, true, false);
  const Fed got = FeedAll(m, Packet(1, "\xfc"));
  CHECK(m.state() == MysqlResultMasker::State::kBroken);
  CHECK(got.client.find("unreadable") != std::string::npos);
}

TEST_CASE("mysql results: a row over the limit is refused in its place",
          "[proxy][mysql][masking]") {
  TestPlanner p;
  p.whole = {"ssn"};
  MysqlResultMasker m({/*max_message_bytes=*/64});
  m.start(p, false, true, false);
  const Bytes in = Packet(1, Lenenc(1)) + Def(2, "ssn") + TextRow(3, {std::string(30, 'a')}) +
                   TextRow(4, {std::string(100, 'b')}) + TextRow(5, {std::string("c")}) +
                   End(6, true);
  const Fed got = FeedAll(m, in, 9);
  CHECK(got.used == in.size());
  CHECK(got.client.find(std::string(100, 'b')) == std::string::npos);
  CHECK(got.client.find("larger than") != std::string::npos);
  CHECK(m.state() == MysqlResultMasker::State::kDone);
}

TEST_CASE("mysql results: column definitions with MariaDB's extended metadata are read",
          "[proxy][mysql][masking]") {
  // Found with the real server: the CLI asks for extended metadata, which MariaDB puts
  // between org_name and the fixed fields (here: type name "json").
  const std::string ext = std::string(1, '\0') + LenStr("json");
  const std::string payload = LenStr("def") + LenStr("shop") + LenStr("c") + LenStr("customers") +
                              LenStr("profile") + LenStr("profile") + Lenenc(ext.size()) + ext +
                              Lenenc(12) + U16(45) + U32(64) + char(252) + U16(0x10) + char(0) +
                              U16(0);
  dbwarden::mysql::ColumnDefinition def;
  REQUIRE(dbwarden::mysql::ParseColumnDefinition(
      {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()}, &def));
  CHECK(def.org_table == "customers");
  CHECK(def.org_name == "profile");
  CHECK(def.type == 252);
  CHECK(def.flags == 0x10);
  CHECK(def.charset == 45);
}
