// SPDX-License-Identifier: Apache-2.0
//
// The PostgreSQL relay under mask rules: DataRows and COPY rows rewritten with correct
// lengths (text and binary formats, NULLs, several rows, bytes split across reads), the
// results of statements no rule touches left byte for byte, blocks decided before the
// statement runs, and the masked counts in the records. Wire helpers: tests/unit/pgsql.
#include <catch2/catch.hpp>
#include <optional>
#include <vector>

#include "../pgsql/pg_wire.h"
#include "proxy/pg_relay.h"
#include "relay_fixture.h"

using namespace pgtest;
using dbwarden::proxy::ByteBuffer;
using dbwarden::proxy::PgRelay;
using dbwarden::proxy::RelayLimits;
using proxytest::Append;
using proxytest::Output;
using proxytest::Span;

namespace {

constexpr std::string_view kPolicy = R"(
rules:
  - name: no-drop
    match: {operation: DROP}
    action: block
  - name: ssn
    action: mask
    columns: ["*.people.ssn", "*.people.born", "*.people.id"]
    style: full
  - name: cards
    action: mask
    columns: ["*.cards.*"]
    on_derived: block
)";

constexpr std::string_view kContentPolicy = R"(
rules:
  - name: pii
    action: mask
    detectors: [email, us_ssn]
)";

struct Fixture {
  // With `catalog`, the relay has it (and `upstream` as its server) from its first byte.
  explicit Fixture(std::string_view yaml = kPolicy,
                   dbwarden::proxy::PgCatalogCache* catalog = nullptr,
                   const std::string& upstream = "",
                   const Bytes& startup = Startup("alice", "shop"))
      : judged(yaml), relay(info, judged.judge, records, Limits{}, RelayLimits{}, counters) {
    if (catalog != nullptr) {
      relay.set_catalog(catalog);
      relay.set_server(upstream);
    }
    REQUIRE(client(startup) == startup);
    REQUIRE(server(Handshake()) == Handshake());
  }
  std::string client(std::string_view bytes) {
    Append(in, bytes);
    relay.on_client(in, out, ++now);
    return out.take_server();
  }
  // The server answers `bytes` in pieces of at most `piece` bytes (0: whole).
  std::string server(std::string_view bytes, size_t piece = 0) {
    if (piece == 0) piece = bytes.size();
    for (size_t at = 0; at < bytes.size(); at += piece) {
      relay.on_server(Span(bytes.substr(at, piece)), out, ++now);
      relay.on_client(in, out, ++now);
    }
    return out.take_client();
  }

  dbwarden::ConnectionInfo info;
  Counters counters;
  Recorder sink;
  dbwarden::proxy::DecisionWriter records{sink};
  proxytest::Judged judged;
  PgRelay relay;
  ByteBuffer in;
  Output out;
  uint64_t now = 0;
};

struct Field {
  std::string name;
  uint32_t type = 25;  // text
  uint16_t format = 0;
};

Bytes RowDescOf(const std::vector<Field>& fields) {
  std::string body = I16(static_cast<uint16_t>(fields.size()));
  for (const Field& f : fields) {
    body += CStr(f.name) + I32(16384) + I16(1) + I32(f.type) + I16(0xffff) + I32(0xffffffff) +
            I16(f.format);
  }
  return Typed('T', body);
}

using Values = std::vector<std::optional<std::string>>;

Bytes Row(const Values& values) {
  std::string body = I16(static_cast<uint16_t>(values.size()));
  for (const auto& v : values) {
    body += v ? I32(static_cast<uint32_t>(v->size())) + *v : I32(0xffffffff);
  }
  return Typed('D', body);
}

uint32_t Be32(std::string_view s, size_t at) {
  return (uint32_t{uint8_t(s[at])} << 24) | (uint32_t{uint8_t(s[at + 1])} << 16) |
         (uint32_t{uint8_t(s[at + 2])} << 8) | uint8_t(s[at + 3]);
}

// The client's stream cut into messages by their lengths: each must fit exactly.
std::vector<std::string> Messages(std::string_view s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < s.size()) {
    REQUIRE(s.size() - at >= 5);
    const uint32_t len = Be32(s, at + 1);
    REQUIRE(s.size() - at >= 1 + len);
    out.emplace_back(s.substr(at, 1 + len));
    at += 1 + len;
  }
  return out;
}

// A DataRow's values; its count and every length must add up to the message's length.
Values RowValues(std::string_view m) {
  REQUIRE(m[0] == 'D');
  const size_t n = (size_t{uint8_t(m[5])} << 8) | uint8_t(m[6]);
  size_t at = 7;
  Values out;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t len = Be32(m, at);
    at += 4;
    if (len == 0xffffffff) {
      out.emplace_back(std::nullopt);
      continue;
    }
    out.emplace_back(std::string(m.substr(at, len)));
    at += len;
  }
  CHECK(at == m.size());
  return out;
}

}  // namespace

