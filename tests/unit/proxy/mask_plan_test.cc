// SPDX-License-Identifier: Apache-2.0
//
// The protocol-neutral mask plan: which result columns a statement's mask rules mask whole,
// which get content detection, when it is blocked instead, and the per-statement tallies
// the records and metrics carry.
#include "proxy/mask_plan.h"

#include <catch2/catch.hpp>
#include <cstring>

#include "relay_fixture.h"

using dbwarden::MaskedCount;
using dbwarden::Statement;
using dbwarden::masking::Column;
using dbwarden::masking::Encoding;
using dbwarden::masking::Outcome;
using dbwarden::masking::ValueType;
using dbwarden::policy::MaskRule;
using dbwarden::proxy::build_mask_plan;
using dbwarden::proxy::ColumnOrigin;
using dbwarden::proxy::MaskPlan;
using dbwarden::proxy::MaskTallies;
using dbwarden::proxy::MaskTally;
using dbwarden::proxy::SourceRef;
using dbwarden::proxy::StatementOrigins;

namespace {

constexpr std::string_view kPolicy = R"(
rules:
  - name: ssn
    action: mask
    columns: [public.people.ssn]
    style: partial
  - name: cards
    action: mask
    columns: ["*.payments.card"]
    style: full
    on_derived: block
    predicates: allow
  - name: pii-text
    action: mask
    detectors: [email]
)";

struct Rules {
  Rules() : policy(proxytest::LoadPolicy(kPolicy)) {
    dbwarden::ConnectionInfo who;
    dbwarden::sql::Analysis a;
    policy->mask_rules_for(who, a, rules);
    REQUIRE(rules.size() == 3);
  }
  MaskPlan plan(const StatementOrigins& o, size_t columns) const {
    return build_mask_plan(rules, *policy, o, columns);
  }
  std::shared_ptr<const dbwarden::policy::Policy> policy;
  std::vector<const MaskRule*> rules;
};

ColumnOrigin Copy(std::string schema, std::string table, std::string column) {
  return {ColumnOrigin::Kind::kCopy, {SourceRef{schema, table, column}}};
}
ColumnOrigin Derived(std::string schema, std::string table, std::string column) {
  return {ColumnOrigin::Kind::kDerived, {SourceRef{schema, table, column}}};
}

const Column kText{ValueType::kText, Encoding::kPgText, true};

}  // namespace

TEST_CASE("mask plan: plain columns masked by their rule's style, others by content",
          "[proxy][masking]") {
  Rules r;
  StatementOrigins o;
  o.columns = {Copy("public", "people", "ssn"), Copy("public", "people", "note"),
               Copy("shop", "payments", "card")};
  const MaskPlan plan = r.plan(o, 3);
  REQUIRE_FALSE(plan.empty());
  CHECK_FALSE(plan.blocked());
  CHECK(plan.column(0).on);
  CHECK(plan.column(0).style == dbwarden::masking::Style::kPartial);
  CHECK_FALSE(plan.column(1).on);
  CHECK(plan.column(2).on);
  CHECK(plan.column(2).style == dbwarden::masking::Style::kFull);
  CHECK(plan.has_content());

  MaskTally tally;
  std::string out;
  REQUIRE(plan.apply(0, kText, "123-45-6789", out, tally) == Outcome::kReplaced);
  CHECK(out.find("6789") != std::string::npos);
  CHECK(out.find("123") == std::string::npos);
  // Not a masked column: only the e-mail inside is masked.
  REQUIRE(plan.apply(1, kText, "write to ann@example.com today", out, tally) == Outcome::kReplaced);
  CHECK(out.find("ann@example.com") == std::string::npos);
  CHECK(out.find("write to ") == 0);
  CHECK(plan.apply(1, kText, "nothing here", out, tally) == Outcome::kUnchanged);
  REQUIRE(plan.apply(2, kText, "4111111111111111", out, tally) == Outcome::kReplaced);
  CHECK(out == "****");
  REQUIRE(plan.apply(0, kText, "987-65-4321", out, tally) == Outcome::kReplaced);

  CHECK(tally.columns() == 3);
  CHECK(tally.values() == 4);
  Statement st;
  tally.add_to(st);
  CHECK(st.masked_columns == 3);
  CHECK(st.masked_values == 4);
  auto find = [&](std::string_view rule, std::string_view det) -> uint32_t {
    for (const MaskedCount& c : st.masked_by)
      if (c.rule == rule && c.detector == det) return c.values;
    return 0;
  };
  CHECK(find("ssn", "column") == 2);
  CHECK(find("cards", "column") == 1);
  CHECK(find("pii-text", "email") == 1);
}

