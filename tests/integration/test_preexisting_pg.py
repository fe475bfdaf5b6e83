#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Connections opened before the agent started are audited from then on.

Issue 2, "Capture": the agent must pick up connections that already exist. Two psycopg2
sessions (one over TCP, one over the unix socket) log in and run a statement while no agent
is running; then the agent starts and each session runs more statements (simple and
extended protocol, a failing one). Every statement run after the agent was observing must
be in the audit log exactly once, with the user and database of the session (the startup
message was never seen: the agent takes them from the backend's process title), and the
statements from before must not be.

Exit 77 (skip) without root, or 1 instead when DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_cluster import (Agent, PgCluster, log, make_workdir, read_audit,  # noqa: E402
                        skip_or_fail, verdict)

import psycopg2  # noqa: E402  (Debian python3-psycopg2, under /usr/bin/python3)

USER = "dbw_early"
DB = "dbw_early_db"


def connect(cluster, tcp):
    host = "127.0.0.1" if tcp else cluster.socket_dir
    conn = psycopg2.connect(host=host, port=cluster.port, user=USER, dbname=DB,
                            application_name="dbw-preexisting")
    conn.autocommit = True
    return conn


def run_statements(conn, tag):
    """Runs the post-start workload; returns [(text, sqlstate, rows)] as the audit should say."""
    expected = []
    cur = conn.cursor()
    text = f"SELECT generate_series(1, 3) AS {tag}"
    cur.execute(text)  # no parameters: psycopg2 sends a simple Query
    cur.fetchall()
    expected.append((text, "00000", 3))
    text = f"SELECT 1/0 AS {tag}"
    try:
        cur.execute(text)
    except psycopg2.Error:
        pass
    expected.append((text, "22012", None))
    text = f"CREATE TEMP TABLE {tag}_t (x int)"
    cur.execute(text)
    expected.append((text, "00000", None))
    text = f"INSERT INTO {tag}_t SELECT generate_series(1, 4)"
    cur.execute(text)
    expected.append((text, "00000", 4))
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs")

    workdir = make_workdir("dbw-early-")
    audit_path = os.path.join(workdir, "audit.jsonl")
    failures = []
    try:
        with PgCluster() as cluster:
            cluster.setup_sql(f"CREATE ROLE {USER} LOGIN")
            cluster.setup_sql(f"CREATE DATABASE {DB} OWNER {USER}")
            sessions = {"tcp": connect(cluster, tcp=True), "unix": connect(cluster, tcp=False)}
            for tag, conn in sessions.items():
                conn.cursor().execute(f"SELECT 'before the agent' AS {tag}_before")
            expected = {}
            with Agent(args.agent, audit_path, [cluster.port]) as agent:
                for tag, conn in sessions.items():
                    expected[tag] = run_statements(conn, tag)
                total = sum(len(v) for v in expected.values())
                agent.wait_audit_settled(expected=total, timeout=30)
            for conn in sessions.values():
                conn.close()

        records, bad = read_audit(audit_path)
        failures.extend(bad)
        for tag, want in expected.items():
            transport = "tcp" if tag == "tcp" else "unix"
            for text, sqlstate, rows in want:
                got = [r for r in records if r.get("db.query.text") == text]
                if len(got) != 1:
                    failures.append(f"{tag}: {text!r} audited {len(got)} times, want 1")
                    continue
                r = got[0]
                checks = {
                    "db.user": USER, "db.namespace": DB,
                    "db.response.status_code": sqlstate,
                    "db.response.returned_rows": rows, "network.transport": transport,
                }
                # The client is this very process: the agent names it, once per connection.
                checks.update({"client.process.pid": os.getpid(), "client.user.id": os.geteuid()})
                for key, value in checks.items():
                    if r.get(key) != value:
                        failures.append(f"{tag}: {text!r}: {key} is {r.get(key)!r}, want {value!r}")
        for r in records:
            if "before the agent" in r.get("db.query.text", ""):
                failures.append(f"a statement from before the agent started was audited: {r}")
        log(f"{len(records)} audit records; {sum(len(v) for v in expected.values())} expected")
    except BaseException:
        print(f"work dir kept: {workdir}")
        raise
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
