#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Acceptance test of issue 2: every statement PostgreSQL logs appears once in the audit log.

Starts a private PostgreSQL 15 with log_statement=all and a csvlog, starts `dbwarden run`,
drives psql (unix socket and TCP) and pgbench (simple and extended protocol, unix and TCP),
then compares the server's own log with the agent's audit file statement by statement:
text, user, database, SQLSTATE, row counts (where the harness knows them), transport and
client address. The server log is the reference; the harness's own setup sessions
(application_name dbw-setup) are left out.

Exit codes: 0 pass, 1 fail, 77 skip (not root, or the agent says it lacks privilege).
DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip into a failure.
"""

import argparse
import collections
import difflib
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import (SETUP_APP, PgCluster, in_workdir, log, read_audit,  # noqa: E402
                        skip_or_fail, start_agent, stop_agent)
from audit_match import (RecordChecker, Report, align, audited_total_problems,  # noqa: E402
                         norm_part, password_leaks, verify_audit_problems)

APP_ROLE = "dbw_app"          # non-superuser owning the test database
PW_ROLE = "dbw_pw"            # authenticates with a password
PW_SECRET = "Dbw-s3cret-Pa55word-7Q"
TEST_DB = "dbw_test"
BENCH_DB = "dbw_bench"
PGBENCH_TX = 50
PGBENCH_CLIENTS = 2
LONG_STATEMENT_BYTES = 200 * 1024

# The statements of pgbench's built-in TPC-B-like script (without their ';'), with the
# row count each reports; None means the command tag carries no count.
PGBENCH_TX_STATEMENTS = {
    "BEGIN": None,
    "UPDATE pgbench_accounts SET abalance = abalance + {p} WHERE aid = {p}": 1,
    "SELECT abalance FROM pgbench_accounts WHERE aid = {p}": 1,
    "UPDATE pgbench_tellers SET tbalance = tbalance + {p} WHERE tid = {p}": 1,
    "UPDATE pgbench_branches SET bbalance = bbalance + {p} WHERE bid = {p}": 1,
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES ({p}, {p}, {p}, {p}, CURRENT_TIMESTAMP)": 1,
    "END": None,
}
_PGBENCH_PARAM = re.compile(r"\$\d+|-?\d+")


def pgbench_shape(text):
    """The TPC-B template a pgbench statement came from, or None."""
    shape = _PGBENCH_PARAM.sub("{p}", norm_part(text))
    return shape if shape in PGBENCH_TX_STATEMENTS else None


# --- the psql workload -------------------------------------------------------------------------

class Step:
    """One statement the harness sends, and what the server must answer."""

    def __init__(self, sql, rows=None, status="00000"):
        self.sql = sql
        self.rows = rows          # expected db.response.returned_rows; None: no row count
        self.status = status      # expected SQLSTATE


def psql_script(table):
    """Statements for one psql -f run; each is sent on its own by psql."""
    long_literal = "x" * LONG_STATEMENT_BYTES
    t = table
    return [
        Step(f"CREATE TABLE {t} (id int PRIMARY KEY, name text, qty int);"),
        Step(f"INSERT INTO {t} SELECT g, 'item ' || g, g % 7 FROM generate_series(1, 25) g;",
             rows=25),
        Step(f"INSERT INTO {t} VALUES (100, 'single', 1);", rows=1),
        Step(f"UPDATE {t} SET qty = qty + 1 WHERE id <= 10;", rows=10),
        Step(f"DELETE FROM {t} WHERE id > 20 AND id <= 25;", rows=5),
        Step(f"SELECT id, name FROM {t} WHERE id <= 7 ORDER BY id;", rows=7),
        Step(f"SELECT count(*) FROM {t};", rows=1),
        Step(f"SELECT * FROM {t} WHERE id < 0;", rows=0),
        Step("SELECT 1/0;", status="22012"),
        Step(f"SELECT * FROM no_such_table_{t};", status="42P01"),
        # Rejected by the parser: the server logs it only as the query of its ERROR line.
        Step("SELEC 1;", status="42601"),
        Step(f"INSERT INTO {t} VALUES (1, 'duplicate', 0);", status="23505"),
        Step("BEGIN;"),
        Step(f"INSERT INTO {t} VALUES (200, 'in tx', 2);", rows=1),
        Step("SELECT 1/0;", status="22012"),
        Step("SELECT 1;", status="25P02"),
        Step("ROLLBACK;"),
        Step("SELECT 'it''s' AS \"quoted \"\"col\"\"\", 'héllo wörld ✓ 日本語 🐘' AS uni, "
             "E'back\\\\slash\\ttab' AS esc, $$dollar ' quoted$$ AS dq;", rows=1),
        Step(f"SELECT id,\n       qty\n  FROM {t}\n WHERE id IN (1, 2, 3);", rows=3),
        Step(f"SELECT length('{long_literal}') AS long_len;", rows=1),
        Step(f"DROP TABLE {t};"),
    ]


class MultiStep:
    """A multi-statement simple query (psql -c) and the records it must produce."""

    def __init__(self, sql, parts):
        self.sql = sql
        self.parts = parts  # list of Step; statements after a failing one produce none


def multi_steps(table):
    t = table
    return [
        MultiStep("SELECT 1; SELECT 2", [Step("SELECT 1", rows=1), Step("SELECT 2", rows=1)]),
        MultiStep(f"CREATE TABLE {t} (a int); INSERT INTO {t} VALUES (1), (2), (3);\n"
                  f"UPDATE {t} SET a = a + 1 WHERE a >= 2; DELETE FROM {t}; DROP TABLE {t}",
                  [Step(f"CREATE TABLE {t} (a int)"),
                   Step(f"INSERT INTO {t} VALUES (1), (2), (3)", rows=3),
                   Step(f"UPDATE {t} SET a = a + 1 WHERE a >= 2", rows=2),
                   Step(f"DELETE FROM {t}", rows=3),
                   Step(f"DROP TABLE {t}")]),
        MultiStep("SELECT 1; SELECT 1/0; SELECT 3",
                  [Step("SELECT 1", rows=1), Step("SELECT 1/0", status="22012")]),
    ]


# --- expectations from the server log ------------------------------------------------------------

class Expected:
    """One audit record the agent must have written."""

    def __init__(self, entry, text, status, rows=None, rows_known=False, loose_text=False):
        self.pid = entry.pid
        self.user = entry.user_name
        self.database = entry.database_name
        self.app = entry.application_name
        self.unix = entry.is_unix
        self.client_address = entry.client_address
        self.client_port = entry.client_port
        self.text = text
        self.status = status
        self.rows = rows
        self.rows_known = rows_known
        self.extended = entry.extended
        self.loose_text = loose_text or not self.extended


def logged_statements(entries):
    """Per backend pid, the statements the server logged, each as (entry, text, sqlstate).

    A statement is a "statement:"/"execute ...:" LOG line; an ERROR whose query field is the
    current statement gives it its SQLSTATE. An ERROR whose query was never logged as a
    statement (a syntax error is rejected before log_statement runs) is a statement of its own.
    Sessions of the harness itself (application_name dbw-setup) are skipped.
    """
    per_pid = collections.OrderedDict()
    for e in entries:
        if e.backend_type != "client backend" or e.application_name == SETUP_APP:
            continue
        stmts = per_pid.setdefault(e.pid, [])
        if e.statement is not None:
            stmts.append([e, e.statement, "00000"])
        elif e.error_severity == "ERROR" and e.query:
            if stmts and stmts[-1][1] == e.query and stmts[-1][2] == "00000":
                stmts[-1][2] = e.sql_state_code
            else:
                stmts.append([e, e.query, e.sql_state_code])
    return {pid: [tuple(s) for s in stmts] for pid, stmts in per_pid.items() if stmts}


class HarnessError(RuntimeError):
    pass


def build_expected(entries, scripts, multis):
    """Turns the server log into the list of audit records the agent must have written.

    scripts: app name -> [Step] sent by psql -f in that session; multis: app name -> MultiStep.
    Where the harness sent the statement itself, the log must agree with what it sent (else
    the harness is broken, not the agent) and the expected row counts come from the Step.
    """
    expected = []
    for pid, stmts in logged_statements(entries).items():
        app = stmts[0][0].application_name
        if app in scripts:
            steps = scripts[app]
            got = [(text, status) for _, text, status in stmts]
            want = [(s.sql, s.status) for s in steps]
            if got != want:
                raise HarnessError(f"session {app} logged an unexpected sequence:\n" +
                                   "\n".join(difflib.unified_diff(
                                       [repr(w)[:200] for w in want],
                                       [repr(g)[:200] for g in got], lineterm="")))
            for (entry, text, status), step in zip(stmts, steps):
                expected.append(Expected(entry, text, status, step.rows, rows_known=True))
        elif app in multis:
            m = multis[app]
            if len(stmts) != 1 or stmts[0][1] != m.sql:
                raise HarnessError(f"session {app} logged {[s[1] for s in stmts]!r}, "
                                   f"sent {m.sql!r}")
            want_status = next((p.status for p in m.parts if p.status != "00000"), "00000")
            if stmts[0][2] != want_status:
                raise HarnessError(f"session {app}: server says {stmts[0][2]}, "
                                   f"harness expected {want_status}")
            for p in m.parts:
                expected.append(Expected(stmts[0][0], p.sql, p.status, p.rows, rows_known=True,
                                         loose_text=True))
        else:
            for entry, text, status in stmts:
                shape = pgbench_shape(text)
                known = shape is not None and status == "00000"
                expected.append(Expected(entry, text, status,
                                         PGBENCH_TX_STATEMENTS[shape] if known else None,
                                         rows_known=known))
    return expected


# --- comparing ---------------------------------------------------------------------------------


def check_record(exp, rec, server_port):
    """Differences between an expected statement and its audit record, as strings."""
    c = RecordChecker(rec)
    c.text(exp.text, exp.loose_text)
    c.want("db.system.name", "postgresql")
    c.want("db.user", exp.user)
    c.want("db.namespace", exp.database)
    c.want("db.response.status_code", exp.status)
    c.want("server.port", server_port)
    if "db.client.application_name" in rec:
        c.want("db.client.application_name", exp.app)
    if exp.rows_known:
        c.rows(exp.rows)
    c.transport(exp.unix, exp.client_address, exp.client_port)
    c.envelope()
    return c.problems


def compare(expected, records, server_port, ignore_pids=()):
    """Matches expected statements to audit records per backend pid, in order."""
    report = Report(where=lambda e: f"pid {e.pid} {e.app} {e.user}@{e.database}",
                    where_record=lambda r: f"pid {r.get('process.pid')}")
    exp_by_pid = collections.OrderedDict()
    for e in expected:
        exp_by_pid.setdefault(e.pid, []).append(e)
    rec_by_pid = collections.OrderedDict()
    for r in records:
        rec_by_pid.setdefault(r.get("process.pid"), []).append(r)

    conn_ids = {}
    for pid in list(exp_by_pid) + [p for p in rec_by_pid if p not in exp_by_pid]:
        if pid in ignore_pids and pid not in exp_by_pid:
            continue
        recs = rec_by_pid.get(pid, [])
        # Pair by normalised text; check_record then applies the exact rule per statement.
        pairs, blocks = align(exp_by_pid.get(pid, []), recs)
        left_e = [e for _, es, _ in blocks for e in es]
        left_r = [r for _, _, rs in blocks for r in rs]
        # Repetitive sessions (pgbench) make the alignment ragged: pair equal texts among the
        # leftovers first, in order, then report what is still unpaired.
        unpaired_e = []
        for e in left_e:
            key = norm_part(e.text)
            j = next((j for j, r in enumerate(left_r)
                      if norm_part(str(r.get("db.query.text", ""))) == key), None)
            if j is None:
                unpaired_e.append(e)
            else:
                pairs.append((e, left_r.pop(j)))
        if len(unpaired_e) == len(left_r):
            # Same number on both sides: most likely the texts differ; show how.
            pairs.extend(zip(unpaired_e, left_r))
        else:
            report.missing.extend(unpaired_e)
            report.extra.extend(left_r)
        report.check_pairs(pairs, lambda e, r: check_record(e, r, server_port))
        ids = {r.get("connection_id") for r in recs}
        if len(ids) > 1:
            report.other.append(f"pid {pid}: records carry {len(ids)} connection_ids {ids}")
        for cid in ids:
            if cid in conn_ids and conn_ids[cid] != pid:
                report.other.append(f"connection_id {cid!r} used by pids {conn_ids[cid]} "
                                    f"and {pid}")
            conn_ids[cid] = pid
    return report


def check_pgbench_counts(runs, expected, records, report):
    """pgbench's own transaction count x 7 must equal the logged and the audited statements."""
    rec_by_pid = collections.Counter()
    for r in records:
        if pgbench_shape(r.get("db.query.text", "") or ""):
            rec_by_pid[r.get("process.pid")] += 1
    for app, processed in runs.items():
        pids = {e.pid for e in expected if e.app == app}
        logged = sum(1 for e in expected if e.app == app and pgbench_shape(e.text))
        audited = sum(rec_by_pid[p] for p in pids)
        want = processed * len(PGBENCH_TX_STATEMENTS)
        line = (f"{app}: pgbench processed {processed} tx -> {want} statements; "
                f"server logged {logged}, audit has {audited}")
        log(line)
        if not (want == logged == audited):
            report.other.append(line)


