#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Approvals that survive crashes, KILL QUERY, and every refusal recorded (issue 14, items 1
and 5): real clients held by the steered proxy (enforce_harness.EnforceAgent), decided with
the real `dbwarden approvals` CLI run as other OS users.

A private PostgreSQL and a private MariaDB, each with a table `rob_t` whose DELETEs need an
approval from the group dba: [daemon, nobody] (timeout 60 s) and a table `slow_t` whose
DELETEs time out after 2 s.

Checks:
- MariaDB timeout: the mariadb client gets ERROR 1142 (42000) naming the request and
  "expired", after the rule's 2 s, its next statement runs and the row stays;
- MariaDB KILL QUERY from another session (pymysql, as the mariadb client's Ctrl-C sends it):
  the held client gets ER_QUERY_INTERRUPTED (1317) naming the request, its session goes on,
  the row stays; the same KILL from a user the server does not allow (no privilege over the
  thread) withdraws nothing; the real mariadb client's own Ctrl-C (SIGINT while held) withdraws
  too; KILL CONNECTION withdraws and the held client's connection ends;
- refusals through the CLI: self-approval, an approver outside the rule's groups, an unknown
  id and an already decided one are refused (exit 1), each a `refused` approval record with
  channel cli, and counted in dbwarden_approvals_refused_total{channel="cli",reason=...};
- crash: the agent SIGKILLed with a psql client held; the client's connection ends (the proxy
  died with it: "server closed the connection", as psql says) and the DELETE never ran; the
  agent started again on the same pins records `denied` (reason agent_restart, channel
  system) for the request, its next request's id is past the dead agent's, the client
  reconnects and its statement runs again held, and `verify-audit` passes over both runs.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from enforce_harness import EnforceAgent  # noqa: E402
from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402
from pg_cluster import PgCluster, log, skip_or_fail, start_agent, verdict  # noqa: E402
from test_approvals import (approval_records, approvals_workdir, enforcing_agent,  # noqa: E402
                            feed, find_record, run_checks, start_psql, stop_reporting,
                            verify_trail)
from test_approvals_release import start_mariadb  # noqa: E402

POLICY = """\
approver_groups:
  dba: [daemon, nobody]
rules:
  - name: approve-rob
    match: {operation: [DELETE], collections: [rob_t]}
    action: require_approval
    approvers: [dba]
    timeout: 60s
  - name: approve-slow
    match: {operation: [DELETE], collections: [slow_t]}
    action: require_approval
    approvers: [dba]
    timeout: 2s
"""

WEAK_USER, WEAK_PASSWORD = "dbw_weak", "Dbw-w3ak-Pw-7"


def my_connect(server, user=APP_USER, password=APP_PASSWORD):
    import pymysql  # the Debian client library, under /usr/bin/python3
    return pymysql.connect(host="127.0.0.1", port=server.port, user=user, password=password,
                           database=TEST_DB, autocommit=True, connect_timeout=10)


def my_count(server, sql):
    conn = my_connect(server)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchone()[0]
    finally:
        conn.close()


class HeldMy:
    """A pymysql connection whose `sql` runs in a thread (held by the proxy)."""

    def __init__(self, server, sql):
        self.conn = my_connect(server)
        self.thread_id = self.conn.thread_id()
        self.outcome = {}
        self.thread = threading.Thread(target=self._run, args=(sql,))
        self.thread.start()

    def _run(self, sql):
        import pymysql
        try:
            self.conn.cursor().execute(sql)
            self.outcome["ran"] = True
        except pymysql.Error as e:
            self.outcome["error"] = (e.args[0] if e.args else None, str(e))

    def join(self):
        self.thread.join(timeout=30)
        return self.outcome


