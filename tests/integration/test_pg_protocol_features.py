#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Acceptance test of issue 4's PostgreSQL items: protocol features are audited correctly.

A private PostgreSQL 15 (log_statement=all, csvlog), the real agent and kernel, and real
clients:
- psql `\\copy` in and out: one record each, rows from "COPY n", no row data in the audit;
- `pgbench -M prepared`: every Execute resolved to its text, with its bound parameters;
- a libpq pipeline-mode client (clients/pg_features_client.cc): several Parse/Bind/Execute
  groups before one Sync, text and binary parameters, an error, a statement the server then
  skips (and that must not be audited);
- a long query cancelled through a CancelRequest on a second connection: recorded 57014;
- a statement prepared before the agent started and executed after: a record with its name,
  `dbwarden.statement_unresolved: true`, empty text and its parameters.
Every statement the server logged appears once with the right text, rows and SQLSTATE
(compare() of test_observe_pg.py); the unresolved ones are checked on their own.

Exit codes: 0 pass, 1 fail, 77 skip (not root, or the agent lacks privilege).
"""

import argparse
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import (SETUP_APP, PgCluster, in_workdir, log, read_audit,  # noqa: E402
                        read_audit_text, skip_or_fail, start_agent, stop_agent)
from test_observe_pg import (Expected, compare, logged_statements,  # noqa: E402
                             pgbench_shape, PGBENCH_TX_STATEMENTS)

COPY_ROWS = 137
PGBENCH_TX = 20
SECRET_ROW = "dbw-copy-secret-7c1"


def params_of(record):
    out = {}
    for key, value in record.items():
        m = re.match(r"\Adb\.query\.parameter\.(\d+)\Z", key)
        if m:
            out[int(m.group(1))] = value
    return [out[i] for i in sorted(out)]


def run(agent_exe, client_exe, workdir, audit_path):
    problems = []
    with PgCluster() as cluster:
        cluster.setup_sql("CREATE TABLE copy_t (id int, note text)")
        cluster.pgbench(["-i", "-q", "-s", "1"], app=SETUP_APP)

        # Prepared before the agent exists; executed once it observes.
        early = subprocess.Popen([client_exe, "prepared"], env=cluster.client_env(
            app="dbw-early", tcp=True), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        line = early.stdout.readline()  # "prepare: PGRES_COMMAND_OK"
        line += early.stdout.readline()
        if "prepared\n" not in line:
            early.kill()
            print(f"FAIL: early client did not prepare: {line!r} {early.stderr.read()}")
            return 1

        agent = pg_cluster.Agent(agent_exe, audit_path, [cluster.port])
        if (rc := start_agent(agent)) is not None:
            early.kill()
            early.wait()
            return rc
        try:
            out, err = early.communicate("go\n", timeout=60)
            if early.returncode != 0 or "done" not in out:
                problems.append(f"early client failed: {out} {err}")

            src = os.path.join(workdir, "in.tsv")
            with open(src, "w") as f:
                for i in range(COPY_ROWS):
                    f.write(f"{i}\t{SECRET_ROW}-{i}\n")
            dst = os.path.join(workdir, "out.tsv")
            for app, cmd in (("dbw-copy-in", f"\\copy copy_t FROM '{src}'"),
                             ("dbw-copy-out", f"\\copy copy_t TO '{dst}'")):
                r = cluster.psql(["-v", "ON_ERROR_STOP=1", "-c", cmd], check=False, app=app)
                if r.returncode != 0:
                    problems.append(f"psql {cmd}: {r.stderr.strip()}")
            with open(dst) as f:
                if sum(1 for _ in f) != COPY_ROWS:
                    problems.append("\\copy out did not write every row")

            bench = cluster.pgbench(["-M", "prepared", "-t", str(PGBENCH_TX), "-c", "2"],
                                    tcp=True, app="dbw-pgbench-prepared")
            m = re.search(r"number of transactions actually processed: (\d+)", bench)
            processed = int(m.group(1)) if m else -1

            for mode in ("pipeline", "cancel"):
                r = subprocess.run([client_exe, mode], env=cluster.client_env(
                    app=f"dbw-{mode}", tcp=mode == "pipeline"), capture_output=True, text=True,
                    timeout=120)
                log(f"{mode} client: {r.stdout.strip()!r}")
                if r.returncode != 0:
                    problems.append(f"{mode} client failed: {r.stdout} {r.stderr}")

            entries = cluster.sync_log()
            logged = logged_statements(entries)
            expected, early_pids = [], set()
            for pid, stmts in logged.items():
                app = stmts[0][0].application_name
                if app == "dbw-early":
                    early_pids.add(pid)
                    continue
                for entry, text, status in stmts:
                    rows, known = None, False
                    if app.startswith("dbw-copy"):
                        rows, known = COPY_ROWS, True
                    elif app == "dbw-pgbench-prepared" and status == "00000":
                        shape = pgbench_shape(text)
                        rows, known = (PGBENCH_TX_STATEMENTS[shape], True) if shape else (None,
                                                                                         False)
                    expected.append(Expected(entry, text, status, rows, rows_known=known))
            agent.wait_audit_settled(expected=len(expected) + 2, timeout=60, quiet=5.0)
        finally:
            stopped = stop_agent(agent)
        if stopped is not None:
            return stopped
        port = cluster.port

    records, bad = read_audit(audit_path)
    problems.extend(bad)
    early_records = [r for r in records if r.get("process.pid") in early_pids]
    rest = [r for r in records if r.get("process.pid") not in early_pids]
    setup_pids = {e.pid for e in entries if e.application_name == SETUP_APP}
    report = compare(expected, rest, port, ignore_pids=setup_pids)

    # Prepared before capture: two Executes, each a record naming dbw_early.
    want_params = [["41"], ["6"]]
    if len(early_records) != 2:
        problems.append(f"prepared-before-agent: want 2 records, got {early_records}")
    for rec, params in zip(early_records, want_params):
        if not (rec.get("db.statement.name") == "dbw_early"
                and rec.get("dbwarden.statement_unresolved") is True
                and rec.get("db.response.status_code") == "00000"
                and rec.get("db.response.returned_rows") == 1
                and params_of(rec) == params):
            problems.append(f"prepared-before-agent record wrong: {rec}")

    by_app = {}
    for r in rest:
        by_app.setdefault(r.get("db.client.application_name"), []).append(r)
    # Pipeline: parameters in order, the binary int4 decoded, the skipped one absent.
    pipe = by_app.get("dbw-pipeline", [])
    inserts = [params_of(r) for r in pipe if r.get("db.query.text", "").startswith("INSERT")]
    if inserts != [["1", "name-1"], ["2", "name-2"], ["3", "name-3"]]:
        problems.append(f"pipeline INSERT parameters: {inserts}")
    sel = [r for r in pipe if "WHERE id >= $1" in r.get("db.query.text", "")]
    if len(sel) != 1 or params_of(sel[0]) != ["2"] or sel[0].get("db.response.returned_rows") != 2:
        problems.append(f"pipeline binary-parameter SELECT: {sel}")
    if any("skipped" in r.get("db.query.text", "") for r in pipe):
        problems.append("a statement the server skipped after an error was audited")
    # pgbench -M prepared: every Execute resolved, one integer value per $n.
    bench_recs = [r for r in by_app.get("dbw-pgbench-prepared", [])
                  if pgbench_shape(r.get("db.query.text", ""))]
    if len(bench_recs) != processed * len(PGBENCH_TX_STATEMENTS):
        problems.append(f"pgbench: {processed} tx, {len(bench_recs)} statement records")
    for r in bench_recs:
        text = r["db.query.text"]
        n = len(set(re.findall(r"\$\d+", text)))
        ps = params_of(r)
        if (r.get("dbwarden.statement_unresolved") or not r.get("db.statement.name")
                or len(ps) != n or not all(re.fullmatch(r"-?\d+", p or "") for p in ps)):
            problems.append(f"pgbench prepared record: {r}")
            break
    if SECRET_ROW in read_audit_text(audit_path):
        problems.append("COPY row data appears in the audit log")
    cancel = [r for r in by_app.get("dbw-cancel", []) if "pg_sleep" in r.get("db.query.text", "")]
    if len(cancel) != 1 or cancel[0].get("db.response.status_code") != "57014":
        problems.append(f"cancelled query: {cancel}")

    report.other.extend(problems)
    log(f"{len(expected)} logged statements compared, {len(records)} audit records")
    return report.verdict()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--client", required=True, help="path to pg_features_client")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        return skip_or_fail("needs root (CAP_BPF/CAP_SYS_ADMIN) and the postgres user")
    return in_workdir("dbw-pgproto-", args.keep, lambda workdir: run(
        args.agent, args.client, workdir, os.path.join(workdir, "audit.jsonl")))


if __name__ == "__main__":
    sys.exit(main())