def check_client_processes(records, report):
    """Every workload record names its local client program, whatever its connection order.

    pgbench opens several connections from one process within milliseconds: each must be
    resolved, not only the first (the inode-owner cache once missed a known process's new
    sockets until its next full rescan)."""
    missing = collections.Counter()
    for r in records:
        app = r.get("db.client.application_name") or ""
        if not app.startswith("dbw-"):
            continue
        program = "pgbench" if app.startswith("dbw-pgbench-") else "psql"
        if r.get("client.process.command") != program or not r.get("client.process.pid"):
            missing[(app, r.get("client.process.command"))] += 1
    for (app, got), n in sorted(missing.items()):
        report.other.append(f"{app}: {n} records without client.process.command "
                            f"{'pgbench' if 'pgbench' in app else 'psql'} (got {got!r})")


# --- the run -----------------------------------------------------------------------------------

def setup(cluster):
    cluster.setup_sql(f"CREATE ROLE {APP_ROLE} LOGIN")
    cluster.setup_sql(f"CREATE ROLE {PW_ROLE} LOGIN PASSWORD '{PW_SECRET}'")
    cluster.setup_sql(f"CREATE DATABASE {TEST_DB} OWNER {APP_ROLE}")
    cluster.setup_sql(f"CREATE DATABASE {BENCH_DB} OWNER {APP_ROLE}")
    cluster.setup_sql(f"GRANT CONNECT ON DATABASE {TEST_DB} TO {PW_ROLE}")
    cluster.pgbench(["-i", "-q", "-s", "1"], user=APP_ROLE, dbname=BENCH_DB, app=SETUP_APP)


