#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The approvals' last gaps (issue 14), end to end: the blast radius of a MySQL prepared
statement's execution, a PostgreSQL Parse whose Bind comes in a later write, and a journal
left by a crash handled by an agent restarted in observe mode.

A private PostgreSQL and a private MariaDB, each with `blast_t` of 1000 rows (analyzed);
UPDATE and DELETE of it need an approval (group dba: [daemon, nobody]).

Checks:
- MariaDB, binary protocol (my_stmt_client: libmariadb's prepared statements): a held
  `UPDATE blast_t SET v = ? WHERE id <= ?` executed twice with one binding (the library sends
  the parameters' types with the first execute only): each request says "blast radius: about
  N rows (explain on the client's session)" with N near the real 100; nothing ran before the
  first approval; approved, the client gets 100 rows changed; the second is denied and the
  client gets the error. The general log shows, on the client's own connection, the proxy's
  Prepare of the time-limited EXPLAIN (with the `?` markers: no value in its text), its
  Execute with the client's values, and Close stmt; the client's UPDATE executed once.
- PostgreSQL, libpq pipeline mode (pg_features_client split): the Parse of `DELETE FROM
  blast_t WHERE id <= $1` written alone, its Bind half a second later: the request carries
  the estimate from the Bind's value (not "estimate unavailable"); approved, "DELETE 100".
- The enforcing agent SIGKILLed with a psql held, then started again in observe mode (no
  proxy, no policy): it says it denied the left request, the trail holds that request's
  `denied` record (reason agent_restart, by dbwarden, channel system, with its requester),
  and `verify-audit` passes.
- The trail: requested records with the estimates; no EXPLAIN recorded as a client's
  statement.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402
from pg_cluster import (Agent, PgCluster, log, skip_or_fail, start_agent,  # noqa: E402
                        stop_agent, verdict)
from test_approvals import (approval_records, approvals_workdir, enforcing_agent,  # noqa: E402
                            feed, find_record, run_checks, scalar, start_psql,
                            stop_reporting, verify_trail)
from test_approvals_blast import (VIA, blast_of, estimated, make_blast_tables,  # noqa: E402
                                  my_scalar)

RULE = "approve-blast"
POLICY = f"""\
approver_groups:
  dba: [daemon, nobody]
rules:
  - name: {RULE}
    match: {{operation: [DELETE, UPDATE], collections: [blast_t]}}
    action: require_approval
    approvers: [dba]
    timeout: 60s
"""


def wait_new_pending(cli, after, timeout=20):
    """The id of a pending request of RULE other than `after`, once there is one."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ids = [int(r[0]) for r in cli.pending() if r[2] == RULE and int(r[0]) != after]
        if ids:
            return ids[-1]
        time.sleep(0.1)
    raise RuntimeError(f"no second pending request of {RULE} after {timeout}s")


def check_my_execute(server, cli, stmt_client, failures):
    sql = "UPDATE blast_t SET v = ? WHERE id <= ?"
    p = subprocess.Popen([stmt_client, "--port", str(server.port), "--user", APP_USER,
                          "--password", APP_PASSWORD, "--database", TEST_DB, "--exec", sql,
                          "--param", "changed", "--param", "100", "--repeat", "2"],
                         text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ids = {}
    try:
        rid = ids["my_execute"] = cli.wait_pending(RULE)
        line, column = blast_of(cli, rid, failures, "mariadb execute")
        n1 = estimated(line, column, 100, "mariadb execute", failures)
        if my_scalar(server, "SELECT count(*) FROM blast_t WHERE v = 'changed'") != "0":
            failures.append("mariadb execute: rows changed before any decision")
        cli.run(["approve", str(rid)], user="nobody")
        # The second execute: the same binding, its types left out by the library.
        rid2 = ids["my_execute_again"] = wait_new_pending(cli, rid)
        line, column = blast_of(cli, rid2, failures, "mariadb execute again")
        n2 = estimated(line, column, 100, "mariadb execute again", failures)
        cli.run(["deny", str(rid2), "--reason", "once is enough"], user="daemon")
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    outcomes = [x for x in out.splitlines() if x.startswith("OUTCOME")]
    if outcomes != ["OUTCOME 00000 100", "OUTCOME 42000 -"]:
        failures.append(f"mariadb execute: the client saw {outcomes} ({err.strip()!r}), "
                        "expected 100 rows changed, then the deny's error")
    log(f"mariadb execute: estimated {n1} and {n2} rows of 100")
    server.sync_log()
    entries = server.read_log()
    explain = "EXPLAIN FORMAT=JSON UPDATE blast_t SET v = ? WHERE id <= ?"
    prepares = [e for e in entries if e.command == "Prepare" and explain in e.argument]
    if len(prepares) != 2 or any("max_statement_time=2" not in e.argument for e in prepares):
        failures.append(f"mariadb execute: not two time-limited EXPLAIN prepares in the "
                        f"general log: {prepares}")
        return ids
    thread = prepares[0].thread_id
    mine = [e for e in entries if e.thread_id == thread]
    executed = [e for e in mine if e.command == "Execute" and
                "EXPLAIN FORMAT=JSON UPDATE blast_t SET v = 'changed' WHERE id <= '100'"
                in e.argument]
    updates = [e for e in mine if e.command == "Execute" and
               e.argument.startswith("UPDATE blast_t SET v = 'changed' WHERE id <= '100'")]
    closes = [e for e in mine if e.command == "Close stmt"]
    if len(executed) != 2:
        failures.append(f"mariadb execute: the EXPLAIN's executes with the client's values on "
                        f"its connection: {executed}")
    if len(updates) != 1:
        failures.append(f"mariadb execute: the client's UPDATE executed {len(updates)} times "
                        "(approved once, denied once)")
    if len(closes) < 2:
        failures.append(f"mariadb execute: the EXPLAIN's statements were not closed: {closes}")
    return ids


def check_pg_split(cluster, cli, pg_client, failures):
    p = subprocess.Popen([pg_client, "split", "DELETE FROM blast_t WHERE id <= $1", "100"],
                         text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=cluster.client_env(tcp=True))
    try:
        rid = cli.wait_pending(RULE)
        line, column = blast_of(cli, rid, failures, "pg split")
        n = estimated(line, column, 100, "pg split", failures)
        if scalar(cluster, "SELECT count(*) FROM blast_t") != "1000":
            failures.append("pg split: rows went before any decision")
        cli.run(["approve", str(rid)], user="daemon")
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    if p.returncode != 0 or "tag: DELETE 100" not in out:
        failures.append(f"pg split: the approved DELETE did not complete: {out!r} {err!r}")
    log(f"pg split: estimated {n} rows of 100")
    return {"pg_split": rid}


def crash_then_observe(args, cluster, server, cli, agent, audit, failures):
    """SIGKILLs the enforcing `agent` with a psql held, then runs an observe-mode agent on the
    same trail and pins; the held request's id."""
    p = start_psql(cluster)
    feed(p, "DELETE FROM blast_t WHERE id = 1000;\n")
    rid = cli.wait_pending(RULE)
    agent.wait_audit_settled(timeout=30, quiet=1.0)
    agent.kill()
    try:
        p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        failures.append("crash: the held client still waited after the agent died")
    observer = Agent(args.agent, audit, [cluster.port], pin_dir=agent.pin_dir,
                     steer_dir=agent.steer_dir, keep_pins=True,
                     extra_args=["--mysql-port", str(server.port)])
    if start_agent(observer) is not None:
        failures.append("crash: the agent did not start again in observe mode")
        return rid
    try:
        if "left pending by an agent that did not stop cleanly" not in observer.stderr:
            failures.append("crash: the observe-mode agent did not say it denied the left "
                            "request")
        if scalar(cluster, "SELECT count(*) FROM blast_t WHERE id = 1000") != "1":
            failures.append("crash: the held DELETE ran")
        observer.wait_audit_settled(timeout=30, quiet=1.0)
    finally:
        if stop_agent(observer) is not None:
            failures.append("crash: the observe-mode agent did not stop cleanly")
    return rid


def check_trail(args, audit, ids, failures):
    events = approval_records(audit)
    for name in ("my_execute", "my_execute_again", "pg_split"):
        e = find_record(events, "requested", ids.get(name), failures,
                        **{"dbwarden.approval.blast_radius.via": VIA})
        if e is not None and not isinstance(e.get("dbwarden.approval.blast_radius.rows"), int):
            failures.append(f"trail: the requested record of {name} lacks its estimate: {e}")
    if "crash" in ids:
        e = find_record(events, "denied", ids["crash"], failures,
                        **{"dbwarden.approval.reason": "agent_restart",
                           "dbwarden.approval.channel": "system",
                           "dbwarden.approval.by": "dbwarden"})
        if e is not None and e.get("db.user") != "postgres":
            failures.append(f"trail: the restart's denied record lacks the requester: {e}")
    leaked = [r.get("db.query.text") for r in verify_trail(args.agent, audit, failures)
              if "EXPLAIN" in r.get("db.query.text", "")]
    if leaked:
        failures.append(f"trail: the proxy's EXPLAIN recorded as a client's statement: {leaked}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--stmt-client", required=True)
    ap.add_argument("--pg-client", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers, other OS users)")
    workdir, _, policy = approvals_workdir("dbw-approvals-gaps-", POLICY)
    failures = []
    with PgCluster() as cluster, MariaDB() as server:
        make_blast_tables(cluster, server)
        agent, cli = enforcing_agent(args.agent, workdir, policy, cluster, server,
                                     keep_pins=True)
        if agent is None:
            return cli
        audit = agent.audit_file
        ids = {}
        try:
            for got in run_checks(
                    [("mariadb execute",
                      lambda: check_my_execute(server, cli, args.stmt_client, failures)),
                     ("pg split", lambda: check_pg_split(cluster, cli, args.pg_client, failures))],
                    failures).values():
                ids.update(got or {})
            ids.update(run_checks(
                [("crash", lambda: crash_then_observe(args, cluster, server, cli, agent, audit,
                                                      failures))], failures))
        finally:
            if agent.alive():
                stop_reporting(agent, failures)
            elif failures:
                print("agent stderr:\n" + agent.stderr)
            agent.teardown()
        check_trail(args, audit, ids, failures)
        log(f"approval ids: {ids}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