TEST_CASE("pg mask relay: text rows of a masked table, NULLs and lengths", "[proxy][masking]") {
  Fixture f;
  const std::string q = Query("SELECT name, ssn FROM people");
  REQUIRE(f.client(q) == q);
  const std::string answer = RowDescOf({{"name"}, {"ssn"}}) + Row({"ann", "123-45-6789"}) +
                             Row({"bob", std::nullopt}) + Row({std::nullopt, "987-65-4321"}) +
                             Complete("SELECT 3") + Ready();
  const size_t piece = GENERATE(size_t{0}, size_t{1}, size_t{7});
  INFO("piece " << piece);
  const std::string told = f.server(answer, piece);
  CHECK(told.find("123-45-6789") == std::string::npos);
  CHECK(told.find("987-65-4321") == std::string::npos);
  const auto m = Messages(told);
  REQUIRE(m.size() == 6);
  CHECK(m[0] == RowDescOf({{"name"}, {"ssn"}}));
  // No lineage yet for this statement: every column of the masked table fails closed.
  CHECK(RowValues(m[1])[1] == "****");
  CHECK(RowValues(m[2])[1] == std::nullopt);  // NULL stays NULL
  CHECK(RowValues(m[3])[0] == std::nullopt);
  CHECK(RowValues(m[3])[1] == "****");
  CHECK(m[4] == Complete("SELECT 3"));
  CHECK(m[5] == Ready());
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].masked_values >= 2);
  CHECK(f.sink.got[0].masked_columns >= 1);
  CHECK(f.sink.got[0].returned_rows == 3);
}

TEST_CASE("pg mask relay: binary results keep the type's width", "[proxy][masking]") {
  Fixture f;
  // Extended protocol with binary results: Parse, Bind (result format 1), Describe the
  // portal, Execute, Sync.
  const std::string msgs = Parse("", "SELECT id, born FROM people WHERE id = 1") + Bind("", "") +
                           Describe('P', "") + Execute("") + Sync();
  REQUIRE(f.client(msgs) == msgs);
  const std::string id(std::string("\0\0\x30\x39", 4));    // int4 12345
  const std::string born(std::string("\0\0\x1f\x40", 4));  // date, binary
  const std::string answer = ParseComplete() + BindComplete() +
                             RowDescOf({{"id", 23, 1}, {"born", 1082, 1}}) + Row({id, born}) +
                             Complete("SELECT 1") + Ready();
  const auto m = Messages(f.server(answer));
  REQUIRE(m.size() == 6);
  const Values v = RowValues(m[3]);
  REQUIRE(v[0].has_value());
  CHECK(v[0]->size() == 4);  // int4: four bytes, the fixed substitute 0
  CHECK(*v[0] == std::string(4, '\0'));
  REQUIRE(v[1].has_value());
  CHECK(v[1]->size() == 4);
  CHECK(*v[1] != born);
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].masked_values == 2);
  CHECK(f.sink.got[0].masked_columns == 2);
}

TEST_CASE("pg mask relay: a statement no rule touches streams through byte for byte",
          "[proxy][masking]") {
  Fixture f;
  const std::string q = Query("SELECT aid, abalance FROM pgbench_accounts WHERE aid = 7");
  REQUIRE(f.client(q) == q);
  const std::string answer =
      RowDescOf({{"aid", 23}, {"abalance", 23}}) + Row({"7", "0"}) + Complete("SELECT 1") + Ready();
  CHECK(f.server(answer, 3) == answer);
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].masked_values == 0);
  // A masked statement after it is still masked: the framing starts at a message boundary.
  const std::string q2 = Query("SELECT ssn FROM people");
  REQUIRE(f.client(q2) == q2);
  const std::string told =
      f.server(RowDescOf({{"ssn"}}) + Row({"123-45-6789"}) + Complete("SELECT 1") + Ready(), 5);
  CHECK(told.find("123-45-6789") == std::string::npos);
}

TEST_CASE("pg mask relay: content detectors over every text value", "[proxy][masking]") {
  Fixture f(kContentPolicy);
  const std::string q = Query("SELECT note FROM tickets; SELECT 2");
  REQUIRE(f.client(q) == q);
  const std::string answer = RowDescOf({{"note"}}) + Row({"mail ann@example.com now"}) +
                             Row({"nothing"}) + Complete("SELECT 2") + RowDescOf({{"n", 23}}) +
                             Row({"2"}) + Complete("SELECT 1") + Ready();
  const auto m = Messages(f.server(answer));
  REQUIRE(m.size() == 8);
  const auto v = RowValues(m[1]);
  REQUIRE(v[0].has_value());
  CHECK(v[0]->find("ann@example.com") == std::string::npos);
  CHECK(v[0]->find("mail ") == 0);
  CHECK(m[2] == Row({"nothing"}));
  CHECK(m[5] == Row({"2"}));
  // Each statement's record has its own counts.
  REQUIRE(f.sink.got.size() == 2);
  CHECK(f.sink.got[0].masked_values == 1);
  CHECK(f.sink.got[0].masked_by.size() == 1);
  CHECK(f.sink.got[0].masked_by[0].detector == "email");
  CHECK(f.sink.got[1].masked_values == 0);
}

