#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""SQL-level PREPARE / EXECUTE judged as the statement they run (issue 14, item 1), end to
end with the real mariadb client and psql through the steered proxy.

A private PostgreSQL and a private MariaDB, each with `prep_t` (id 1..9); a DELETE of it
needs an approval (group dba: [daemon, nobody]); DROP TABLE and an UPDATE of it are blocked.

Checks, for each client:
- `PREPARE s FROM 'DELETE FROM prep_t WHERE id < 4'` (psql: `PREPARE s AS DELETE ...`) goes
  through at once; `EXECUTE s` is held: the request shows the EXECUTE and the DELETE it runs,
  operation DELETE, table prep_t; no row goes before the decision; approved, the rows go and
  the client's session goes on.
- A second `EXECUTE s` (of another statement prepared under the same name), denied: the
  client gets the error naming the request, its rows stay, the session goes on.
- A PREPARE of a blocked statement is blocked by its rule (MariaDB: `PREPARE d FROM 'DROP
  TABLE prep_t'`; psql: `PREPARE d AS UPDATE prep_t ...`, UPDATE of prep_t being blocked).
- `PREPARE u FROM @q` (MariaDB: text the proxy cannot read) is blocked by on_unparsed.
- MariaDB's `EXECUTE IMMEDIATE 'DELETE ...'` is held as that DELETE; denied, its row stays.
- The trail: each EXECUTE's record has action `approved:<id>` / `denied:<id>` under the
  DELETE's rule, each blocked PREPARE's `block`; `verify-audit` passes.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mariadb_server import TEST_DB, MariaDB  # noqa: E402
from pg_cluster import PgCluster, log, skip_or_fail, verdict  # noqa: E402
from test_approvals import (approvals_workdir, enforcing_agent, feed, run_checks,  # noqa: E402
                            scalar, start_psql, stop_reporting, verify_trail)
from test_approvals_blast import my_scalar  # noqa: E402
from test_approvals_release import start_mariadb  # noqa: E402

RULE = "approve-prep-deletes"
POLICY = f"""\
approver_groups:
  dba: [daemon, nobody]
rules:
  - name: no-drop
    match: {{operation: [DROP TABLE, DROP]}}
    action: block
  - name: no-update
    match: {{operation: UPDATE, collections: [prep_t]}}
    action: block
  - name: {RULE}
    match: {{operation: DELETE, collections: [prep_t]}}
    action: require_approval
    approvers: [dba]
    timeout: 60s
"""


def held(cli, what, rid, runs, failures):
    """Checks the request `rid` shows the EXECUTE and the DELETE it runs."""
    show = cli.run(["show", str(rid)]).stdout
    for want in ("EXECUTE s", runs, "DELETE", "prep_t", RULE):
        if want not in show:
            failures.append(f"{what}: request {rid} does not show {want!r}: {show!r}")