TEST_CASE("mask plan: derived columns follow on_derived, predicates follow predicates",
          "[proxy][masking]") {
  Rules r;
  SECTION("derived from ssn (on_derived: mask) is masked whole") {
    StatementOrigins o;
    o.columns = {Derived("public", "people", "ssn")};
    const MaskPlan plan = r.plan(o, 1);
    CHECK_FALSE(plan.blocked());
    CHECK(plan.column(0).on);
  }
  SECTION("derived from card (on_derived: block) blocks the statement") {
    StatementOrigins o;
    o.columns = {Derived("shop", "payments", "card")};
    const MaskPlan plan = r.plan(o, 1);
    CHECK(plan.blocked());
    CHECK(plan.block_rule() == "cards");
    CHECK(plan.block_message().find("derived") != std::string::npos);
  }
  SECTION("ssn in a predicate (predicates: block by default) blocks") {
    StatementOrigins o;
    o.columns = {Copy("public", "people", "name")};
    o.predicate_columns = {SourceRef{"public", "people", "ssn"}};
    const MaskPlan plan = r.plan(o, 1);
    CHECK(plan.blocked());
    CHECK(plan.block_rule() == "ssn");
  }
  SECTION("card in a predicate (predicates: allow) runs") {
    StatementOrigins o;
    o.columns = {Copy("shop", "payments", "id")};
    o.predicate_columns = {SourceRef{"shop", "payments", "card"}};
    const MaskPlan plan = r.plan(o, 1);
    CHECK_FALSE(plan.blocked());
    CHECK_FALSE(plan.column(0).on);
  }
}

TEST_CASE("mask plan: untraced columns fail closed when the statement may read a masked one",
          "[proxy][masking]") {
  Rules r;
  SECTION("a table the rule names: every unknown column masked (ssn) or blocked (cards)") {
    StatementOrigins o;
    o.may_read = {SourceRef{"", "people", ""}};
    const MaskPlan plan = r.plan(o, 2);
    CHECK_FALSE(plan.blocked());
    CHECK(plan.column(0).on);
    CHECK(plan.column(1).on);
    o.may_read = {SourceRef{"", "payments", ""}};
    CHECK(r.plan(o, 2).blocked());
  }
  SECTION("an unrelated table: content detection only") {
    StatementOrigins o;
    o.may_read = {SourceRef{"", "orders", ""}};
    const MaskPlan plan = r.plan(o, 2);
    CHECK_FALSE(plan.blocked());
    CHECK_FALSE(plan.column(0).on);
    CHECK(plan.has_content());
  }
  SECTION("reads unknown: everything masked") {
    StatementOrigins o;
    o.reads_unknown = true;
    o.columns = {Copy("public", "orders", "total")};  // known, uncovered: left alone
    const MaskPlan plan = r.plan(o, 2);
    // The unknown column is masked whole by the first rule (ssn's): nothing of it leaves,
    // so the later rule's on_derived: block has nothing left to refuse.
    CHECK_FALSE(plan.blocked());
    CHECK_FALSE(plan.column(0).on);
    CHECK(plan.column(1).on);
    CHECK(plan.column(1).rule == 0);
  }
}