TEST_CASE("pg mask relay: on_derived block refuses the statement before it runs",
          "[proxy][masking]") {
  Fixture f;
  CHECK(f.client(Query("SELECT upper(number) FROM cards")).empty());
  const std::string told = f.out.take_client();
  CHECK(told.find("C42501") != std::string::npos);
  CHECK(told.find("cards") != std::string::npos);
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].policy_rule == "cards");
  CHECK(f.sink.got[0].policy_action == "block");
  // The session goes on.
  const std::string q = Query("SELECT 1 FROM pgbench_branches");
  CHECK(f.client(q) == q);
}

TEST_CASE("pg mask relay: COPY TO STDOUT rows, text and CSV", "[proxy][masking]") {
  Fixture f;
  SECTION("text") {
    const std::string q = Query("COPY people TO STDOUT");
    REQUIRE(f.client(q) == q);
    const std::string answer = Typed('H', std::string(1, '\0') + I16(2) + I16(0) + I16(0)) +
                               CopyData("ann\t123-45-6789\n") + CopyData("bob\t\\N\n") +
                               CopyDone() + Complete("COPY 2") + Ready();
    const auto m = Messages(f.server(answer, 4));
    REQUIRE(m.size() == 6);
    CHECK(m[1] == CopyData("****\t****\n"));
    CHECK(m[2] == CopyData("****\t\\N\n"));
    REQUIRE(f.sink.got.size() == 1);
    CHECK(f.sink.got[0].masked_values == 3);
  }
  SECTION("csv") {
    const std::string q = Query("COPY (SELECT name, ssn FROM people) TO STDOUT WITH (FORMAT csv)");
    REQUIRE(f.client(q) == q);
    const std::string answer = Typed('H', std::string(1, '\0') + I16(2) + I16(0) + I16(0)) +
                               CopyData("\"a,\"\"n\",123-45-6789\n") + CopyData("bob,\n") +
                               CopyDone() + Complete("COPY 2") + Ready();
    const auto m = Messages(f.server(answer));
    REQUIRE(m.size() == 6);
    CHECK(m[1] == CopyData("\"****\",\"****\"\n"));
    CHECK(m[2] == CopyData("\"****\",\n"));  // the NULL (unquoted empty) stays
  }
}

TEST_CASE("pg mask relay: FETCH from a cursor fails closed", "[proxy][masking]") {
  Fixture f;
  const std::string q = Query("FETCH 2 FROM c");
  REQUIRE(f.client(q) == q);
  const auto m = Messages(
      f.server(RowDescOf({{"ssn"}}) + Row({"123-45-6789"}) + Complete("FETCH 1") + Ready()));
  REQUIRE(m.size() == 4);
  CHECK(RowValues(m[1])[0] == "****");
}

TEST_CASE("pg mask relay: a malformed DataRow under a plan ends the connection",
          "[proxy][masking]") {
  Fixture f;
  const std::string q = Query("SELECT ssn FROM people");
  REQUIRE(f.client(q) == q);
  // Claims 11 bytes, carries 3.
  const std::string bad = Typed('D', I16(1) + I32(11) + "123");
  const std::string told = f.server(RowDescOf({{"ssn"}}) + bad);
  CHECK(told.find("123") == std::string::npos);
  CHECK(told.find("08P01") != std::string::npos);
  CHECK(f.out.closed);
}

TEST_CASE("pg mask relay: a scanned result leaves in a few sends, not one per row",
          "[proxy][masking]") {
  Fixture f(kContentPolicy);
  const std::string q = Query("SELECT note, who FROM tickets");
  REQUIRE(f.client(q) == q);
  std::string rows;
  for (int i = 0; i < 200; ++i) {
    rows += i % 10 == 3 ? Row({"mail ann" + std::to_string(i) + "@example.com now", "x"})
                        : Row({"nothing to see, order " + std::to_string(1000 + i), std::nullopt});
  }
  const std::string answer =
      RowDescOf({{"note"}, {"who"}}) + rows + Complete("SELECT 200") + Ready();
  f.out.client_writes = 0;
  const auto m = Messages(f.server(answer));
  CHECK(f.out.client_writes <= 4);
  REQUIRE(m.size() == 203);
  for (int i = 0; i < 200; ++i) {
    INFO(i);
    if (i % 10 == 3) {
      const auto v = RowValues(m[1 + i]);
      CHECK(*v[0] == "mail **** now");
      CHECK(*v[1] == "x");
    } else {
      CHECK(m[1 + i] == Row({"nothing to see, order " + std::to_string(1000 + i), std::nullopt}));
    }
  }
  CHECK(m[201] == Complete("SELECT 200"));
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].masked_values == 20);
  // In pieces too, and a malformed row after plain ones: what came before it goes out, then
  // the error, and nothing of the bad row.
  const std::string q2 = Query("SELECT note FROM tickets");
  REQUIRE(f.client(q2) == q2);
  const std::string bad = Typed('D', I16(1) + I32(40) + "short");
  const std::string told =
      f.server(RowDescOf({{"note"}}) + Row({"plain one"}) + Row({"plain two"}) + bad, 7);
  CHECK(told.find(Row({"plain one"}) + Row({"plain two"})) != std::string::npos);
  CHECK(told.find("short") == std::string::npos);
  CHECK(told.find("08P01") != std::string::npos);
  CHECK(f.out.closed);
}