def check_client(what, start, count, cli, prepare, prepare2, block, block_rule, unknown,
                 failures):
    """One client's run: `start(script)` starts it, `count(sql)` reads the server directly."""
    p = start(f"{prepare};\nSELECT 'prepared';\nEXECUTE s;\nSELECT 'after-approve';\n")
    rid = cli.wait_pending(RULE)
    if count("SELECT count(*) FROM prep_t") != "9":
        failures.append(f"{what}: rows went before the approval")
    held(cli, what, rid, "DELETE FROM prep_t WHERE id < 4", failures)
    r = cli.run(["approve", str(rid)], user="daemon")
    if r.returncode != 0:
        failures.append(f"{what}: approve refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    if "after-approve" not in out:
        failures.append(f"{what}: the session did not go on after the approval: {out!r} {err!r}")
    if count("SELECT count(*) FROM prep_t") != "6":
        failures.append(f"{what}: the approved EXECUTE did not delete its 3 rows")

    p = start(f"{prepare2};\nEXECUTE s;\nSELECT 'after-deny';\n")
    rid2 = cli.wait_pending(RULE)
    held(cli, what, rid2, "DELETE FROM prep_t WHERE id > 7", failures)
    cli.run(["deny", str(rid2), "--reason", "not today"], user="nobody")
    out, err = p.communicate(timeout=30)
    if f"approval request {rid2} denied: not today" not in err:
        failures.append(f"{what}: the client's error does not name the denied request: {err!r}")
    if "after-deny" not in out:
        failures.append(f"{what}: the session did not go on after the deny: {out!r}")
    if count("SELECT count(*) FROM prep_t") != "6":
        failures.append(f"{what}: the denied EXECUTE deleted rows")

    p = start(f"{block};\nSELECT 'after-block';\n")
    out, err = p.communicate(timeout=30)
    if block_rule not in err or "after-block" not in out:
        failures.append(f"{what}: {block!r} was not blocked by {block_rule}: {out!r} {err!r}")
    if count("SELECT count(*) FROM prep_t") != "6":
        failures.append(f"{what}: prep_t is gone")
    if unknown:
        p = start(f"{unknown};\nSELECT 'after-unknown';\n")
        out, err = p.communicate(timeout=30)
        if "cannot be judged" not in err or "after-unknown" not in out:
            failures.append(f"{what}: the PREPARE from a variable was not blocked: "
                            f"{out!r} {err!r}")
    return {f"{what}_approved": rid, f"{what}_denied": rid2}


def check_immediate(server, cli, failures):
    """MariaDB's EXECUTE IMMEDIATE '<DELETE>' is held as that DELETE; denied, rows stay."""
    p = start_mariadb(server, "EXECUTE IMMEDIATE 'DELETE FROM prep_t WHERE id = 9';\n"
                              "SELECT 'after-immediate';\n")
    rid = cli.wait_pending(RULE)
    show = cli.run(["show", str(rid)]).stdout
    if "runs: DELETE FROM prep_t WHERE id = 9" not in show:
        failures.append(f"execute immediate: request {rid} does not show the DELETE: {show!r}")
    cli.run(["deny", str(rid), "--reason", "no"], user="nobody")
    out, err = p.communicate(timeout=30)
    if f"approval request {rid} denied: no" not in err or "after-immediate" not in out:
        failures.append(f"execute immediate: not denied, or the session stopped: {out!r} {err!r}")
    if my_scalar(server, "SELECT count(*) FROM prep_t WHERE id = 9") != "1":
        failures.append("execute immediate: the denied DELETE ran")
    return {"mariadb_immediate": rid}


def check_records(records, ids, failures):
    """Each EXECUTE's own record says what became of it: approved or denied, by request id,
    under the DELETE's rule; the blocked PREPAREs' records say blocked."""
    def actions(prefix):
        return [r.get("dbwarden.policy.action") for r in records
                if r.get("db.query.text", "").startswith(prefix) and
                r.get("dbwarden.policy.rule") in (RULE, "no-drop", "no-update")]
    for client in ("mariadb", "psql"):
        for outcome in ("approved", "denied"):
            rid = ids.get(f"{client}_{outcome}")
            if rid is not None and f"{outcome}:{rid}" not in actions("EXECUTE s"):
                failures.append(f"trail: no EXECUTE s record with action {outcome}:{rid}")
    if actions("PREPARE d").count("block") != 2:
        failures.append(f"trail: the blocked PREPAREs' records: {actions('PREPARE d')}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers, other OS users)")
    workdir, _, policy = approvals_workdir("dbw-approvals-sqlprepare-", POLICY)
    failures = []
    with PgCluster() as cluster, MariaDB() as server:
        cluster.setup_sql("CREATE TABLE prep_t (id int); "
                          "INSERT INTO prep_t SELECT generate_series(1, 9)")
        server.setup_sql(f"CREATE TABLE {TEST_DB}.prep_t (id int) ENGINE=InnoDB; "
                         f"INSERT INTO {TEST_DB}.prep_t SELECT seq FROM {TEST_DB}.seq_1_to_9;")
        agent, cli = enforcing_agent(args.agent, workdir, policy, cluster, server)
        if agent is None:
            return cli
        audit = agent.audit_file
        ids = {}

        def psql(script):
            p = start_psql(cluster)
            feed(p, script)
            return p

        try:
            for got in run_checks(
                    [("mariadb", lambda: check_client(
                        "mariadb", lambda s: start_mariadb(server, s),
                        lambda sql: my_scalar(server, sql), cli,
                        "PREPARE s FROM 'DELETE FROM prep_t WHERE id < 4'",
                        "PREPARE s FROM 'DELETE FROM prep_t WHERE id > 7'",
                        "PREPARE d FROM 'DROP TABLE prep_t'", "no-drop",
                        "SET @q = 'DELETE FROM prep_t';\nPREPARE u FROM @q", failures)),
                     ("psql", lambda: check_client(
                         "psql", psql, lambda sql: scalar(cluster, sql), cli,
                         "PREPARE s AS DELETE FROM prep_t WHERE id < 4",
                         "PREPARE s AS DELETE FROM prep_t WHERE id > 7",
                         "PREPARE d AS UPDATE prep_t SET id = 0", "no-update", None,
                         failures)),
                     ("mariadb immediate", lambda: check_immediate(server, cli, failures))],
                    failures).values():
                ids.update(got or {})
            agent.wait_audit_settled(timeout=30, quiet=1.0)
        finally:
            stop_reporting(agent, failures)
            agent.teardown()
        records = verify_trail(args.agent, audit, failures)
        check_records(records, ids, failures)
        log(f"approval ids: {ids}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
