// SPDX-License-Identifier: Apache-2.0
//
// SQL-level PREPARE / EXECUTE in the proxy's judge: a PREPARE is judged by the statement
// it prepares, an EXECUTE as the statement it runs (rules in force then), a name the proxy
// cannot know is unparsed; and the session's store they live in (staged until sent,
// bounded, PostgreSQL's keep-the-old on a PREPARE of a known name).
#include "proxy/sql_prepared.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "policy/policy.h"
#include "proxy/policy_judge.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::policy::Policy;
using dbwarden::proxy::Dialect;
using dbwarden::proxy::MessageVerdict;
using dbwarden::proxy::PolicyJudge;
using dbwarden::proxy::PolicySource;
using dbwarden::proxy::SqlPrepared;

constexpr std::string_view kPolicy = R"(
approver_groups: {dba: [alice]}
rules:
  - name: no-drop
    match: {operation: [DROP TABLE]}
    action: block
  - name: hold-deletes
    match: {operation: DELETE}
    action: require_approval
    approvers: [dba]
)";

std::shared_ptr<const Policy> load(std::string_view yaml) {
  auto p = Policy::load_string(yaml, "p.yaml");
  REQUIRE(p.ok());
  return p.value();
}

struct Fixture {
  explicit Fixture(std::string_view yaml = kPolicy) : source(load(yaml)), judge(source) {
    who.connection_id = 1;
    who.user = "app";
  }
  // Judges `sql` as the relay would; `sent`: the relay sends it (commits its PREPAREs).
  const MessageVerdict& run(Dialect d, std::string_view sql, bool sent = true) {
    judge.judge(who, d, sql, /*complete=*/true, /*backslash_escapes=*/true, &prepared, &v);
    if (sent && !v.decisive.block) prepared.commit();
    return v;
  }
  PolicySource source;
  PolicyJudge judge;
  ConnectionInfo who;
  SqlPrepared prepared;
  MessageVerdict v;
};

constexpr Dialect kMy = Dialect::kMysql;
constexpr Dialect kPg = Dialect::kPostgresql;

}  // namespace

TEST_CASE("sql prepared: today's gap, judged without the session's store", "[proxy][sqlprepare]") {
  Fixture f;
  MessageVerdict v;
  // What the judge did before: the PREPARE and the EXECUTE by their own text, the DELETE
  // they run meeting no rule. Still so where no store is given (a record judged again).
  f.judge.judge(f.who, kMy, "PREPARE s FROM 'DELETE FROM t WHERE id < 100'", true, true, nullptr,
                &v);
  CHECK_FALSE(v.decisive.block);
  f.judge.judge(f.who, kMy, "EXECUTE s", true, true, nullptr, &v);
  CHECK_FALSE(v.decisive.block);
  CHECK(v.decisive.approvals == 0);
}

TEST_CASE("sql prepared: MySQL EXECUTE needs the approval its DELETE needs",
          "[proxy][sqlprepare]") {
  Fixture f;
  // Preparing runs nothing: it passes.
  CHECK_FALSE(f.run(kMy, "PREPARE s FROM 'DELETE FROM t WHERE id < 100'").decisive.block);
  const MessageVerdict& v = f.run(kMy, "EXECUTE s");
  CHECK(v.decisive.block);
  CHECK(v.decisive.approvals == 1);
  CHECK(v.decisive.rule == "hold-deletes");
  CHECK(v.decisive.operation == "DELETE");
  REQUIRE(v.statements.size() == 1);
  const auto& s = v.statements.front();
  CHECK(s.text == "EXECUTE s");  // the records' key: what the decoder reports
  CHECK(s.verdict.runs == "DELETE FROM t WHERE id < 100");
  CHECK(s.verdict.tables == std::vector<std::string>{"t"});
  CHECK(s.verdict.approvers == std::vector<std::string>{"alice"});
  CHECK(s.verdict.fingerprint != 0);
  CHECK(s.verdict.why.find("EXECUTE s runs DELETE FROM t WHERE id < 100") == 0);
  // The same fingerprint as the DELETE sent itself: a JIT grant of one covers the other.
  const uint64_t fp = s.verdict.fingerprint;
  CHECK(f.run(kMy, "DELETE FROM t WHERE id < 7", false).decisive.fingerprint == fp);
  // USING values, any case of the name.
  CHECK(f.run(kMy, "execute S using @a").decisive.approvals == 1);
  // Replaced by a harmless statement: it runs.
  CHECK_FALSE(f.run(kMy, "PREPARE s FROM 'SELECT 1'").decisive.block);
  CHECK_FALSE(f.run(kMy, "EXECUTE s").decisive.block);
}

