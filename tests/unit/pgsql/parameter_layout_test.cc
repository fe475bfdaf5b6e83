// SPDX-License-Identifier: Apache-2.0
// The <values> part of a Bind and Parse's type list: the one reading that the
// audit decoder (ReadParameterValues) and the proxy's EXPLAIN binding
// (PgBindParameters, PgBindValues) share.
#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/pgsql/parameters.h"

namespace dbwarden::pgsql {
namespace {

void Put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void Put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// <values> with the given format codes and values (nullopt: NULL).
std::vector<uint8_t> Values(std::vector<uint16_t> formats,
                            std::vector<std::optional<std::string>> values) {
  std::vector<uint8_t> out;
  Put16(out, static_cast<uint16_t>(formats.size()));
  for (uint16_t f : formats) Put16(out, f);
  Put16(out, static_cast<uint16_t>(values.size()));
  for (const auto& v : values) {
    if (!v) {
      Put32(out, 0xFFFFFFFFu);
      continue;
    }
    Put32(out, static_cast<uint32_t>(v->size()));
    out.insert(out.end(), v->begin(), v->end());
  }
  return out;
}

std::vector<std::optional<std::string>> Walk(std::span<const uint8_t> body,
                                             const ParameterLayout& layout, bool* whole) {
  std::vector<std::optional<std::string>> got;
  size_t pos = layout.values_at;
  std::optional<std::span<const uint8_t>> value;
  *whole = true;
  for (size_t i = 0; i < layout.value_count; ++i) {
    if (!NextParameterValue(body, &pos, &value)) {
      *whole = false;
      break;
    }
    got.push_back(value ? std::optional<std::string>(std::string(value->begin(), value->end()))
                        : std::nullopt);
  }
  return got;
}

}  // namespace

TEST_CASE("parameter layout: format codes apply as the protocol says", "[pgsql]") {
  ParameterLayout layout;
  auto none = Values({}, {"a", "b"});
  REQUIRE(ReadParameterLayout(none, 0, &layout));
  CHECK(layout.value_count == 2);
  CHECK(layout.format(0) == 0);
  CHECK(layout.format(1) == 0);

  auto one = Values({1}, {"a", "b", "c"});
  REQUIRE(ReadParameterLayout(one, 0, &layout));
  CHECK(layout.format(2) == 1);

  auto each = Values({0, 1}, {"a", "b"});
  REQUIRE(ReadParameterLayout(each, 0, &layout));
  CHECK(layout.format(0) == 0);
  CHECK(layout.format(1) == 1);

  // Two codes for three values: the server rejects such a Bind, and so does the reading.
  auto mismatch = Values({0, 1}, {"a", "b", "c"});
  CHECK_FALSE(ReadParameterLayout(mismatch, 0, &layout));
}

TEST_CASE("parameter layout: values, NULLs, and the offset of the head", "[pgsql]") {
  std::vector<uint8_t> body = {'p', 0, 's', 0};  // a Bind's portal and statement names
  auto values = Values({}, {"42", std::nullopt, ""});
  body.insert(body.end(), values.begin(), values.end());
  ParameterLayout layout;
  REQUIRE(ReadParameterLayout(body, 4, &layout));
  bool whole = false;
  auto got = Walk(body, layout, &whole);
  CHECK(whole);
  REQUIRE(got.size() == 3);
  CHECK(got[0] == std::optional<std::string>("42"));
  CHECK_FALSE(got[1].has_value());
  CHECK(got[2] == std::optional<std::string>(""));
}

TEST_CASE("parameter layout: a cut or hostile body is refused, never read past", "[pgsql]") {
  auto full = Values({}, {"hello", "world"});
  ParameterLayout layout;
  // Every prefix: either the head is incomplete, or walking stops at the cut.
  for (size_t n = 0; n < full.size(); ++n) {
    std::span<const uint8_t> cut(full.data(), n);
    if (!ReadParameterLayout(cut, 0, &layout)) continue;
    bool whole = true;
    Walk(cut, layout, &whole);
    CHECK_FALSE(whole);
  }
  CHECK_FALSE(ReadParameterLayout(full, full.size() + 1, &layout));  // offset past the end

  // A length below -1, and one larger than the body.
  std::vector<uint8_t> bad;
  Put16(bad, 0);
  Put16(bad, 1);
  Put32(bad, 0xFFFFFFFEu);
  REQUIRE(ReadParameterLayout(bad, 0, &layout));
  size_t pos = layout.values_at;
  std::optional<std::span<const uint8_t>> value;
  CHECK_FALSE(NextParameterValue(bad, &pos, &value));
  CHECK(pos == layout.values_at);  // unmoved
  bad.resize(bad.size() - 4);
  Put32(bad, 0x7FFFFFFFu);
  CHECK_FALSE(NextParameterValue(bad, &pos, &value));
}

TEST_CASE("parameter layout: Parse's type OIDs, strict and lenient", "[pgsql]") {
  std::vector<uint8_t> parse = {'s', 0, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '$', '1', 0};
  std::vector<uint32_t> types;
  CHECK(ReadParseParameterTypes(parse, &types));  // no count at all: no types
  CHECK(types.empty());

  Put16(parse, 2);
  Put32(parse, 23);
  Put32(parse, 25);
  REQUIRE(ReadParseParameterTypes(parse, &types));
  CHECK(types == std::vector<uint32_t>{23, 25});
  CHECK(ParseParameterTypes(parse) == std::vector<uint32_t>{23, 25});

  parse.pop_back();  // cut inside the second OID
  types.clear();
  CHECK_FALSE(ReadParseParameterTypes(parse, &types));
  CHECK(ParseParameterTypes(parse).empty());  // the decoder's reading: types unknown
}

}  // namespace dbwarden::pgsql