TEST_CASE("pg mask relay: rows of a portal executed without a Describe are masked as NULL",
          "[proxy][masking]") {
  Fixture f;
  // A named statement and portal: the first group describes it, the second only executes.
  const std::string prepare = Parse("s1", "SELECT ssn FROM people") + Sync();
  REQUIRE(f.client(prepare) == prepare);
  f.server(ParseComplete() + Ready());
  const std::string run = Bind("", "s1") + Execute("") + Sync();
  REQUIRE(f.client(run) == run);
  const auto m =
      Messages(f.server(BindComplete() + Row({"123-45-6789"}) + Complete("SELECT 1") + Ready(), 3));
  REQUIRE(m.size() == 4);
  CHECK(RowValues(m[1])[0] == std::nullopt);
  REQUIRE(f.sink.got.size() >= 1);
  CHECK(f.sink.got.back().masked_values == 1);
}

// --- column lineage through the relay's catalog (pg_catalog.h, pg_relay_lineage.cc) ---

namespace {

// A RowDescription whose columns name their table OID and attribute number.
struct Origin {
  std::string name;
  uint32_t table = 0;
  uint16_t attnum = 0;
  uint32_t type = 25;
};
Bytes RowDescFrom(const std::vector<Origin>& fields) {
  std::string body = I16(static_cast<uint16_t>(fields.size()));
  for (const Origin& f : fields) {
    body += CStr(f.name) + I32(f.table) + I16(f.attnum) + I32(f.type) + I16(0xffff) +
            I32(0xffffffff) + I16(0);
  }
  return Typed('T', body);
}

// The server's answer to the proxy's catalog lookup: its 7 text columns, then `rows`.
Bytes LookupAnswer(const std::vector<Values>& rows) {
  std::string desc = I16(7);
  for (int i = 0; i < 7; ++i) {
    desc += CStr("c") + I32(0) + I16(0) + I32(25) + I16(0xffff) + I32(0xffffffff) + I16(0);
  }
  Bytes out = Typed('T', desc);
  out += Row({"s", "-1", "shop", "public,pg_catalog", std::nullopt, std::nullopt, std::nullopt});
  for (const Values& r : rows) out += Row(r);
  return out + Complete("SELECT 1") + Ready();
}

Values TableRow(const char* index, const char* oid, const char* name) {
  return {"r", index, oid, "public", name, "r", std::nullopt};
}
Values ViewRow(const char* index, const char* oid, const char* name, const char* def) {
  return {"r", index, oid, "public", name, "v", def};
}
Values ColumnRow(const char* index, const char* attnum, const char* name) {
  return {"c", index, attnum, name, std::nullopt, std::nullopt, std::nullopt};
}

constexpr std::string_view kLineagePolicy = R"(
rules:
  - name: ssn
    action: mask
    columns: ["public.people.ssn"]
    style: full
  - name: ssn-where
    action: mask
    columns: ["public.secrets.code"]
    predicates: allow
)";

struct LineageFixture : Fixture {
  explicit LineageFixture(std::string_view yaml = kLineagePolicy) : Fixture(yaml) {
    relay.set_catalog(&catalog);
  }
  // The client's message: the proxy looks `rounds` answers up first, then sends it on.
  void lookup_then(const std::string& message, const std::vector<Bytes>& answers) {
    std::string sent = client(message);
    for (const Bytes& a : answers) {
      REQUIRE(sent.rfind("Q", 0) == 0);
      REQUIRE(sent.find("dbwarden catalog lookup") != std::string::npos);
      REQUIRE(server(a).empty());  // the lookup's answer is the proxy's own
      sent = out.take_server();
    }
    REQUIRE(sent == message);
  }
  dbwarden::proxy::PgCatalogCache catalog;
};

Bytes PeopleAnswer(const char* index = "0") {
  return LookupAnswer({TableRow(index, "16400", "people"), ColumnRow(index, "1", "name"),
                       ColumnRow(index, "2", "ssn")});
}

}  // namespace

TEST_CASE("pg lineage relay: only the masked column of a table is masked",
          "[proxy][masking][lineage]") {
  LineageFixture f;
  const std::string q = Query("SELECT name, ssn FROM people");
  // The lookup goes first, on the client's session; its bytes reach neither side's record.
  const std::string sent = f.client(q);
  REQUIRE(sent.find("dbwarden catalog lookup") != std::string::npos);
  CHECK(f.relay.own_server_bytes() == sent.size());
  CHECK(f.server(PeopleAnswer()).empty());
  CHECK(f.out.take_server() == q);
  const std::string told = f.server(RowDescFrom({{"name", 16400, 1}, {"ssn", 16400, 2}}) +
                                    Row({"ann", "123-45-6789"}) + Complete("SELECT 1") + Ready());
  const auto m = Messages(told);
  REQUIRE(m.size() == 4);
  CHECK(RowValues(m[1])[0] == "ann");
  CHECK(RowValues(m[1])[1] == "****");
  REQUIRE(f.sink.got.size() == 1);  // the client's statement only
  CHECK(f.sink.got[0].masked_columns == 1);
  // Cached: the same statement again goes straight on.
  CHECK(f.client(q) == q);
}

