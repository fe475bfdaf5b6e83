#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The blast radius of a held statement (issue 14, item 2), end to end: real psql and mariadb
clients held by the steered proxy, the request's estimate read with the real `dbwarden
approvals` CLI and checked against the tables' real counts.

A private PostgreSQL and a private MariaDB, each with `blast_t` of 1000 rows (analyzed);
UPDATE and DELETE of it need an approval (group dba: [daemon, nobody]).

Checks:
- PostgreSQL and MariaDB: a held DELETE of 100 rows and a held UPDATE of all 1000: `approvals
  show` says "blast radius: about N rows (explain on the client's session)" with N near the
  real count (within a factor of 2: the server's own estimate), `approvals list` has it in
  its column; nothing ran before the approval (the count is unchanged); approved, the
  statement's real row count (psql's "UPDATE 1000", MariaDB's ROW_COUNT() right after it,
  which the EXPLAIN did not disturb) is the real count;
- the same inside a transaction (BEGIN first): the agent's own connection runs the EXPLAIN
  as its configured role (approvals-blast-radius-postgres-role: a role reached by `peer`
  authentication through a pg_ident map from root; approvals-blast-radius-mysql-user: the
  MariaDB account `bin` IDENTIFIED VIA unix_socket, the OS user the agent connects as),
  "about N rows (explain through the agent's role ..., which sees committed data only)" with
  N near the real count; the servers' own logs show it ran as that role, in a READ ONLY
  transaction (PostgreSQL; MariaDB refuses EXPLAIN DELETE in one) and with its time limit,
  on a connection of its own;
- with --client (libpq): a prepared DELETE inside a transaction, $1 a binary int4: the
  role's EXPLAIN is bound with the client's type, format and value (the estimate is near
  the real count);
- a table the role has no grant on, inside a transaction: "estimate unavailable: EXPLAIN
  through the agent's role failed: 42501 permission denied ..." (MariaDB: 42000 ... command
  denied), and the request still goes out;
- a DELETE of a table another session holds locked: the EXPLAIN's own time limit (2 s:
  PostgreSQL's statement_timeout, MariaDB's lock_wait_timeout) answers, "estimate
  unavailable: timed out (EXPLAIN's limit is 2 s)", and the request still goes out;
- a DELETE the server refuses (no such column): "estimate unavailable: EXPLAIN failed: 42703
  ..." with the server's message, and the request still goes out;
- the trail: each requested record carries dbwarden.approval.blast_radius.rows or
  .unavailable; no record of any statement holds the EXPLAIN (it ran on the client's session
  or the agent's own connection, and is never recorded as a client's statement), and no
  record is of the agent's role (its connection is neither steered through the proxy nor
  captured by the observer); MariaDB's general log shows the EXPLAIN
  ran on the client's own connection, with its time limit; `verify-audit` passes.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from enforce_harness import EnforceAgent  # noqa: E402
from mariadb_server import TEST_DB, MariaDB  # noqa: E402
from pg_cluster import (PgCluster, log, read_audit, read_audit_text,  # noqa: E402
                        skip_or_fail, start_agent, verdict)
from test_approvals import (Cli, approvals_workdir, feed, run_checks, scalar,  # noqa: E402
                            start_psql, stop_reporting)
from test_approvals_release import start_mariadb  # noqa: E402

POLICY = """\
approver_groups:
  dba: [daemon, nobody]
rules:
  - name: approve-blast
    match: {operation: [DELETE, UPDATE], collections: [blast_t, blast_nogrant]}
    action: require_approval
    approvers: [dba]
    timeout: 60s
"""

VIA = "explain on the client's session"
# The agent's own EXPLAIN connection: a PostgreSQL role reached by peer authentication
# (pg_ident maps the agent's OS user, root, to it) and a MariaDB account the agent logs in
# to as the OS user of the same name (unix_socket).
PG_ROLE = "dbwarden_explain"
MY_USER = "bin"
PG_VIA = f"explain through the agent's role {PG_ROLE}, which sees committed data only"
MY_VIA = f"explain through the agent's role {MY_USER}, which sees committed data only"
PG_DENIED = ("EXPLAIN through the agent's role failed: 42501 permission denied for table "
             "blast_nogrant")
MY_DENIED = "EXPLAIN through the agent's role failed: 42000 DELETE command denied to user"
TIMED_OUT = "timed out (EXPLAIN's limit is 2 s)"


def my_scalar(server, sql):
    return server.cli(sql, check=True, user="root", password=None,
                      database=TEST_DB).stdout.splitlines()[-1].strip()


def table_locks(server):
    """In_use of blast_t: the table locks held or asked for on it."""
    last = server.cli(f"SHOW OPEN TABLES FROM {TEST_DB} LIKE 'blast_t'", check=True,
                      user="root", password=None, database=None).stdout.splitlines()[-1]
    parts = last.split("\t")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else 0


def wait_locked(probe, timeout=20):
    deadline = time.time() + timeout
    while not probe():
        if time.time() > deadline:
            raise RuntimeError("the locking session did not get its lock")
        time.sleep(0.1)


def blast_of(cli, rid, failures, what):
    """The `approvals show` blast radius line of request `rid` and the list's column."""
    show = cli.run(["show", str(rid)]).stdout
    m = re.search(r"^blast radius: (.*)$", show, re.M)
    if not m:
        failures.append(f"{what}: `approvals show {rid}` has no blast radius: {show!r}")
        return "", ""
    column = next((r[5] for r in cli.pending() if int(r[0]) == rid and len(r) > 6), "")
    return m.group(1), column


def estimated(line, column, real, what, failures, via=VIA):
    """The estimate in `line` is near `real` (a factor of 2), said the same in the list."""
    m = re.fullmatch(r"about (\d+) rows? \((.*)\)", line)
    if not m or m.group(2) != via:
        failures.append(f"{what}: blast radius {line!r}, expected 'about N rows ({via})'")
        return None
    n = int(m.group(1))
    if not real / 2 <= n <= real * 2:
        failures.append(f"{what}: estimated {n} rows, the real count is {real}")
    if column != f"{n} rows":
        failures.append(f"{what}: `approvals list` column {column!r}, expected '{n} rows'")
    return n


def unavailable(p, cli, want, what, failures, prefix=False):
    """Client `p` (fed a held statement) waits on a request whose blast radius is
    "estimate unavailable: `want`" (or starts so, with `prefix`); the request is denied and
    the client ends. Its id."""
    rid = cli.wait_pending("approve-blast")
    line, _ = blast_of(cli, rid, failures, what)
    expected = f"estimate unavailable: {want}"
    if line != expected and not (prefix and line.startswith(expected)):
        failures.append(f"{what}: blast radius {line!r}")
    cli.run(["deny", str(rid), "--reason", "no"], user="daemon")
    p.communicate(timeout=30)
    return rid


def role_estimated(p, cli, real, via, what, failures):
    """Client `p` (fed a held statement inside a transaction) waits on a request whose
    estimate, near `real`, came through the agent's role (`via`); denied, the client ends.
    Its id."""
    rid = cli.wait_pending("approve-blast")
    line, column = blast_of(cli, rid, failures, what)
    n = estimated(line, column, real, what, failures, via=via)
    cli.run(["deny", str(rid), "--reason", "no"], user="daemon")
    p.communicate(timeout=30)
    log(f"{what}: {real} rows estimated {n} by the agent's role")
    return rid


def make_blast_tables(cluster, server):
    """`blast_t` of 1000 rows (id 1..1000, v), analyzed, on both servers."""
    cluster.setup_sql("CREATE TABLE blast_t (id int PRIMARY KEY, v text); "
                      "INSERT INTO blast_t SELECT g, 'v' || g FROM generate_series(1, 1000) g; "
                      "ANALYZE blast_t")
    server.setup_sql(f"CREATE TABLE {TEST_DB}.blast_t (id int PRIMARY KEY, v varchar(20)) "
                     "ENGINE=InnoDB; "
                     f"INSERT INTO {TEST_DB}.blast_t SELECT seq, CONCAT('v', seq) "
                     f"FROM {TEST_DB}.seq_1_to_1000; "
                     f"ANALYZE TABLE {TEST_DB}.blast_t;")


def check_pg(cluster, cli, failures, client=None):
    ids = {}
    if client:
        # A prepared DELETE inside a transaction (libpq: Parse and Bind together, $1 = 100 as
        # a binary int4): the role's EXPLAIN is bound with the same types, formats and value.
        p = subprocess.Popen([client, "held-delete"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=cluster.client_env(tcp=True))
        rid = ids["pg_prepared_txn"] = cli.wait_pending("approve-blast")
        line, column = blast_of(cli, rid, failures, "pg prepared in a transaction")
        n = estimated(line, column, 100, "pg prepared in a transaction", failures, via=PG_VIA)
        cli.run(["deny", str(rid), "--reason", "no"], user="daemon")
        out, err = p.communicate(timeout=30)
        if "delete: PGRES_FATAL_ERROR 42501" not in out:
            failures.append(f"pg prepared in a transaction: the deny did not reach the "
                            f"client: {out!r} {err!r}")
        log(f"pg: prepared DELETE of 100 rows (binary $1) in a transaction estimated {n} by "
            f"the agent's role")
    # A DELETE of 100 rows: estimated, then denied (nothing ran, before or after).
    p = start_psql(cluster)
    feed(p, "DELETE FROM blast_t WHERE id <= 100;\nSELECT 'after-deny';\n")
    rid = ids["pg_delete"] = cli.wait_pending("approve-blast")
    line, column = blast_of(cli, rid, failures, "pg delete")
    real = int(scalar(cluster, "SELECT count(*) FROM blast_t WHERE id <= 100"))
    deleted = estimated(line, column, real, "pg delete", failures)
    if scalar(cluster, "SELECT count(*) FROM blast_t") != "1000":
        failures.append("pg delete: rows went before any decision")
    cli.run(["deny", str(rid), "--reason", "too wide"], user="daemon")
    out, err = p.communicate(timeout=30)
    if "after-deny" not in out or "denied: too wide" not in err:
        failures.append(f"pg delete: deny did not reach the client: {out!r} {err!r}")
    # An UPDATE of every row: estimated, approved, and the real count is the client's.
    p = start_psql(cluster)
    feed(p, "\\echo start\nUPDATE blast_t SET v = 'changed';\n")
    rid = ids["pg_update"] = cli.wait_pending("approve-blast")
    line, column = blast_of(cli, rid, failures, "pg update")
    n = estimated(line, column, 1000, "pg update", failures)
    cli.run(["approve", str(rid)], user="nobody")
    out, err = p.communicate(timeout=30)
    if "UPDATE 1000" not in out + err:
        # psql -At prints no command tags; the count in the table says what ran.
        if scalar(cluster, "SELECT count(*) FROM blast_t WHERE v = 'changed'") != "1000":
            failures.append(f"pg update: the approved UPDATE did not change 1000 rows: "
                            f"{out!r} {err!r}")
    log(f"pg: DELETE of {real} rows estimated {deleted}; UPDATE of 1000 estimated {n}")
    # Inside a transaction: the agent's own role EXPLAINs it, the estimate says so.
    p = start_psql(cluster)
    feed(p, "BEGIN;\nDELETE FROM blast_t WHERE id <= 100;\n")
    ids["pg_txn"] = role_estimated(p, cli, 100, PG_VIA, "pg transaction", failures)
    # ... and a table the role may not touch: the server's refusal, the request goes out.
    p = start_psql(cluster)
    feed(p, "BEGIN;\nDELETE FROM blast_nogrant WHERE id = 1;\n")
    ids["pg_role_denied"] = unavailable(p, cli, PG_DENIED, "pg role without grant", failures)
    # The server's log: the role's EXPLAIN, in a READ ONLY transaction of its own.
    entries = cluster.sync_log()
    mine = [e for e in entries if e.user_name == PG_ROLE and e.statement]
    if not any("EXPLAIN (FORMAT JSON) DELETE FROM blast_t WHERE id <= 100" in e.statement
               for e in mine):
        failures.append(f"pg: the role's EXPLAIN is not in the server's log: "
                        f"{[e.statement for e in mine]}")
    if not any(e.statement.startswith("BEGIN READ ONLY") for e in mine):
        failures.append("pg: the role's EXPLAIN did not run in a READ ONLY transaction")
    if any("ANALYZE" in e.statement for e in mine):
        failures.append("pg: the role ran an EXPLAIN ANALYZE")
    # A lock the EXPLAIN must wait for: its time limit answers, and the request goes out.
    locker = start_psql(cluster)
    feed(locker, "BEGIN;\nLOCK TABLE blast_t IN ACCESS EXCLUSIVE MODE;\n")
    wait_locked(lambda: scalar(cluster, "SELECT count(*) FROM pg_locks WHERE mode = "
                                        "'AccessExclusiveLock' AND granted AND "
                                        "relation = 'blast_t'::regclass") == "1")
    p = start_psql(cluster)
    feed(p, "DELETE FROM blast_t WHERE id = 7;\n")
    ids["pg_timeout"] = unavailable(p, cli, TIMED_OUT, "pg lock wait", failures)
    feed(locker, "ROLLBACK;\n")
    locker.communicate(timeout=30)
    # A statement the server refuses: the EXPLAIN fails, the request still goes out.
    p = start_psql(cluster)
    feed(p, "DELETE FROM blast_t WHERE nosuch = 1;\n")
    ids["pg_refused_explain"] = unavailable(
        p, cli, 'EXPLAIN failed: 42703 column "nosuch" does not exist', "pg refused explain",
        failures)
    return ids


def check_mariadb(server, cli, failures):
    ids = {}
    p = start_mariadb(server, "DELETE FROM blast_t WHERE id <= 100;\nSELECT 'after-deny';\n")
    rid = ids["my_delete"] = cli.wait_pending("approve-blast")
    line, column = blast_of(cli, rid, failures, "mariadb delete")
    real = int(my_scalar(server, "SELECT count(*) FROM blast_t WHERE id <= 100"))
    deleted = estimated(line, column, real, "mariadb delete", failures)
    if my_scalar(server, "SELECT count(*) FROM blast_t") != "1000":
        failures.append("mariadb delete: rows went before any decision")
    cli.run(["deny", str(rid), "--reason", "too wide"], user="daemon")
    out, err = p.communicate(timeout=30)
    if "after-deny" not in out:
        failures.append(f"mariadb delete: the session did not go on: {out!r} {err!r}")
    # Approved: ROW_COUNT() right after it is the UPDATE's own (the EXPLAIN before it left
    # nothing the client sees).
    p = start_mariadb(server, "UPDATE blast_t SET v = 'changed';\n"
                              "SELECT CONCAT('rows=', ROW_COUNT());\n")
    rid = ids["my_update"] = cli.wait_pending("approve-blast")
    line, column = blast_of(cli, rid, failures, "mariadb update")
    n = estimated(line, column, 1000, "mariadb update", failures)
    cli.run(["approve", str(rid)], user="nobody")
    out, err = p.communicate(timeout=30)
    if "rows=1000" not in out:
        failures.append(f"mariadb update: ROW_COUNT() after the approved UPDATE is not 1000: "
                        f"{out!r} {err!r}")
    log(f"mariadb: DELETE of {real} rows estimated {deleted}; UPDATE of 1000 estimated {n}")
    # A table another session holds locked: lock_wait_timeout (2 s) answers the EXPLAIN.
    locker = start_mariadb(server, "LOCK TABLES blast_t WRITE;\n")
    wait_locked(lambda: table_locks(server) > 0)
    p = start_mariadb(server, "DELETE FROM blast_t WHERE id = 7;\n")
    ids["my_timeout"] = unavailable(p, cli, TIMED_OUT, "mariadb lock wait", failures)
    locker.communicate(timeout=30)
    # Inside a transaction: the agent's own account EXPLAINs it.
    p = start_mariadb(server, "BEGIN;\nDELETE FROM blast_t WHERE id <= 100;\n")
    ids["my_txn"] = role_estimated(p, cli, 100, MY_VIA, "mariadb transaction", failures)
    p = start_mariadb(server, "BEGIN;\nDELETE FROM blast_nogrant WHERE id = 1;\n")
    ids["my_role_denied"] = unavailable(p, cli, MY_DENIED, "mariadb role without grant",
                                        failures, prefix=True)
    # The EXPLAIN ran on the client's own connection (the general log's thread id), with
    # its time limit, and the client's DELETE was never sent.
    server.sync_log()
    entries = server.read_log()
    explains = [e for e in entries if "EXPLAIN FORMAT=JSON DELETE FROM blast_t WHERE id <= 100"
                in e.argument]
    if not explains or "max_statement_time=2" not in explains[0].argument:
        failures.append(f"mariadb: no time-limited EXPLAIN in the general log: {explains}")
    else:
        mine = [e for e in entries if e.thread_id == explains[0].thread_id]
        if not any(e.argument.startswith("SELECT 'after-deny'") for e in mine):
            failures.append("mariadb: the EXPLAIN did not run on the client's connection")
    if any(e.argument.startswith("DELETE FROM blast_t WHERE id <= 100") for e in entries):
        failures.append("mariadb: the denied DELETE reached the server")
    # The role's EXPLAIN: on a connection of its own, logged in as the account over the
    # socket, with its time limit.
    role_threads = {e.thread_id for e in entries if e.command == "Connect" and e.user == MY_USER}
    role = [e for e in entries if e.thread_id in role_threads]
    if not role_threads:
        failures.append("mariadb: no connection of the agent's role in the general log")
    elif not any("max_statement_time=2" in e.argument and
                 "EXPLAIN FORMAT=JSON DELETE FROM blast_t WHERE id <= 100" in e.argument
                 for e in role):
        failures.append(f"mariadb: the role's time-limited EXPLAIN is not in the log: {role}")
    return ids


def check_trail(args, audit, ids, failures):
    requested = {}
    for line in read_audit_text(audit).splitlines():
        if '"dbwarden.record_type":"approval"' not in line:
            continue
        e = json.loads(line)
        if e.get("dbwarden.approval.event") == "requested":
            requested[e["dbwarden.approval.request_id"]] = e
    for name in ("pg_delete", "pg_update", "my_delete", "my_update"):
        e = requested.get(ids.get(name), {})
        if not isinstance(e.get("dbwarden.approval.blast_radius.rows"), int) or \
                e.get("dbwarden.approval.blast_radius.via") != VIA:
            failures.append(f"trail: the requested record of {name} lacks its estimate: {e}")
    for name, via in (("pg_txn", PG_VIA), ("my_txn", MY_VIA)):
        e = requested.get(ids.get(name), {})
        if not isinstance(e.get("dbwarden.approval.blast_radius.rows"), int) or \
                e.get("dbwarden.approval.blast_radius.via") != via:
            failures.append(f"trail: the requested record of {name} lacks the role's "
                            f"estimate: {e}")
    for name, want in (("pg_role_denied", PG_DENIED), ("my_role_denied", MY_DENIED)):
        e = requested.get(ids.get(name), {})
        if not e.get("dbwarden.approval.blast_radius.unavailable", "").startswith(want):
            failures.append(f"trail: the requested record of {name} lacks its reason: {e}")
    records, bad = read_audit(audit)
    failures += bad
    leaked = [r.get("db.query.text") for r in records
              if "EXPLAIN" in r.get("db.query.text", "") or
              "set_config" in r.get("db.query.text", "")]
    if leaked:
        failures.append(f"trail: the proxy's EXPLAIN recorded as a client's statement: {leaked}")
    roles = [r for r in records if r.get("db.user") in (PG_ROLE, MY_USER)]
    if roles:
        failures.append(f"trail: the agent's own connection was recorded: {roles[:3]}")
    if not any(r.get("db.query.text", "").startswith("UPDATE blast_t") for r in records):
        failures.append("trail: the approved UPDATE has no record")
    v = subprocess.run([args.agent, "verify-audit", audit], text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if v.returncode != 0:
        failures.append(f"trail: verify-audit failed: {v.stdout.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--client", help="pg_features_client (libpq): the prepared DELETE check")
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers, other OS users)")
    workdir, proxy_dir, policy = approvals_workdir("dbw-approvals-blast-", POLICY)
    failures = []
    # The role logs in only over the socket, by peer authentication mapped from root (the
    # agent's OS user): no password anywhere.
    with PgCluster(hba_rules=[("local", "peer map=dbwarden", PG_ROLE)]) as cluster, \
            MariaDB() as server:
        with open(os.path.join(cluster.data_dir, "pg_ident.conf"), "a") as f:
            f.write(f"dbwarden root {PG_ROLE}\n")
        make_blast_tables(cluster, server)
        cluster.setup_sql("CREATE TABLE blast_nogrant (id int PRIMARY KEY); "
                          f"CREATE ROLE {PG_ROLE} LOGIN; "
                          # EXPLAIN checks the statement's own privileges (README).
                          f"GRANT SELECT, UPDATE, DELETE ON blast_t TO {PG_ROLE}; "
                          "SELECT pg_reload_conf()")
        server.setup_sql(f"CREATE TABLE {TEST_DB}.blast_nogrant (id int PRIMARY KEY); "
                         f"CREATE USER {MY_USER}@localhost IDENTIFIED VIA unix_socket; "
                         f"GRANT SELECT, UPDATE, DELETE ON {TEST_DB}.blast_t TO "
                         f"{MY_USER}@localhost;")
        os.chmod(server.base, 0o755)
        audit = os.path.join(workdir, "audit.jsonl")
        agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy,
                             mysql_port=server.port,
                             extra_args=["--approvals-group", "daemon",
                                         "--approvals-blast-radius-postgres-role", PG_ROLE,
                                         "--approvals-blast-radius-mysql-user", MY_USER])
        rc = start_agent(agent)
        if rc is not None:
            return rc
        cli = Cli(args.agent, os.path.join(proxy_dir, "approvals.sock"))
        ids = {}
        try:
            for got in run_checks([("pg", lambda: check_pg(cluster, cli, failures,
                                                           args.client)),
                                   ("mariadb", lambda: check_mariadb(server, cli, failures))],
                                  failures).values():
                ids.update(got or {})
            agent.wait_audit_settled(timeout=30, quiet=1.5)
        finally:
            stop_reporting(agent, failures)
            agent.teardown()
        check_trail(args, audit, ids, failures)
        log(f"approval ids: {ids}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