def check_my_timeout(server, cli, failures):
    started = time.time()
    p = start_mariadb(server, "DELETE FROM slow_t;\nSELECT 'after-timeout';\n")
    rid = cli.wait_pending("approve-slow")
    out, err = p.communicate(timeout=30)
    waited = time.time() - started
    want = f"approval request {rid} expired"
    if "ERROR 1142 (42000)" not in err or want not in err:
        failures.append(f"my timeout: expected ERROR 1142 (42000) and {want!r}: {err!r}")
    if "after-timeout" not in out:
        failures.append(f"my timeout: the session did not go on: {out!r}")
    if waited < 1.5:
        failures.append(f"my timeout: answered after {waited:.1f}s, before the rule's 2s")
    if my_count(server, "SELECT count(*) FROM slow_t") != 1:
        failures.append("my timeout: the expired DELETE ran")
    return rid


def check_my_kill_query(server, cli, failures):
    held = HeldMy(server, "DELETE FROM rob_t WHERE id = 1")
    rid = cli.wait_pending("approve-rob")
    # A user the server does not let kill another user's statement: refused by the server,
    # and nothing is withdrawn.
    import pymysql
    weak = my_connect(server, WEAK_USER, WEAK_PASSWORD)
    try:
        weak.cursor().execute(f"KILL QUERY {held.thread_id}")
        failures.append("my kill: the server let a user without privilege kill another's query")
    except pymysql.Error as e:
        log(f"unprivileged KILL refused by the server: {e}")
    weak.close()
    time.sleep(0.5)
    if not any(int(r[0]) == rid for r in cli.pending()):
        failures.append(f"my kill: request {rid} withdrawn by a KILL the server refused")
    # The owner's KILL QUERY from another session, as the mariadb client's Ctrl-C sends it.
    killer = my_connect(server)
    killer.cursor().execute(f"KILL QUERY {held.thread_id}")
    killer.close()
    outcome = held.join()
    code, text = outcome.get("error", (None, ""))
    if code != 1317 or f"approval request {rid} withdrawn: canceled by KILL QUERY" not in text:
        failures.append(f"my kill: expected 1317 naming request {rid}: {outcome}")
    if not cli.wait_gone(rid):
        failures.append(f"my kill: request {rid} still pending after KILL QUERY")
    try:
        cur = held.conn.cursor()
        cur.execute("SELECT 'after-kill'")
        if cur.fetchone()[0] != "after-kill":
            failures.append("my kill: the session did not go on")
    except pymysql.Error as e:
        failures.append(f"my kill: the session did not go on: {e}")
    held.conn.close()
    if my_count(server, "SELECT count(*) FROM rob_t WHERE id = 1") != 1:
        failures.append("my kill: the killed DELETE ran")
    return rid


def check_my_ctrl_c(server, cli, failures):
    """The real mariadb client's Ctrl-C: SIGINT while its statement is held makes it send
    KILL QUERY on a new connection."""
    p = start_mariadb(server, "DELETE FROM rob_t WHERE id = 2;\nSELECT 'after-ctrl-c';\n")
    rid = cli.wait_pending("approve-rob")
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    if not cli.wait_gone(rid):
        failures.append(f"my ctrl-c: request {rid} still pending after the client's Ctrl-C")
    log(f"mariadb after Ctrl-C: rc {p.returncode} out {out!r} err {err!r}")
    if f"approval request {rid} withdrawn: canceled by KILL QUERY" not in err:
        failures.append(f"my ctrl-c: the client was not told of the withdrawal: {err!r}")
    if my_count(server, "SELECT count(*) FROM rob_t WHERE id = 2") != 1:
        failures.append("my ctrl-c: the canceled DELETE ran")
    return rid


def check_my_kill_connection(server, cli, failures):
    held = HeldMy(server, "DELETE FROM rob_t WHERE id = 3")
    rid = cli.wait_pending("approve-rob")
    killer = my_connect(server)
    killer.cursor().execute(f"KILL CONNECTION {held.thread_id}")
    killer.close()
    outcome = held.join()
    if "error" not in outcome:
        failures.append(f"my kill connection: the held client got no error: {outcome}")
    if not cli.wait_gone(rid):
        failures.append(f"my kill connection: request {rid} still pending")
    held.conn.close()
    if my_count(server, "SELECT count(*) FROM rob_t WHERE id = 3") != 1:
        failures.append("my kill connection: the killed DELETE ran")
    return rid