TEST_CASE("pg lineage relay: a view, and a view that renames the column, are followed",
          "[proxy][masking][lineage]") {
  LineageFixture f;
  const std::string q = Query("SELECT * FROM people_v");
  // Round 1 finds the view, round 2 the table its definition reads.
  REQUIRE(f.client(q).find("dbwarden catalog lookup") != std::string::npos);
  f.server(LookupAnswer({ViewRow("0", "16500", "people_v",
                                 " SELECT people.name AS who,\n    people.ssn AS x\n   FROM "
                                 "people;"),
                         ColumnRow("0", "1", "who"), ColumnRow("0", "2", "x")}));
  REQUIRE(f.out.take_server().find("dbwarden catalog lookup") != std::string::npos);
  f.server(PeopleAnswer());
  REQUIRE(f.out.take_server() == q);
  const auto m = Messages(f.server(RowDescFrom({{"who", 16500, 1}, {"x", 16500, 2}}) +
                                   Row({"ann", "123-45-6789"}) + Complete("SELECT 1") + Ready()));
  REQUIRE(m.size() == 4);
  CHECK(RowValues(m[1])[0] == "ann");
  CHECK(RowValues(m[1])[1] == "****");
}

TEST_CASE("pg lineage relay: predicates block refuses, allow lets it run",
          "[proxy][masking][lineage]") {
  LineageFixture f;
  const std::string q = Query("SELECT name FROM people WHERE ssn LIKE '123%'");
  REQUIRE(f.client(q).find("dbwarden catalog lookup") != std::string::npos);
  const std::string told = f.server(PeopleAnswer());  // the proxy's answer, at once
  CHECK(f.out.take_server().empty());                 // never reaches the server
  CHECK(told.find("C42501") != std::string::npos);
  CHECK(told.find("condition") != std::string::npos);
  REQUIRE(f.sink.got.size() == 1);
  CHECK(f.sink.got[0].policy_rule == "ssn");
  // predicates: allow.
  const std::string q2 = Query("SELECT note FROM secrets WHERE code = 'x'");
  REQUIRE(f.client(q2).find("dbwarden catalog lookup") != std::string::npos);
  f.server(LookupAnswer({TableRow("0", "16600", "secrets"), ColumnRow("0", "1", "code"),
                         ColumnRow("0", "2", "note")}));
  CHECK(f.out.take_server() == q2);
}

namespace {

// The reach set (pg_catalog.h) of kLineagePolicy's people.ssn: the table and a view over it.
Bytes ReachLookupAnswer() {
  const std::nullopt_t no = std::nullopt;
  return LookupAnswer({{"R", "1", "16400", "public", "people", "r", no},
                       {"a", "-1", "16400", "1", "name", no, no},
                       {"a", "-1", "16400", "2", "ssn", no, no},
                       {"R", "1", "16500", "public", "people_v", "v",
                        " SELECT people.name AS who,\n    people.ssn AS x\n   FROM people;"},
                       {"a", "-1", "16500", "1", "who", no, no},
                       {"a", "-1", "16500", "2", "x", no, no},
                       {"e", "-1", no, no, no, no, no}});
}

// Inside a transaction whose reach set is known: a table outside the set passes byte for
// byte (no lookup), and the view over the masked table has its masked column masked only.
void OutsidePassesViewMasked(Fixture& f) {
  const std::string count = Query("SELECT count(*) FROM hold_t");
  CHECK(f.client(count) == count);
  const Bytes rows =
      RowDescFrom({{"count", 0, 0, 20}}) + Row({"3"}) + Complete("SELECT 1") + Ready('T');
  CHECK(f.server(rows) == rows);
  const std::string view = Query("SELECT * FROM people_v");
  CHECK(f.client(view) == view);
  const auto m =
      Messages(f.server(RowDescFrom({{"who", 16500, 1}, {"x", 16500, 2}}) +
                        Row({"ann", "123-45-6789"}) + Complete("SELECT 1") + Ready('T')));
  REQUIRE(m.size() == 4);
  CHECK(RowValues(m[1])[0] == "ann");
  CHECK(RowValues(m[1])[1] == "****");
}

}  // namespace