TEST_CASE("sql prepared: a block rule blocks the PREPARE, and nothing is remembered",
          "[proxy][sqlprepare]") {
  Fixture f;
  CHECK_FALSE(f.run(kMy, "PREPARE s FROM 'SELECT 1'").decisive.block);
  const MessageVerdict& v = f.run(kMy, "PREPARE s FROM 'DROP TABLE t'");
  CHECK(v.decisive.block);
  CHECK(v.decisive.approvals == 0);
  CHECK(v.decisive.rule == "no-drop");
  CHECK(v.statements.front().verdict.action == "block");
  // Never reached the server: `s` is still the SELECT there.
  CHECK_FALSE(f.run(kMy, "EXECUTE s").decisive.block);
  // A rule that blocks at the EXECUTE (after a reload): judged by the rules in force then.
  CHECK_FALSE(f.run(kMy, "PREPARE d FROM 'DELETE FROM t'").decisive.block);
  f.source.set(load("rules: [{name: no-delete, match: {operation: DELETE}, action: block}]\n"));
  const MessageVerdict& e = f.run(kMy, "EXECUTE d");
  CHECK(e.decisive.block);
  CHECK(e.decisive.rule == "no-delete");
  CHECK(e.decisive.approvals == 0);
}

TEST_CASE("sql prepared: what the proxy cannot know is unparsed", "[proxy][sqlprepare]") {
  Fixture f;
  const MessageVerdict& v = f.run(kMy, "PREPARE s FROM @q");
  CHECK(v.decisive.block);
  CHECK(v.decisive.rule == "on_unparsed");
  CHECK(v.decisive.message.find("cannot be judged") != std::string::npos);
  // Never prepared through the proxy.
  const MessageVerdict& e = f.run(kMy, "EXECUTE nope");
  CHECK(e.decisive.block);
  CHECK(e.decisive.rule == "on_unparsed");
  CHECK(e.decisive.message.find("not known to the proxy") != std::string::npos);
  CHECK(f.run(kMy, "EXECUTE IMMEDIATE @q").decisive.rule == "on_unparsed");
  // Deallocated: gone.
  CHECK_FALSE(f.run(kMy, "PREPARE s FROM 'SELECT 1'").decisive.block);
  CHECK_FALSE(f.run(kMy, "EXECUTE s").decisive.block);
  CHECK_FALSE(f.run(kMy, "DEALLOCATE PREPARE s").decisive.block);
  CHECK(f.run(kMy, "EXECUTE s").decisive.rule == "on_unparsed");
  CHECK_FALSE(f.run(kMy, "PREPARE s FROM 'SELECT 1'").decisive.block);
  CHECK_FALSE(f.run(kMy, "DROP PREPARE S").decisive.block);
  CHECK(f.run(kMy, "EXECUTE s").decisive.rule == "on_unparsed");

  // on_unparsed: allow lets them through, judged by their own text.
  Fixture g("on_unparsed: allow\nrules: []\n");
  CHECK_FALSE(g.run(kMy, "PREPARE s FROM @q").decisive.block);
  CHECK_FALSE(g.run(kMy, "EXECUTE s").decisive.block);
}

