#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""SIGHUP reloads the config file without losing connections (issue 3, "Restarts").

Two private PostgreSQL clusters. The agent starts with a config file naming only the first
one's port; a session on it is audited. The config file then names both ports and the
agent gets SIGHUP: a statement on the second cluster (TCP and unix socket) is audited, and
the first session keeps being audited under the same connection_id. A setting that cannot
change live (ringbuf-bytes) is reported as needing a restart. Then a broken config file and
SIGHUP: the agent keeps running on the config it had, counts the failed reload, and keeps
auditing both clusters.

Exit 77 (skip) without root, or 1 instead when DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_cluster import (Agent, PgCluster, log, make_workdir, read_audit, short,  # noqa: E402
                        skip_or_fail, verdict)

import psycopg2  # noqa: E402  (Debian python3-psycopg2, under /usr/bin/python3)


def connect(cluster, tcp):
    host = "127.0.0.1" if tcp else cluster.socket_dir
    conn = psycopg2.connect(host=host, port=cluster.port, user="postgres", dbname="postgres",
                            application_name="dbw-sighup")
    conn.autocommit = True
    return conn


def reloads(agent, result):
    m = re.search(r'^dbwarden_config_reloads_total\{result="%s"\} (\S+)$' % result,
                  agent.scrape(), re.M)
    return float(m.group(1)) if m else None


def wait_reloads(agent, result, want, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reloads(agent, result) == want:
            return True
        time.sleep(0.1)
    return False


def write_config(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs")

    workdir = make_workdir("dbw-sighup-")
    audit_path = os.path.join(workdir, "audit.jsonl")
    config = os.path.join(workdir, "dbwarden.conf")
    failures = []
    expected = []  # statement texts that must be audited exactly once
    try:
        with PgCluster() as one, PgCluster() as two:
            write_config(config, f"postgres-port = {one.port}\n")
            with Agent(args.agent, audit_path, [], config=config) as agent:
                s1 = connect(one, tcp=True)
                s1.cursor().execute("SELECT 'one, before the reload'")
                expected.append("SELECT 'one, before the reload'")
                # Not watched yet: the second cluster's statement must not be audited.
                early = connect(two, tcp=True)
                early.cursor().execute("SELECT 'two, before the reload'")
                agent.wait_audit_settled(expected=1, timeout=30)

                write_config(config, f"postgres-port = {one.port}\npostgres-port = {two.port}\n"
                                     "ringbuf-bytes = 8388608\n")
                agent.proc.send_signal(signal.SIGHUP)
                if not wait_reloads(agent, "ok", 1):
                    failures.append("no successful reload counted after the first SIGHUP")
                if "needs restart" not in agent.stderr or "ringbuf-bytes" not in agent.stderr:
                    failures.append("ringbuf-bytes change not reported as needing a restart")
                for tcp in (True, False):
                    c = connect(two, tcp=tcp)
                    text = f"SELECT 'two after the reload, tcp={tcp}'"
                    c.cursor().execute(text)
                    expected.append(text)
                    c.close()
                s1.cursor().execute("SELECT 'one, after the reload'")
                expected.append("SELECT 'one, after the reload'")
                agent.wait_audit_settled(expected=len(expected), timeout=30)

                write_config(config, "postgres-port = not-a-port\n")
                agent.proc.send_signal(signal.SIGHUP)
                if not wait_reloads(agent, "failed", 1):
                    failures.append("no failed reload counted after SIGHUP with a broken config")
                if not agent.alive():
                    failures.append("the agent exited after SIGHUP with a broken config")
                s1.cursor().execute("SELECT 'one, after the broken config'")
                expected.append("SELECT 'one, after the broken config'")
                c = connect(two, tcp=True)
                c.cursor().execute("SELECT 'two, after the broken config'")
                expected.append("SELECT 'two, after the broken config'")
                c.close()
                agent.wait_audit_settled(expected=len(expected), timeout=30)
                s1.close()
                early.close()
            if "running config kept" not in agent.stderr:
                failures.append("the broken config was not logged: " + short(agent.stderr, 400))

        records, bad = read_audit(audit_path)
        failures.extend(bad)
        for text in expected:
            got = [r for r in records if r.get("db.query.text") == text]
            if len(got) != 1:
                failures.append(f"{text!r} audited {len(got)} times, want 1")
        if any(r.get("db.query.text") == "SELECT 'two, before the reload'" for r in records):
            failures.append("a statement on a port not yet watched was audited")
        ids = {r.get("connection_id") for r in records
               if r.get("db.query.text", "").startswith("SELECT 'one,")}
        if len(ids) != 1:
            failures.append(f"the first session's statements carry connection ids {ids}, want one")
        log(f"{len(records)} audit records, {len(expected)} expected")
    except BaseException:
        print(f"work dir kept: {workdir}")
        raise
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
