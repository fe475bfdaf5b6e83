#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A client's connection to a remote database, opened before the agent started, is audited
from then on (issue 3: "Connections opened before the agent started ... are audited from
then on", client side).

A PostgreSQL runs in a network namespace of its own (veth pair), so for the agent it is on
another host. This test process connects to it with psycopg2 and runs a statement while no
agent runs; then the agent starts, watching that port, and the same session runs more
statements. The connect(2) hook never saw this connection: the agent finds it at start-up
over sock_diag and tracks this process as a client. Every statement run after the agent was
observing must be audited exactly once, captured on the client side (this process is the
peer), with text, rows and SQLSTATE; the statement from before must not be. A second
session that connects after the start is the control (the connect hook's path).

Exit codes: 0 pass, 1 fail, 77 skip (not root / no netns support) unless
DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "clients"))
import pg_cluster  # noqa: E402
from pg_cluster import Agent, log, read_audit, short, skip_or_fail, verdict  # noqa: E402
from syscall_capture_test import (REMOTE_HOST_ADDR, NetnsCluster, allow_host,  # noqa: E402
                                  delete_netns, make_netns)

import psycopg2  # noqa: E402  (Debian python3-psycopg2, under /usr/bin/python3)


def connect(remote):
    conn = psycopg2.connect(host=REMOTE_HOST_ADDR[1], port=remote.port, user="postgres",
                            dbname="postgres", application_name="dbw-early-client")
    conn.autocommit = True
    return conn


def run_statements(conn, tag):
    """Runs the workload; returns [(text, sqlstate, rows)] as the audit should say."""
    cur = conn.cursor()
    expected = []
    for text, sqlstate, rows in ((f"SELECT generate_series(1, 3) AS {tag}", "00000", 3),
                                 (f"SELECT 1/0 AS {tag}", "22012", None),
                                 (f"CREATE TEMP TABLE {tag}_t (x int)", "00000", None),
                                 (f"INSERT INTO {tag}_t SELECT generate_series(1, 4)",
                                  "00000", 4)):
        try:
            cur.execute(text)  # no parameters: psycopg2 sends a simple Query
        except psycopg2.Error:
            pass
        expected.append((text, sqlstate, rows))
    return expected


def check(records, expected, tag, failures):
    """Each expected statement exactly once, with its result, captured in this process."""
    mine = [r for r in records if tag in str(r.get("db.query.text", ""))]
    if len(mine) != len(expected):
        failures.append(f"{tag}: {len(mine)} records for {len(expected)} statements: "
                        f"{[short(r.get('db.query.text')) for r in mine]}")
    for text, sqlstate, rows in expected:
        found = [r for r in mine if r.get("db.query.text") == text]
        if len(found) != 1:
            failures.append(f"{tag}: {short(text)} audited {len(found)} times")
            continue
        r = found[0]
        if r.get("db.response.status_code") != sqlstate:
            failures.append(f"{short(text)}: SQLSTATE {r.get('db.response.status_code')}, "
                            f"expected {sqlstate}")
        if rows is not None and r.get("db.response.returned_rows") != rows:
            failures.append(f"{short(text)}: rows {r.get('db.response.returned_rows')}, "
                            f"expected {rows}")
        if r.get("client.process.pid") != os.getpid():
            failures.append(f"{short(text)}: client.process.pid {r.get('client.process.pid')}"
                            f", expected this test's pid {os.getpid()}")
        if r.get("client.address") != REMOTE_HOST_ADDR[0]:
            failures.append(f"{short(text)}: client.address {r.get('client.address')}, "
                            f"expected {REMOTE_HOST_ADDR[0]}")
        if r.get("dbwarden.capture_gap"):
            failures.append(f"{short(text)}: marked capture_gap")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF, network namespaces)")
    try:
        ns, host_if = make_netns()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        return skip_or_fail(f"cannot make a network namespace with a veth pair: {e}")
    workdir = pg_cluster.make_workdir("dbw-early-client-")
    failures = []
    remote = NetnsCluster(ns, REMOTE_HOST_ADDR[1])
    try:
        remote.start()
        allow_host(remote, f"{REMOTE_HOST_ADDR[0]}/32")
        early = connect(remote)
        early.cursor().execute("SELECT 'dbw_before_agent'")
        audit_path = os.path.join(workdir, "audit.jsonl")
        with Agent(args.agent, audit_path, [remote.port]) as agent:
            expected_early = run_statements(early, "dbw_early")
            late = connect(remote)
            expected_late = run_statements(late, "dbw_late")
            late.close()
            early.close()
            agent.wait_audit_settled(timeout=30, quiet=2.0)
            if "connected to a remote database before the agent started" not in agent.stderr:
                failures.append("the agent did not log that it picked up this process")
        records, bad = read_audit(audit_path)
        failures += bad
        if any("dbw_before_agent" in str(r.get("db.query.text", "")) for r in records):
            failures.append("a statement run before the agent started was audited")
        check(records, expected_early, "dbw_early", failures)
        check(records, expected_late, "dbw_late", failures)
        log(f"{len(records)} audit records")
    except pg_cluster.AgentError as e:
        failures.append(f"agent: {e}\n{e.stderr[-2000:]}")
    finally:
        remote.stop()
        delete_netns(ns, host_if)
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