TEST_CASE("pg lineage relay: inside a transaction, relations outside the reach set pass",
          "[proxy][masking][lineage]") {
  LineageFixture f;
  const std::string begin = Query("BEGIN");
  // The first idle moment: the scope and its reach set are looked up before the BEGIN
  // (psycopg2 sends it before its first statement).
  const std::string sent = f.client(begin);
  REQUIRE(sent.find("dbwarden catalog lookup") != std::string::npos);
  REQUIRE(sent.find("pg_depend") != std::string::npos);
  CHECK(f.server(ReachLookupAnswer()).empty());
  REQUIRE(f.out.take_server() == begin);
  f.server(Complete("BEGIN") + Ready('T'));
  // A table no rule can reach, with a built-in aggregate: no lookup, byte for byte (it
  // came back masked, 0, before: the bug); the view over the masked table, traced from the
  // reach set, its masked column only.
  OutsidePassesViewMasked(f);
  const std::string count = Query("SELECT count(*) FROM hold_t");
  const Bytes rows =
      RowDescFrom({{"count", 0, 0, 20}}) + Row({"3"}) + Complete("SELECT 1") + Ready('T');
  // The masked table itself, and a statement joining it with a relation outside the set,
  // which fails closed (the outside relation's columns cannot be looked up here).
  const std::string table = Query("SELECT name, ssn FROM people");
  CHECK(f.client(table) == table);
  auto m = Messages(f.server(RowDescFrom({{"name", 16400, 1}, {"ssn", 16400, 2}}) +
                             Row({"ann", "123-45-6789"}) + Complete("SELECT 1") + Ready('T')));
  CHECK(RowValues(m[1])[0] == "ann");
  CHECK(RowValues(m[1])[1] == "****");
  const std::string join = Query("SELECT h.x, p.name FROM hold_t h JOIN people p USING (id)");
  CHECK(f.client(join) == join);
  m = Messages(f.server(RowDescFrom({{"x", 16700, 1}, {"name", 16400, 1}}) + Row({"x1", "ann"}) +
                        Complete("SELECT 1") + Ready('T')));
  CHECK(RowValues(m[1])[0] == "****");
  CHECK(RowValues(m[1])[1] == "****");
  // A table created inside the transaction: its DDL made the catalog be forgotten, so a
  // statement over it fails closed (every column masked).
  const std::string ddl = Query("CREATE TABLE t2 AS SELECT 'v' AS a");
  CHECK(f.client(ddl) == ddl);
  f.server(Complete("SELECT 1") + Ready('T'));
  const std::string q = Query("SELECT a FROM t2");
  CHECK(f.client(q) == q);
  m = Messages(
      f.server(RowDescFrom({{"a", 16800, 1}}) + Row({"v"}) + Complete("SELECT 1") + Ready('T')));
  REQUIRE(m.size() == 4);
  CHECK(RowValues(m[1])[0] == "****");
  const std::string commit = Query("COMMIT");
  REQUIRE(f.client(commit) == commit);
  f.server(Complete("COMMIT") + Ready('I'));
  // The next message finds the session idle: the names wanted and the reach set go first.
  const std::string next = Query("SELECT 1");
  const std::string again = f.client(next);
  CHECK(again.find("dbwarden catalog lookup") != std::string::npos);
  CHECK(again.find("E't2'") != std::string::npos);
  CHECK(again.find("pg_depend") != std::string::npos);
  // The reach set learnt now lasts into the next transaction block (the end of the one
  // that ran DDL is settled before this lookup, not after it).
  CHECK(f.server(ReachLookupAnswer()).empty());
  REQUIRE(f.out.take_server() == next);
  f.server(RowDescFrom({{"?column?", 0, 0, 23}}) + Row({"1"}) + Complete("SELECT 1") + Ready());
  CHECK(f.client(begin) == begin);
  f.server(Complete("BEGIN") + Ready('T'));
  CHECK(f.client(count) == count);
  CHECK(f.server(rows) == rows);
}

TEST_CASE("pg lineage relay: without a reach set, a view first met in a transaction fails closed",
          "[proxy][masking][lineage]") {
  LineageFixture f;
  const std::string begin = Query("BEGIN");
  const std::string sent = f.client(begin);
  REQUIRE(sent.find("dbwarden catalog lookup") != std::string::npos);
  // The server refused the lookup: no reach set, and not asked again at once.
  CHECK(f.server(Error("42501", "permission denied") + Ready('I')).empty());
  REQUIRE(f.out.take_server() == begin);
  f.server(Complete("BEGIN") + Ready('T'));
  const std::string q = Query("SELECT * FROM people_v");
  CHECK(f.client(q) == q);  // no lookup inside a transaction
  const auto m =
      Messages(f.server(RowDescFrom({{"who", 16500, 1}, {"x", 16500, 2}}) +
                        Row({"ann", "123-45-6789"}) + Complete("SELECT 1") + Ready('T')));
  REQUIRE(m.size() == 4);
  CHECK(RowValues(m[1])[0] == "****");  // may read anything: every column
  CHECK(RowValues(m[1])[1] == "****");
}

TEST_CASE("pg lineage relay: a column of a relation the trace did not see is unknown",
          "[proxy][masking][lineage]") {
  LineageFixture f;
  const std::string q = Query("SELECT name, ssn FROM people");
  f.lookup_then(q, {PeopleAnswer()});
  // The server says column 1 comes from a table OID the lookup never named (stale
  // catalog): failing closed, it is masked too.
  const auto m = Messages(f.server(RowDescFrom({{"name", 99999, 1}, {"ssn", 16400, 2}}) +
                                   Row({"ann", "123-45-6789"}) + Complete("SELECT 1") + Ready()));
  REQUIRE(m.size() == 4);
  CHECK(RowValues(m[1])[0] == "****");
  CHECK(RowValues(m[1])[1] == "****");
}

