// SPDX-License-Identifier: Apache-2.0
//
// Policy::check_column_types(): `policy check --postgres/--mysql` against a database's
// columns. A text style on a column that is not text, and `null` on a NOT NULL column, are
// errors at the rule naming the column and its type; an entry that names no column is a
// warning; several entries and several rules are each checked.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace {

using dbwarden::policy::DbColumn;
using dbwarden::policy::Policy;

const std::vector<DbColumn> kColumns = {
    {"public", "people", "id", "integer", false, true},
    {"public", "people", "name", "text", true, true},
    {"public", "people", "ssn", "character varying(11)", true, false},
    {"public", "people", "born", "date", false, false},
    {"hr", "salaries", "amount", "numeric(10,2)", false, false},
    {"hr", "salaries", "Note", "text", true, false},
};

bool has(const std::vector<std::string>& lines, const std::string& text) {
  for (const std::string& l : lines) {
    if (l.find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("policy column types: text styles on text columns, null on nullable ones pass",
          "[policy][masking]") {
  auto p = Policy::load_string(R"(
rules:
  - {name: a, action: mask, columns: ["*.people.ssn", "hr.salaries.note"], style: partial}
  - {name: b, action: mask, columns: ["public.people.born", "hr.*.amount"], style: "null"}
  - {name: c, action: mask, columns: ["*.*.*"]}
  - {name: d, action: mask, detectors: [email], style: partial}
)",
                               "p.yaml");
  REQUIRE(p.ok());
  const auto r = (*p)->check_column_types(kColumns);
  CHECK(r.errors.empty());
  CHECK(r.warnings.empty());
  CHECK(r.columns_checked == kColumns.size());  // c names them all
}

TEST_CASE("policy column types: a style that cannot apply is an error at the rule",
          "[policy][masking]") {
  auto p = Policy::load_string(R"(rules:
  - name: partial-date
    action: mask
    columns: ["public.people.b*", "public.people.ssn"]
    style: partial
  - name: null-not-null
    action: mask
    columns: ["public.people.name"]
    style: "null"
  - name: nothing
    action: mask
    columns: ["public.nosuch.*", "hr.salaries.amount"]
    style: full
)",
                               "p.yaml");
  REQUIRE(p.ok());
  const auto r = (*p)->check_column_types(kColumns);
  REQUIRE(r.errors.size() == 2);
  CHECK(
      r.errors[0].starts_with("p.yaml:2:5: mask rule \"partial-date\": style `partial` "
                              "cannot apply to public.people.born of type date"));
  CHECK(has(r.errors, "narrow `public.people.b*`"));
  CHECK(
      r.errors[1].starts_with("p.yaml:6:5: mask rule \"null-not-null\": style `null` cannot "
                              "apply to public.people.name of type text NOT NULL"));
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0] ==
        "p.yaml:10:5: mask rule \"nothing\": warning: `public.nosuch.*` names "
        "no column of the database checked");
  CHECK(r.columns_checked == 4);
  // No column at all (an empty database): every entry is a warning, nothing an error.
  const auto empty = (*p)->check_column_types({});
  CHECK(empty.errors.empty());
  CHECK(empty.warnings.size() == 5);  // one per entry
}