TEST_CASE("mask plan: may_need_masking tells untouched tables apart without a plan",
          "[proxy][masking]") {
  Rules r;
  const std::vector<const MaskRule*> columns_only = {r.rules[0], r.rules[1]};
  using V = std::vector<std::string>;
  CHECK_FALSE(dbwarden::proxy::may_need_masking(columns_only, V{"pgbench_accounts"}));
  CHECK_FALSE(dbwarden::proxy::may_need_masking(columns_only, V{"shop.orders", "x"}));
  CHECK(dbwarden::proxy::may_need_masking(columns_only, V{"orders", "public.people"}));
  CHECK(dbwarden::proxy::may_need_masking(columns_only, V{"\"payments\""}));
  CHECK(dbwarden::proxy::may_need_masking(columns_only, V{"people"}));  // schema unknown
  CHECK_FALSE(dbwarden::proxy::may_need_masking(columns_only, V{"other.people"}));
  CHECK(dbwarden::proxy::may_need_masking(columns_only, V{}));               // FETCH, EXECUTE, f()
  CHECK(dbwarden::proxy::may_need_masking(r.rules, V{"pgbench_accounts"}));  // content
  CHECK_FALSE(dbwarden::proxy::may_need_masking({}, V{}));
}

TEST_CASE("mask plan: may_change rules out a whole row only when nothing in it can change",
          "[proxy][masking]") {
  Rules r;
  StatementOrigins o;
  o.may_read.push_back(SourceRef{"public", "tickets", ""});
  // Content only (pii-text): a row is ruled out by its bytes, framing included.
  const MaskPlan content = r.plan(o, 2);
  REQUIRE(content.has_content());
  const std::string framing("\0\2\0\0\0\x34", 6);
  CHECK_FALSE(content.may_change(framing + "ordinary words, order 1234 on 2026-01-02"));
  CHECK(content.may_change(framing + "write to ann@example.com" + framing + "x"));
  // The item split by framing is not an item, but whatever spans a value is seen.
  CHECK(content.may_change("ann@example.com"));
  // A column masked whole: every row may change.
  StatementOrigins people;
  people.columns = {Copy("public", "people", "ssn")};
  CHECK(r.plan(people, 1).may_change("nothing here"));
  // And where: the values that may change are those that meet the range; the whole row
  // when a column is masked whole.
  const std::string filler(150, 'w');
  const std::string row =
      framing + filler + framing + "write to ann@example.com" + framing + filler;
  size_t begin = 0, end = 0;
  REQUIRE(content.may_change(row, &begin, &end));
  const size_t item_at = row.find("ann@");
  CHECK(item_at < end);
  CHECK(item_at + std::strlen("ann@example.com") > begin);
  CHECK(begin > 0);         // the first value is ruled out
  CHECK(end < row.size());  // and the last
  REQUIRE(r.plan(people, 1).may_change(row, &begin, &end));
  CHECK(begin == 0);
  CHECK(end == row.size());
}

TEST_CASE("mask plan: no rules is an empty plan", "[proxy][masking]") {
  Rules r;
  StatementOrigins o;
  o.reads_unknown = true;
  const MaskPlan plan = build_mask_plan({}, *r.policy, o, 3);
  CHECK(plan.empty());
}

TEST_CASE("mask tallies wait for their statement's record, by text", "[proxy][masking]") {
  MaskTallies t;
  MaskTally a;
  a.count(0, "r", "column", 2);
  t.finish("SELECT a", a);
  CHECK(a.empty());
  MaskTally none;
  t.finish("SELECT nothing", none);  // nothing masked: nothing kept
  a.count(1, "r", "email", 1);
  t.finish("SELECT b", a);
  CHECK(t.take("SELECT nothing") == nullptr);
  const MaskTally* b = t.take("SELECT b");  // drops "SELECT a", older and never taken
  REQUIRE(b != nullptr);
  CHECK(b->values() == 1);
  CHECK(t.take("SELECT a") == nullptr);
  for (int i = 0; i < 100; ++i) {
    a.count(0, "r", "column", 1);
    t.finish("SELECT " + std::to_string(i), a);
  }
  CHECK(t.take("SELECT 0") == nullptr);  // bounded: the oldest went
  REQUIRE(t.take("SELECT 99") != nullptr);
}