TEST_CASE("sql prepared: MariaDB EXECUTE IMMEDIATE is judged as its literal",
          "[proxy][sqlprepare]") {
  Fixture f;
  CHECK(f.run(kMy, "EXECUTE IMMEDIATE 'DROP TABLE t'").decisive.rule == "no-drop");
  const MessageVerdict& v = f.run(kMy, "EXECUTE IMMEDIATE 'DELETE FROM t WHERE id = ?' USING 5");
  CHECK(v.decisive.approvals == 1);
  CHECK(v.statements.front().verdict.runs == "DELETE FROM t WHERE id = ?");
  CHECK_FALSE(f.run(kMy, "EXECUTE IMMEDIATE 'SELECT 1'").decisive.block);
}

TEST_CASE("sql prepared: staged until the message is sent", "[proxy][sqlprepare]") {
  Fixture f;
  // One message: its EXECUTE sees its PREPARE.
  const MessageVerdict& v = f.run(kMy, "PREPARE s FROM 'DELETE FROM t'; EXECUTE s", false);
  CHECK(v.decisive.approvals == 1);
  REQUIRE(v.statements.size() == 2);
  CHECK(v.statements[0].verdict.approvals == 0);
  CHECK(v.statements[1].verdict.approvals == 1);
  // Not sent (held, then denied): the next judgment forgets what it staged.
  CHECK(f.run(kMy, "EXECUTE s").decisive.rule == "on_unparsed");
  // A PREPARE after a message's first statement may not run (MySQL stops at an error):
  // the old statement is kept with the new, and the stricter decides.
  CHECK(f.run(kMy, "PREPARE s FROM 'DELETE FROM t'").decisive.approvals == 0);
  CHECK_FALSE(f.run(kMy, "SELECT nope FROM nowhere; PREPARE s FROM 'SELECT 1'").decisive.block);
  CHECK(f.run(kMy, "EXECUTE s").decisive.approvals == 1);
  CHECK_FALSE(f.run(kMy, "PREPARE s FROM 'SELECT 1'").decisive.block);  // first: replaced
  CHECK_FALSE(f.run(kMy, "EXECUTE s").decisive.block);
  // A blocked message's DEALLOCATE never happened either.
  CHECK_FALSE(f.run(kMy, "PREPARE s FROM 'SELECT 1'").decisive.block);
  CHECK(f.run(kMy, "DEALLOCATE PREPARE s; DROP TABLE t").decisive.block);
  CHECK_FALSE(f.run(kMy, "EXECUTE s").decisive.block);
}

TEST_CASE("sql prepared: PostgreSQL PREPARE AS and EXECUTE", "[proxy][sqlprepare]") {
  Fixture f;
  CHECK_FALSE(f.run(kPg, "PREPARE del(int) AS DELETE FROM t WHERE id < $1").decisive.block);
  const MessageVerdict& v = f.run(kPg, "EXECUTE del(100)");
  CHECK(v.decisive.approvals == 1);
  CHECK(v.statements.front().verdict.runs == "DELETE FROM t WHERE id < $1");
  // EXPLAIN ANALYZE runs it too, and so does CREATE TABLE AS EXECUTE.
  CHECK(f.run(kPg, "EXPLAIN ANALYZE EXECUTE del(1)").decisive.approvals == 1);
  CHECK(f.run(kPg, "CREATE TABLE x AS EXECUTE del(1)").decisive.approvals == 1);
  CHECK_FALSE(f.run(kPg, "CREATE TABLE x AS SELECT 1").decisive.block);
  CHECK_FALSE(f.run(kPg, "EXPLAIN EXECUTE del(1)").decisive.block);
  // Not a statement PostgreSQL prepares: unparsed, as the server refuses it too.
  CHECK(f.run(kPg, "PREPARE d AS DROP TABLE t").decisive.rule == "on_unparsed");
  // PostgreSQL keeps the old statement when a PREPARE names a known one: either may run.
  CHECK_FALSE(f.run(kPg, "PREPARE sel AS SELECT 1").decisive.block);
  CHECK_FALSE(f.run(kPg, "PREPARE del AS SELECT 1").decisive.block);
  CHECK(f.run(kPg, "EXECUTE del(1)").decisive.approvals == 1);
  CHECK_FALSE(f.run(kPg, "DEALLOCATE del").decisive.block);
  CHECK(f.run(kPg, "EXECUTE del(1)").decisive.rule == "on_unparsed");
  CHECK_FALSE(f.run(kPg, "EXECUTE sel").decisive.block);
  CHECK_FALSE(f.run(kPg, "DISCARD ALL").decisive.block);
  CHECK(f.run(kPg, "EXECUTE sel").decisive.rule == "on_unparsed");
  f.source.set(load("rules: [{name: no-delete, match: {operation: DELETE}, action: block}]\n"));
  const MessageVerdict& b = f.run(kPg, "PREPARE d AS DELETE FROM t");
  CHECK(b.decisive.block);
  CHECK(b.decisive.rule == "no-delete");
  CHECK(f.run(kPg, "EXECUTE d").decisive.rule == "on_unparsed");  // never prepared
}