TEST_CASE("pg lineage relay: DDL forgets the catalog", "[proxy][masking][lineage]") {
  LineageFixture f;
  const std::string q = Query("SELECT name FROM people");
  f.lookup_then(q, {PeopleAnswer()});
  f.server(RowDescFrom({{"name", 16400, 1}}) + Row({"ann"}) + Complete("SELECT 1") + Ready());
  CHECK(f.client(q) == q);  // known: no lookup
  f.server(RowDescFrom({{"name", 16400, 1}}) + Row({"ann"}) + Complete("SELECT 1") + Ready());
  const std::string ddl = Query("ALTER TABLE people RENAME COLUMN name TO nm");
  CHECK(f.client(ddl) == ddl);
  f.server(Complete("ALTER TABLE") + Ready());
  CHECK(f.client(q).find("dbwarden catalog lookup") != std::string::npos);
}

// --- the reach set shared between connections (pg_catalog.h, "Sharing it") ---

namespace {

using dbwarden::proxy::PgCatalogCache;

// A connection of its own on a catalog shared with others, to `upstream`, as `startup`.
struct SharedFixture : Fixture {
  explicit SharedFixture(PgCatalogCache& shared, const std::string& upstream = "tcp 127.0.0.1 5432",
                         const Bytes& startup = Startup("alice", "shop"))
      : Fixture(kLineagePolicy, &shared, upstream, startup) {}
};

// ReachLookupAnswer's set, from a session the server says is at its start, as alice.
Bytes StartReachAnswer(const char* at_start = "t") {
  const std::nullopt_t no = std::nullopt;
  std::string desc = I16(7);
  for (int i = 0; i < 7; ++i) {
    desc += CStr("c") + I32(0) + I16(0) + I32(25) + I16(0xffff) + I32(0xffffffff) + I16(0);
  }
  return Typed('T', desc) + Row({"s", "-1", "shop", "public,pg_catalog", at_start, "alice", no}) +
         Row({"R", "1", "16400", "public", "people", "r", no}) +
         Row({"a", "-1", "16400", "1", "name", no, no}) +
         Row({"a", "-1", "16400", "2", "ssn", no, no}) +
         Row({"R", "1", "16500", "public", "people_v", "v",
              " SELECT people.name AS who,\n    people.ssn AS x\n   FROM people;"}) +
         Row({"a", "-1", "16500", "1", "who", no, no}) +
         Row({"a", "-1", "16500", "2", "x", no, no}) + Row({"e", "-1", no, no, no, no, no}) +
         Complete("SELECT 8") + Ready();
}

bool IsReachLookup(const std::string& sent) {
  return sent.find("dbwarden catalog lookup") != std::string::npos &&
         sent.find("pg_depend") != std::string::npos;
}

// `f` begins a transaction, its reach set known: no lookup, and it masks as a connection
// that asked would.
void UsesSharedSet(Fixture& f) {
  const std::string begin = Query("BEGIN");
  CHECK(f.client(begin) == begin);
  f.server(Complete("BEGIN") + Ready('T'));
  OutsidePassesViewMasked(f);
}

}  // namespace

TEST_CASE("pg lineage relay: a new connection of the same start takes the shared reach set",
          "[proxy][masking][lineage][share]") {
  PgCatalogCache catalog;
  const std::string begin = Query("BEGIN");
  SharedFixture a(catalog);
  REQUIRE(IsReachLookup(a.client(begin)));
  CHECK(a.server(StartReachAnswer()).empty());
  REQUIRE(a.out.take_server() == begin);
  a.server(Complete("BEGIN") + Ready('T'));
  // Another connection of the same start (another application_name does not matter): no
  // query of the proxy's own at all, and it masks as the first would.
  SharedFixture b(catalog, "tcp 127.0.0.1 5432", Startup("alice", "shop", "worker-2"));
  b.now = a.now;  // one clock, as the proxy's
  UsesSharedSet(b);
  auto c = catalog.counters();
  CHECK(c.reach_misses == 1);
  CHECK(c.reach_hits == 1);
  CHECK(c.reach_waits == 0);
  // Another user, another database or another server: a scope of its own, asked for.
  SharedFixture bob(catalog, "tcp 127.0.0.1 5432", Startup("bob", "shop"));
  CHECK(IsReachLookup(bob.client(begin)));
  SharedFixture stock(catalog, "tcp 127.0.0.1 5432", Startup("alice", "stock"));
  CHECK(IsReachLookup(stock.client(begin)));
  SharedFixture other(catalog, "tcp 127.0.0.1 5433");
  CHECK(IsReachLookup(other.client(begin)));
  CHECK(catalog.counters().reach_misses == 4);
}

TEST_CASE("pg lineage relay: a session the server says left its start teaches no start",
          "[proxy][masking][lineage][share]") {
  PgCatalogCache catalog;
  const std::string begin = Query("BEGIN");
  SharedFixture a(catalog);
  REQUIRE(IsReachLookup(a.client(begin)));
  // search_path not at its reset value (ALTER ROLE ... SET role, a function's set_config):
  // its scope is not what a fresh session of the start lands in.
  CHECK(a.server(StartReachAnswer("f")).empty());
  REQUIRE(a.out.take_server() == begin);
  SharedFixture b(catalog);
  b.now = a.now;
  CHECK(IsReachLookup(b.client(begin)));
  CHECK(catalog.starts() == 0);
}