def check_refusals(cluster, cli, agent, failures):
    p = start_psql(cluster, user="daemon")
    feed(p, "DELETE FROM rob_t WHERE id = 1 RETURNING 'deleted-' || id;\n")
    rid = cli.wait_pending("approve-rob")
    tries = (("own_request", ["approve", str(rid)], "daemon", "nobody decides their own request"),
             ("not_approver", ["approve", str(rid)], None, "is not an approver"),
             ("unknown_request", ["deny", "999999", "--reason", "x"], "nobody", "no request"))
    for reason, args, user, says in tries:
        r = cli.run(args, user=user)
        if r.returncode != 1 or says not in r.stderr:
            failures.append(f"refusals: {reason}: expected exit 1 and {says!r}: "
                            f"{r.returncode} {r.stderr!r}")
    r = cli.run(["deny", str(rid), "--reason", "not today"], user="nobody")
    if r.returncode != 0:
        failures.append(f"refusals: nobody's deny refused: {r.stderr.strip()}")
    p.communicate(timeout=30)
    r = cli.run(["approve", str(rid)], user="nobody")
    if r.returncode != 1 or f"request {rid} is already denied" not in r.stderr:
        failures.append(f"refusals: a second decision was not refused as already decided: "
                        f"{r.returncode} {r.stderr!r}")
    # Published once a second.
    wanted = [f'dbwarden_approvals_refused_total{{channel="cli",reason="{reason}"}}'
              for reason in ("own_request", "not_approver", "unknown_request", "already_decided")]
    missing = wanted
    deadline = time.time() + 10
    while missing and time.time() < deadline:
        lines = agent.scrape().splitlines()
        missing = [w for w in wanted
                   if not any(x.startswith(w) and float(x.split()[-1]) >= 1 for x in lines)]
        time.sleep(0.5)
    for line in missing:
        failures.append(f"refusals: {line} not counted")
    return rid


def psql_held(cluster, sql):
    p = start_psql(cluster)
    feed(p, sql)
    return p