TEST_CASE("sql prepared: the store's semantics and bounds", "[proxy][sqlprepare]") {
  SqlPrepared p;
  SqlPrepared::Entry e;
  CHECK_FALSE(p.find("s", e));
  p.stage_prepare("s", "SELECT 1", true, /*replace=*/true);
  REQUIRE(p.find("s", e));
  CHECK(e.texts == std::vector<std::string>{"SELECT 1"});
  p.discard();
  CHECK_FALSE(p.find("s", e));
  p.stage_prepare("s", "SELECT 1", true, true);
  p.commit();
  CHECK(p.names() == 1);
  // MySQL replaces; PostgreSQL adds up (each at most kMaxTexts, then unknown).
  p.stage_prepare("s", "SELECT 2", true, true);
  REQUIRE(p.find("s", e));
  CHECK(e.texts == std::vector<std::string>{"SELECT 2"});
  p.discard();
  // Not sure the message reaches the server: the replaced statement is kept beside.
  p.stage_prepare("s", "SELECT 2", true, true);
  p.commit(/*sure=*/false);
  REQUIRE(p.find("s", e));
  CHECK(e.texts == std::vector<std::string>{"SELECT 1", "SELECT 2"});
  p.stage_prepare("s", "SELECT 1", true, true);
  p.commit();
  for (int i = 2; i <= 4; ++i) p.stage_prepare("s", "SELECT " + std::to_string(i), true, false);
  p.commit();
  REQUIRE(p.find("s", e));
  CHECK(e.texts.size() == 4);
  p.stage_prepare("s", "SELECT 5", true, false);
  p.commit();
  REQUIRE(p.find("s", e));
  CHECK(e.texts.empty());  // prepared, but which text is not known
  // Unknown text stays unknown when PostgreSQL may have kept it.
  p.stage_prepare("u", "", false, false);
  p.stage_prepare("u", "SELECT 1", true, false);
  p.commit();
  REQUIRE(p.find("u", e));
  CHECK(e.texts.empty());
  p.stage_forget_all();
  p.commit();
  CHECK(p.names() == 0);
  CHECK(p.bytes() == 0);
  // Bounded by names: beyond them a name is not remembered (its EXECUTE is unparsed).
  for (size_t i = 0; i < SqlPrepared::kMaxNames + 10; ++i) {
    p.stage_prepare("n" + std::to_string(i), "SELECT 1", true, true);
  }
  p.commit();
  CHECK(p.names() == SqlPrepared::kMaxNames);
  CHECK_FALSE(p.find("n" + std::to_string(SqlPrepared::kMaxNames + 5), e));
  // ... and by bytes: the name is kept, its text is not.
  p.stage_forget_all();
  p.commit();
  const std::string big(SqlPrepared::kMaxBytes / 2 + 1, 'x');
  p.stage_prepare("a", big, true, true);
  p.stage_prepare("b", big, true, true);
  p.commit();
  CHECK(p.bytes() <= SqlPrepared::kMaxBytes);
  REQUIRE(p.find("b", e));
  CHECK(e.texts.empty());
}
