#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`dbwarden run --record` then `dbwarden replay` gives the live audit records again.

The README's "Other commands": a recording keeps the raw capture records, and replay decodes
them again without root. The agent observes a private PostgreSQL with --record while psql
runs statements over the unix socket and TCP (rows, an error, a multi-statement string, the
extended protocol through pgbench); then the recording is replayed with --metrics-file.
Every live statement record must come back once with the same connection id, text, user,
database, operation, rows and status (the client process is not in a replay: no /proc to
ask), and the replayed metrics must count the same statements. A recording cut short is a
clear error, not a crash.

Exit codes: 0 pass, 1 fail, 77 skip (not root) unless DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import collections
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import Agent, PgCluster, log, read_audit, short, skip_or_fail, verdict  # noqa: E402

KEYS = ("connection_id", "db.query.text", "db.user", "db.namespace", "db.operation.name",
        "db.response.status_code", "db.response.returned_rows", "server.port")
SQL = [
    "SELECT generate_series(1, 5) AS dbw_replay",
    "SELECT 1/0 AS dbw_replay",
    "CREATE TEMP TABLE dbw_replay_t (x int); INSERT INTO dbw_replay_t VALUES (1), (2), (3)",
]


def key(r):
    return tuple(r.get(k) for k in KEYS)


def statements_total(metrics_text):
    return sum(float(m.group(1)) for m in
               re.finditer(r"^dbwarden_statements_total\{[^}]*\} (\S+)$", metrics_text, re.M))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF) to record")
    workdir = pg_cluster.make_workdir("dbw-replay-")
    failures = []
    recording = os.path.join(workdir, "session.rec")
    live_path = os.path.join(workdir, "live.jsonl")
    try:
        with PgCluster() as cluster:
            cluster.pgbench(["-i", "-q", "-s", "1"], app=pg_cluster.SETUP_APP)
            with Agent(args.agent, live_path, [cluster.port],
                       extra_args=["--record", recording]) as agent:
                agent.wait_audit_settled(timeout=10, quiet=0.5)
                for tcp in (False, True):
                    for sql in SQL:
                        cluster.psql(["-c", sql], check=False, tcp=tcp, app="dbw-replay")
                cluster.pgbench(["-n", "-M", "extended", "-t", "20", "-c", "2"], tcp=True,
                                app="dbw-replay")
                agent.wait_audit_settled(timeout=30, quiet=2.0)
        live, bad = read_audit(live_path)
        failures += bad

        replay_path = os.path.join(workdir, "replay.jsonl")
        metrics_path = os.path.join(workdir, "replay.prom")
        p = subprocess.run([args.agent, "replay", recording, "--audit-file", replay_path,
                            "--metrics-file", metrics_path], capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            failures.append(f"replay exited {p.returncode}: {p.stderr.strip()[-500:]}")
        replayed, bad = read_audit(replay_path)
        failures += bad

        want = collections.Counter(key(r) for r in live)
        got = collections.Counter(key(r) for r in replayed)
        for k in (want - got):
            failures.append(f"live record missing from the replay: {short(k)}")
        for k in (got - want):
            failures.append(f"replay record not in the live log: {short(k)}")
        # Per transport: two SELECTs and the two statements of the multi-statement string.
        psql_records = sum(1 for r in live if "dbw_replay" in str(r.get("db.query.text")))
        if psql_records != 8:
            failures.append(f"the live log holds {psql_records} of the 8 psql statements")
        with open(metrics_path, encoding="utf-8") as f:
            counted = statements_total(f.read())
        if counted != len(replayed):
            failures.append(f"replayed metrics count {counted} statements, the replayed audit "
                            f"has {len(replayed)}")

        # A recording cut in the middle of a record: a clear error, exit 1, no crash.
        cut = os.path.join(workdir, "cut.rec")
        with open(recording, "rb") as src, open(cut, "wb") as dst:
            data = src.read()
            dst.write(data[:len(data) - 7])
        p = subprocess.run([args.agent, "replay", cut, "--audit-file",
                            os.path.join(workdir, "cut.jsonl")], capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 1 or not p.stderr.strip():
            failures.append(f"replay of a cut recording: exit {p.returncode}, stderr "
                            f"{p.stderr.strip()[-300:]!r} (want 1 and a message)")
        log(f"{len(live)} live records, {len(replayed)} replayed, metrics {counted}")
    except pg_cluster.AgentError as e:
        failures.append(f"agent: {e}\n{e.stderr[-2000:]}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