def restart_after_crash(args, cluster, server, cli, agent, workdir, policy, audit, failures):
    """SIGKILLs `agent` with a psql client held, starts another on the same pins; returns the
    new agent and (held id, next id)."""
    p = psql_held(cluster, "DELETE FROM rob_t WHERE id = 5 RETURNING 'deleted-' || id;\n")
    rid = cli.wait_pending("approve-rob")
    agent.wait_audit_settled(timeout=30, quiet=1.0)
    agent.kill()
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        failures.append("crash: the held client still waited after the agent died")
    log(f"held psql after the crash: out {out!r} err {err!r}")
    if "deleted-5" in out:
        failures.append("crash: the held DELETE ran")
    second = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy,
                          mysql_port=server.port, extra_args=["--approvals-group", "daemon"],
                          pin_dir=agent.pin_dir, steer_dir=agent.steer_dir, keep_pins=True)
    rc = start_agent(second)
    if rc is not None:
        failures.append("crash: the agent did not start again")
        return None, (rid, None)
    if "left pending by an agent that did not stop cleanly" not in second.stderr:
        failures.append("crash: the restarted agent did not say it denied the left request")
    if cli.pending():
        failures.append(f"crash: requests pending after the restart: {cli.pending()}")
    # The client reconnects, and its statement is held again, under a new id.
    p = psql_held(cluster, "DELETE FROM rob_t WHERE id = 5 RETURNING 'deleted-' || id;\n")
    nid = cli.wait_pending("approve-rob")
    if nid <= rid:
        failures.append(f"crash: the new request's id {nid} is not past the dead agent's {rid}")
    r = cli.run(["approve", str(nid), "--reason", "after the crash"], user="daemon")
    if r.returncode != 0:
        failures.append(f"crash: approve after the restart refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    if "deleted-5" not in out:
        failures.append(f"crash: the reconnected client's approved DELETE did not run: "
                        f"{out!r} {err!r}")
    return second, (rid, nid)


def check_trail(args, audit, ids, failures):
    events = approval_records(audit)

    def find(kind, rid, **fields):
        return find_record(events, kind, rid, failures, **fields)

    find("expired", ids["my_timeout"])
    find("withdrawn", ids["my_kill"])
    # Whichever the proxy sees first: the server closing the killed thread's session, or the
    # KILL's OK.
    e = find("withdrawn", ids["my_kill_connection"])
    why = (e or {}).get("dbwarden.approval.reason", "")
    if e is not None and why != "the server ended the connection" and \
       not why.startswith("canceled by KILL CONNECTION from connection "):
        failures.append(f"trail: KILL CONNECTION's withdrawal gives no reason: {e}")
    if "my_ctrl_c" in ids:
        find("withdrawn", ids["my_ctrl_c"])
    rid = ids["refusals"]
    refused = [e for e in events if e.get("dbwarden.approval.event") == "refused" and
               e.get("dbwarden.approval.channel") == "cli"]
    for says in ("nobody decides their own request", "is not an approver", "no request 999999",
                 f"request {rid} is already denied"):
        if not any(says in e.get("dbwarden.approval.reason", "") for e in refused):
            failures.append(f"trail: no cli refused record saying {says!r}")
    held, new = ids["crash"]
    e = find("denied", held, **{"dbwarden.approval.reason": "agent_restart",
                                "dbwarden.approval.channel": "system",
                                "dbwarden.approval.by": "dbwarden"})
    if e is not None and e.get("db.user") != "postgres":
        failures.append(f"trail: the restart's denied record lacks the requester: {e}")
    if new is not None:
        find("approved", new, **{"dbwarden.approval.by": "daemon"})
        find("executed", new)
    verify_trail(args.agent, audit, failures)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers, other OS users)")
    workdir, _, policy = approvals_workdir("dbw-approvals-rob-", POLICY)
    failures = []
    with PgCluster() as cluster, MariaDB() as server:
        cluster.setup_sql("CREATE TABLE rob_t (id int); "
                          "INSERT INTO rob_t SELECT generate_series(1, 9)")
        server.setup_sql(f"CREATE TABLE {TEST_DB}.rob_t (id int); "
                         f"INSERT INTO {TEST_DB}.rob_t VALUES (1), (2), (3), (4); "
                         f"CREATE TABLE {TEST_DB}.slow_t (id int); "
                         f"INSERT INTO {TEST_DB}.slow_t VALUES (1); "
                         f"CREATE USER '{WEAK_USER}'@'%' IDENTIFIED BY '{WEAK_PASSWORD}'; "
                         f"GRANT SELECT ON {TEST_DB}.* TO '{WEAK_USER}'@'%';")
        agent, cli = enforcing_agent(args.agent, workdir, policy, cluster, server,
                                     keep_pins=True)
        if agent is None:
            return cli
        audit = agent.audit_file
        ids = {}
        second = None
        try:
            ids.update(run_checks(
                [(name, lambda check=check, target=target: check(target, cli, failures))
                 for name, check, target in (("my_timeout", check_my_timeout, server),
                                             ("my_kill", check_my_kill_query, server),
                                             ("my_ctrl_c", check_my_ctrl_c, server),
                                             ("my_kill_connection", check_my_kill_connection,
                                              server))],
                failures))
            ids.update(run_checks([("refusals",
                                    lambda: check_refusals(cluster, cli, agent, failures))],
                                  failures))
            agent.wait_audit_settled(timeout=30, quiet=1.5)
            second, ids["crash"] = restart_after_crash(args, cluster, server, cli, agent,
                                                       workdir, policy, audit, failures)
            if second is not None:
                second.wait_audit_settled(timeout=30, quiet=1.5)
        except Exception as e:  # noqa: BLE001 (reported, never swallowed)
            failures.append(f"{type(e).__name__}: {e}")
        finally:
            # One set of pins for both runs: torn down once, by whichever ran last.
            if second is not None:
                stop_reporting(second, failures)
                second.teardown()
            else:
                if agent.alive():
                    stop_reporting(agent, failures)
                agent.teardown()
        if all(k in ids for k in ("my_timeout", "my_kill", "my_kill_connection", "refusals",
                                  "crash")):
            check_trail(args, audit, ids, failures)
        log(f"approval ids: {ids}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