def run_workload(cluster, workdir):
    """Drives every client the acceptance criteria name; returns what build_expected needs."""
    scripts, multis, pgbench_runs = {}, {}, {}
    for transport in ("unix", "tcp"):
        tcp = transport == "tcp"
        app = f"dbw-psql-{transport}"
        steps = psql_script(f"items_{transport}")
        path = os.path.join(workdir, f"{app}.sql")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(s.sql for s in steps) + "\n")
        cluster.psql(["-f", path], check=False, user=APP_ROLE, dbname=TEST_DB, tcp=tcp,
                     app=app)
        scripts[app] = [s for s in steps]

        for i, m in enumerate(multi_steps(f"multi_{transport}")):
            app = f"dbw-multi{i}-{transport}"
            cluster.psql(["-c", m.sql], check=False, user=APP_ROLE, dbname=TEST_DB, tcp=tcp,
                         app=app)
            multis[app] = m

        app = f"dbw-password-{transport}"
        r = cluster.psql(["-c", "SELECT current_user;"], check=False, user=PW_ROLE,
                         dbname=TEST_DB, tcp=tcp, app=app, password=PW_SECRET)
        if r.returncode != 0 or PW_ROLE not in r.stdout:
            raise HarnessError(f"password login as {PW_ROLE} over {transport} failed: "
                               f"{r.stderr.strip()}")
        scripts[app] = [Step("SELECT current_user;", rows=1)]

        for mode in ("simple", "extended"):
            app = f"dbw-pgbench-{mode}-{transport}"
            out = cluster.pgbench(["-M", mode, "-t", str(PGBENCH_TX), "-c",
                                   str(PGBENCH_CLIENTS)],
                                  user=APP_ROLE, dbname=BENCH_DB, tcp=tcp, app=app)
            m = re.search(r"number of transactions actually processed: (\d+)", out)
            if not m:
                raise HarnessError(f"cannot read pgbench output: {out}")
            pgbench_runs[app] = int(m.group(1))
    return scripts, multis, pgbench_runs



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    ap.add_argument("--audit-format", choices=("jsonl", "zst"), default="jsonl",
                    help="the trail's format (zst: audit.jsonl.zst, read by read_audit)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop servers on the way out

    if os.geteuid() != 0:
        return skip_or_fail("needs root (CAP_BPF/CAP_SYS_ADMIN) to load BPF programs and to "
                            "run PostgreSQL as the postgres user; run via `sudo make test`")
    return in_workdir("dbw-integ-", args.keep,
                      lambda workdir: run(args.agent, workdir, args.audit_format))


def run(agent_exe, workdir, audit_format="jsonl"):
    audit_path = os.path.join(workdir, "audit.jsonl.zst" if audit_format == "zst" else
                              "audit.jsonl")
    # Cleartext password over TCP is the strongest test that authentication messages never
    # leak; SCRAM over the unix socket covers the usual exchange.
    hba = [("host", "password", PW_ROLE), ("local", "scram-sha-256", PW_ROLE)]
    with PgCluster(hba_rules=hba) as cluster:
        setup(cluster)

        agent = pg_cluster.Agent(agent_exe, audit_path, [cluster.port], audit_format=audit_format)
        if (rc := start_agent(agent)) is not None:
            return rc
        try:
            scripts, multis, pgbench_runs = run_workload(cluster, workdir)
            entries = cluster.sync_log()
            expected = build_expected(entries, scripts, multis)
            audited = agent.wait_audit_settled(expected=len(expected), timeout=60,
                                                 quiet=5.0)
            metrics = agent.scrape()
        finally:
            stopped = stop_agent(agent)
        if stopped is not None:
            return stopped
        stderr = agent.stderr

    records, bad = read_audit(audit_path)
    setup_pids = {e.pid for e in entries if e.application_name == SETUP_APP}
    report = compare(expected, records, cluster.port, ignore_pids=setup_pids)
    report.other.extend(bad)
    check_pgbench_counts(pgbench_runs, expected, records, report)
    check_client_processes(records, report)
    report.other.extend(password_leaks(PW_SECRET, audit_path, {
        "the agent's stderr": stderr, "the metrics": metrics}))
    report.other.extend(verify_audit_problems(agent_exe, audit_path))
    report.other.extend(audited_total_problems(audited, len(expected)))
    dropped = agent_metric_lines(metrics, "dbwarden_capture_dropped_total")
    log(f"{len(expected)} statements expected, {len(records)} audit records, "
        f"dbwarden_audit_records_total {audited}; drops: {dropped or 'none'}")
    return report.verdict(agent_stderr=stderr)


def agent_metric_lines(text, name):
    return [line for line in text.splitlines()
            if line.startswith(name) and not line.rstrip().endswith(" 0")]


if __name__ == "__main__":
    sys.exit(main())