TEST_CASE("pg lineage relay: one lookup in flight, and the same start waits for it",
          "[proxy][masking][lineage][share]") {
  PgCatalogCache catalog;
  const std::string begin = Query("BEGIN");
  SharedFixture a(catalog);
  SharedFixture b(catalog);
  REQUIRE(IsReachLookup(a.client(begin)));
  // b's first idle moment while a's lookup is out: b sends nothing and waits.
  CHECK(b.client(begin).empty());
  CHECK(b.client("").empty());  // more client bytes do not end the wait
  CHECK(catalog.counters().reach_waits == 1);
  CHECK(catalog.take_woken().empty());
  CHECK(a.server(StartReachAnswer()).empty());
  REQUIRE(a.out.take_server() == begin);
  // a's answer wakes b (the proxy drives its connection), which goes on with the shared set.
  REQUIRE(catalog.take_woken() == std::vector<const void*>{&b.relay});
  CHECK(b.client("") == begin);
  b.server(Complete("BEGIN") + Ready('T'));
  OutsidePassesViewMasked(b);
  const auto c = catalog.counters();
  CHECK(c.reach_misses == 1);
  CHECK(c.reach_hits == 1);
}

TEST_CASE("pg lineage relay: a refused lookup wakes its waiters, who ask themselves",
          "[proxy][masking][lineage][share]") {
  PgCatalogCache catalog;
  const std::string begin = Query("BEGIN");
  SharedFixture a(catalog);
  SharedFixture b(catalog);
  REQUIRE(IsReachLookup(a.client(begin)));
  CHECK(b.client(begin).empty());
  CHECK(a.server(Error("42501", "permission denied") + Ready('I')).empty());
  REQUIRE(catalog.take_woken() == std::vector<const void*>{&b.relay});
  CHECK(IsReachLookup(b.client("")));
  // The owner going away mid-lookup wakes them too.
  SharedFixture c(catalog);
  CHECK(c.client(begin).empty());  // waits for b's
  c.relay.on_close(++c.now);       // never woken once gone
  b.relay.on_close(++b.now);
  CHECK(catalog.take_woken().empty());
}

TEST_CASE("pg lineage relay: renewal at half the TTL is one lookup, and DDL renews it for all",
          "[proxy][masking][lineage][share]") {
  PgCatalogCache::Limits limits;
  limits.ttl_ns = 1'000'000;
  PgCatalogCache catalog(limits);
  const std::string begin = Query("BEGIN");
  const std::string commit = Query("COMMIT");
  SharedFixture a(catalog);
  REQUIRE(IsReachLookup(a.client(begin)));
  a.server(StartReachAnswer());
  REQUIRE(a.out.take_server() == begin);
  a.server(Complete("BEGIN") + Ready('T'));
  REQUIRE(a.client(commit) == commit);
  a.server(Complete("COMMIT") + Ready('I'));
  // Half the TTL later a renews at its next idle moment...
  a.now += 600'000;
  const std::string one = Query("SELECT 1");
  REQUIRE(IsReachLookup(a.client(one)));
  // ...while a new connection of the same start keeps the previous set, still in its TTL.
  SharedFixture b(catalog);
  b.now = a.now;
  UsesSharedSet(b);
  CHECK(catalog.counters().reach_misses == 2);
  a.server(StartReachAnswer());
  REQUIRE(a.out.take_server() == one);
  a.server(RowDescFrom({{"?column?", 0, 0, 23}}) + Row({"1"}) + Complete("SELECT 1") + Ready());
  b.client(commit);
  b.server(Complete("COMMIT") + Ready('I'));
  // DDL by a: the catalog, reach sets included, is forgotten; b's next idle moment asks.
  const std::string ddl = Query("ALTER TABLE people ADD COLUMN extra text");
  REQUIRE(a.client(ddl) == ddl);
  a.server(Complete("ALTER TABLE") + Ready());
  b.now = a.now;
  CHECK(IsReachLookup(b.client(begin)));
}

TEST_CASE("pg lineage relay: a policy with other columns does not take a set made for these",
          "[proxy][masking][lineage][share]") {
  PgCatalogCache catalog;
  const std::string begin = Query("BEGIN");
  SharedFixture a(catalog);
  REQUIRE(IsReachLookup(a.client(begin)));
  a.server(StartReachAnswer());
  REQUIRE(a.out.take_server() == begin);
  // Same start, same server, but the rules name another column (a reload in between): the
  // set above would call its relations outside, so this connection asks for its own.
  constexpr std::string_view kOtherColumns = R"(
rules:
  - name: cards
    action: mask
    columns: ["public.cards.number"]
)";
  Fixture b(kOtherColumns, &catalog, "tcp 127.0.0.1 5432");
  b.now = a.now;
  const std::string sent = b.client(begin);
  CHECK(IsReachLookup(sent));
  CHECK(sent.find("E'cards'") != std::string::npos);
  CHECK(catalog.counters().reach_hits == 0);
}
