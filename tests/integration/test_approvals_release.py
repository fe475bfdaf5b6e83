#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Approvals, the release path (issue 14): real psql and mariadb clients held by the steered
proxy (enforce_harness.EnforceAgent) and decided with the real `dbwarden approvals` CLI.

A private PostgreSQL and a private MariaDB, each with a `people` table whose `ssn` column a
mask rule covers; reading `people` needs an approval (group dba: [daemon, nobody]); DELETEs
of `jit_t` too.

Checks:
- PostgreSQL and MariaDB: a held SELECT of the masked column, approved, returns masked values
  (no planted SSN reaches the client; MariaDB's unmasked `name` column comes through);
- MariaDB deny: the client gets ERROR 1142 (42000) naming the request id and the reason, and
  its next statement runs; a mariadb client killed while held withdraws its request;
- PostgreSQL cancel (psycopg2's cancel(), a CancelRequest on its own connection) withdraws a
  held statement: SQLSTATE 57014 naming the request, and the connection goes on;
- JIT: approved with --for 2s, the same statement shape from the same identity runs without a
  request; after the window it is held again; from another identity (another OS user) it is
  held;
- 100 requests pending at once from 100 psycopg2 connections while another connection's
  SELECT 1 goes on (its latency before and during is printed), then all approved: every
  held client gets its result;
- the trail: an `executed` approval record per released statement with its real row count
  and status code, a `grant_used` record for the granted one, the statements' own records
  with approved:ID and dbwarden.masked_values; `verify-audit` passes.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mariadb_server import TEST_DB, MariaDB  # noqa: E402
from pg_cluster import PgCluster, log, read_audit_text, skip_or_fail, verdict  # noqa: E402
from test_approvals import (approval_records, approvals_workdir, enforcing_agent,  # noqa: E402
                            feed, run_checks, start_psql, stop_reporting, verify_trail)

PLANTED = ["123-45-6789", "987-65-4329"]

POLICY = f"""\
approver_groups:
  dba: [daemon, nobody]
rules:
  - name: approve-people
    match: {{operation: [SELECT], collections: [people]}}
    action: require_approval
    approvers: [dba]
    timeout: 60s
  - name: approve-jit
    match: {{operation: [DELETE], collections: [jit_t]}}
    action: require_approval
    approvers: [dba]
    timeout: 60s
  - name: approve-many
    match: {{operation: [SELECT], collections: [hold_t]}}
    action: require_approval
    approvers: [dba]
    timeout: 120s
  - name: mask-ssn
    action: mask
    columns: ["public.people.ssn", "{TEST_DB}.people.ssn"]
    style: full
"""


def planted_in(text):
    return [p for p in PLANTED if p in text]


def check_pg_masked(cluster, cli, failures):
    p = start_psql(cluster)
    # Ordered by name: ORDER BY the masked column itself is refused before any request
    # (`predicates: block`, the default), as on MariaDB below.
    feed(p, "SELECT ssn FROM people ORDER BY name;\nSELECT 'after-release' FROM jit_t LIMIT 1;\n")
    rid = cli.wait_pending("approve-people")
    r = cli.run(["approve", str(rid), "--reason", "audit"], user="daemon")
    if r.returncode != 0:
        failures.append(f"pg masked: approve refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    if planted_in(out + err):
        failures.append(f"pg masked: planted values reached the client: {out!r}")
    if "****" not in out or "after-release" not in out:
        failures.append(f"pg masked: no masked result or the session stopped: {out!r} {err!r}")
    return rid


def start_mariadb(server, script, user=None):
    """The mariadb CLI over TCP (steered), `script` on stdin, going on after errors."""
    cmd = server.client_args(tcp=True) + ["--batch", "--force"]
    if user:
        cmd = ["setpriv", f"--reuid={user}", "--regid=daemon", "--clear-groups"] + cmd
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    feed(p, script)
    return p


def check_my_masked(server, cli, failures):
    p = start_mariadb(server, "SELECT ssn, name FROM people ORDER BY name;\n"
                              "SELECT 'after-release';\n")
    rid = cli.wait_pending("approve-people")
    r = cli.run(["approve", str(rid)], user="nobody")
    if r.returncode != 0:
        failures.append(f"mariadb masked: approve refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    if planted_in(out + err):
        failures.append(f"mariadb masked: planted values reached the client: {out!r}")
    if "****\tAnn" not in out or "after-release" not in out:
        failures.append(f"mariadb masked: expected '****<tab>Ann' and the next statement: "
                        f"{out!r} {err!r}")
    return rid


def check_my_deny(server, cli, failures):
    p = start_mariadb(server, "SELECT ssn FROM people;\nSELECT 'after-deny';\n")
    rid = cli.wait_pending("approve-people")
    r = cli.run(["deny", str(rid), "--reason", "no reads today"], user="daemon")
    if r.returncode != 0:
        failures.append(f"mariadb deny: refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    want = f"approval request {rid} denied: no reads today"
    if "ERROR 1142 (42000)" not in err or want not in err:
        failures.append(f"mariadb deny: expected ERROR 1142 (42000) and {want!r}: {err!r}")
    if "after-deny" not in out:
        failures.append(f"mariadb deny: the session did not go on: {out!r}")
    return rid


def check_my_withdraw(server, cli, failures):
    p = start_mariadb(server, "SELECT ssn FROM people;\n")
    rid = cli.wait_pending("approve-people")
    p.kill()
    p.communicate()
    if not cli.wait_gone(rid):
        failures.append(f"mariadb withdraw: request {rid} still pending after its client left")
    return rid


def run_psql_quick(cluster, sql, user=None, timeout=8):
    """psql running `sql`; (finished, stdout, stderr), killed when still held after `timeout`."""
    p = start_psql(cluster, user=user)
    feed(p, sql)
    try:
        out, err = p.communicate(timeout=timeout)
        return True, out, err
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return False, out, err


def check_jit(cluster, cli, failures):
    p = start_psql(cluster)
    feed(p, "DELETE FROM jit_t WHERE id = 1 RETURNING 'deleted-' || id;\n")
    rid = cli.wait_pending("approve-jit")
    r = cli.run(["approve", str(rid), "--for", "2s"], user="daemon")
    granted_at = time.time()
    if r.returncode != 0:
        failures.append(f"jit: approve --for 2s refused: {r.stderr.strip()}")
    out, _ = p.communicate(timeout=30)
    if "deleted-1" not in out:
        failures.append(f"jit: the approved DELETE's result is missing: {out!r}")
    done, out, err = run_psql_quick(cluster, "DELETE FROM jit_t WHERE id = 2 "
                                             "RETURNING 'deleted-' || id;\n")
    within = time.time() - granted_at
    if not done or "deleted-2" not in out:
        failures.append(f"jit: within the window ({within:.1f}s) the same shape was held: "
                        f"{out!r} {err!r}")
    # Another identity (uid daemon) is not covered by the grant.
    other = start_psql(cluster, user="daemon")
    feed(other, "DELETE FROM jit_t WHERE id = 3;\n")
    try:
        other_id = cli.wait_pending("approve-jit", timeout=10)
    except RuntimeError:
        other_id = None
        failures.append("jit: another identity's DELETE was not held")
    other.kill()
    other.communicate()
    time.sleep(max(0.0, granted_at + 2.5 - time.time()))
    p = start_psql(cluster)
    feed(p, "DELETE FROM jit_t WHERE id = 4;\n")
    try:
        again = cli.wait_pending("approve-jit", timeout=10)
        if again == other_id:
            failures.append("jit: after the window no new request was made")
    except RuntimeError:
        failures.append("jit: after the 2s window the same shape was not held again")
    p.kill()
    p.communicate()
    return rid


def check_pg_cancel(cluster, cli, failures):
    """psycopg2's cancel() of a held statement withdraws its request: QueryCanceled (57014)
    naming the request, and the connection goes on."""
    import psycopg2  # the Debian client library, under /usr/bin/python3
    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                            dbname="postgres", connect_timeout=10)
    conn.autocommit = True
    outcome = {}

    def held():
        try:
            conn.cursor().execute("SELECT ssn FROM people")
            outcome["ran"] = True
        except psycopg2.Error as e:
            outcome["error"] = (e.pgcode, str(e))

    t = threading.Thread(target=held)
    t.start()
    rid = cli.wait_pending("approve-people")
    conn.cancel()
    t.join(timeout=30)
    code, text = outcome.get("error", (None, ""))
    if code != "57014" or f"approval request {rid} withdrawn: canceled by the client" not in text:
        failures.append(f"pg cancel: expected 57014 naming request {rid}: {outcome}")
    if not cli.wait_gone(rid):
        failures.append(f"pg cancel: request {rid} still pending after the client's cancel")
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM jit_t")
    if cur.fetchone()[0] < 1:
        failures.append("pg cancel: the session did not go on")
    conn.close()
    return rid


def latencies(conn, n=300):
    """Milliseconds of `n` SELECT 1 round trips on `conn`, sorted."""
    out = []
    cur = conn.cursor()
    for _ in range(n):
        t = time.perf_counter()
        cur.execute("SELECT 1")
        cur.fetchall()
        out.append((time.perf_counter() - t) * 1000.0)
    return sorted(out)


def pct(sorted_ms, q):
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def check_hundred(cluster, cli, failures, n=100):
    """n connections each hold a request at once while another connection's SELECT 1 goes
    on: its latency is measured before and while they wait (printed), then every request is
    approved and every client gets its result."""
    import psycopg2  # the Debian client library, under /usr/bin/python3
    other = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                             dbname="postgres", connect_timeout=10)
    other.autocommit = True
    latencies(other, 50)  # warm
    before = latencies(other)
    conns = [psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                              dbname="postgres", connect_timeout=10) for _ in range(n)]
    # psycopg2's default mode: each statement runs inside a transaction block, where the
    # PostgreSQL relay may not look the catalog up; the scope's reach set, learnt before the
    # BEGIN, vouches for the tables no mask rule can reach (README, "Masking in the
    # PostgreSQL proxy"), so their rows come back as they are.
    results = [None] * n

    def held(i):
        try:
            cur = conns[i].cursor()
            cur.execute("SELECT count(*) FROM hold_t WHERE id <> %s", (-i,))
            results[i] = cur.fetchone()[0]
        except Exception as e:  # noqa: BLE001 (reported below)
            results[i] = e

    threads = [threading.Thread(target=held, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    pending = []
    while time.time() < deadline:
        pending = [int(r[0]) for r in cli.pending() if r[2] == "approve-many"]
        if len(pending) >= n:
            break
        time.sleep(0.2)
    if len(pending) < n:
        failures.append(f"hundred: only {len(pending)} of {n} requests pending at once")
    during = latencies(other)
    print(f"hundred: other traffic SELECT 1 latency, {len(pending)} pending: p50 "
          f"{pct(during, 0.5):.3f} ms p99 {pct(during, 0.99):.3f} ms; before: p50 "
          f"{pct(before, 0.5):.3f} ms p99 {pct(before, 0.99):.3f} ms "
          f"(p50 ratio {pct(during, 0.5) / pct(before, 0.5):.2f})", flush=True)
    for rid in pending:
        r = cli.run(["approve", str(rid)], user="daemon")
        if r.returncode != 0:
            failures.append(f"hundred: approve {rid} refused: {r.stderr.strip()}")
            break
    for t in threads:
        t.join(timeout=60)
    bad = [r for r in results if r != 2]
    if bad:
        failures.append(f"hundred: {len(bad)} of {n} held clients did not get their result: "
                        f"{bad[:3]}")
    for c in conns + [other]:
        c.close()


def check_trail(args, audit, ids, failures):
    events = approval_records(audit)
    for name in ("pg", "my"):
        ex = [e for e in events if e.get("dbwarden.approval.event") == "executed" and
              e.get("dbwarden.approval.request_id") == ids[name]]
        if not ex or ex[0].get("db.response.returned_rows") != 2 or \
           ex[0].get("db.response.status_code") != "00000":
            failures.append(f"trail: no executed record with 2 rows and status 00000 for "
                            f"{name} request {ids[name]}: {ex}")
    used = [e for e in events if e.get("dbwarden.approval.event") == "grant_used" and
            e.get("dbwarden.approval.request_id") == ids["jit"]]
    if not used or used[0].get("db.response.returned_rows") != 1:
        failures.append(f"trail: no grant_used record of request {ids['jit']} with 1 row: {used}")
    records = verify_trail(args.agent, audit, failures)
    for name in ("pg", "my"):
        mine = [r for r in records if r.get("dbwarden.policy.action") == f"approved:{ids[name]}"]
        if not mine or not mine[0].get("dbwarden.masked_values"):
            failures.append(f"trail: {name}'s released SELECT record lacks approved:ID or "
                            f"masked_values: {mine}")
    leaked = planted_in(read_audit_text(audit))
    if leaked:
        failures.append(f"trail: planted values in the audit trail: {leaked}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers, other OS users)")
    workdir, _, policy = approvals_workdir("dbw-approvals-rel-", POLICY)
    failures = []
    with PgCluster(extra_conf={"max_connections": "150"}) as cluster, MariaDB() as server:
        cluster.setup_sql("CREATE TABLE people (name text, ssn text); "
                          f"INSERT INTO people VALUES ('Ann', '{PLANTED[0]}'), "
                          f"('Bob', '{PLANTED[1]}'); "
                          "CREATE TABLE jit_t (id int); "
                          "INSERT INTO jit_t SELECT generate_series(1, 9); "
                          "CREATE TABLE hold_t (id int); INSERT INTO hold_t VALUES (1), (2)")
        server.setup_sql(f"CREATE TABLE {TEST_DB}.people (name varchar(20), ssn varchar(20)); "
                         f"INSERT INTO {TEST_DB}.people VALUES ('Ann', '{PLANTED[0]}'), "
                         f"('Bob', '{PLANTED[1]}');")
        agent, cli = enforcing_agent(args.agent, workdir, policy, cluster, server)
        if agent is None:
            return cli
        audit = agent.audit_file
        ids = {}
        try:
            ids.update(run_checks(
                [(name, lambda check=check, target=target: check(target, cli, failures))
                 for name, check, target in (("pg", check_pg_masked, cluster),
                                             ("my", check_my_masked, server),
                                             ("my_deny", check_my_deny, server),
                                             ("my_withdraw", check_my_withdraw, server),
                                             ("pg_cancel", check_pg_cancel, cluster),
                                             ("jit", check_jit, cluster),
                                             ("hundred", check_hundred, cluster))],
                failures))
            agent.wait_audit_settled(timeout=30, quiet=1.5)
        finally:
            stop_reporting(agent, failures)
            agent.teardown()
        if len(ids) == 7:
            check_trail(args, audit, ids, failures)
        log(f"approval ids: {ids}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
