#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Ready means capturing: a client that starts the instant /metrics answers is fully audited.

Issue 15, "Ready means capturing": the metrics endpoint (what a readiness check probes), the
"observing" line and systemd's READY=1 come only after every probe and watch is live. The
agent is started against a private PostgreSQL with ssl=on; the test polls /metrics without
pause and, the moment it answers, starts three psql sessions at once: over the unix socket,
over TCP, and over TCP with TLS (the libssl probes must be in place too). Every one of their
statements must be in the audit log exactly once, with the user and application name from
the startup message (captured from the connection's first byte), and the agent must have
printed its "observing" line.

Exit 77 (skip) without root, or 1 instead when DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import (AGENT_READY_LINE, PgCluster, in_workdir, log, read_audit,  # noqa: E402
                        short, skip_or_fail, stop_agent)
from test_tls import make_certificate  # noqa: E402

STATEMENTS = 14  # what the TLS session ran (it lost 12 of them)
SESSIONS = {  # name -> (tcp, sslmode)
    "unix": (False, "disable"),
    "tcp": (True, "disable"),
    "tls": (True, "require"),
}


def script(name):
    """STATEMENTS statements, each unique to the session; returns (text, [statements])."""
    stmts = [f"SELECT 'ready-{name}-{i}' AS tag, {i} AS n" for i in range(STATEMENTS - 2)]
    stmts.append(f"SELECT 'ready-{name}-ssl', ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    stmts.append(f"SELECT 'ready-{name}-fail' / 0")
    return "".join(s + ";\n" for s in stmts), stmts


def wait_for_metrics(agent, timeout):
    """Polls /metrics without pause until it answers; returns seconds waited, or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout and agent.alive():
        try:
            with urllib.request.urlopen(agent.metrics_url, timeout=2) as r:
                r.read()
            return time.monotonic() - start
        except OSError:
            pass  # not served yet: connection refused
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs and run PostgreSQL")
    if not shutil.which("openssl"):
        return skip_or_fail("the openssl CLI is needed to make a certificate")
    return in_workdir("dbw-ready-", args.keep, lambda workdir: run(args.agent, workdir))


def run(agent_exe, workdir):
    certdir = os.path.join(workdir, "cert")
    os.mkdir(certdir, 0o755)
    crt, key = make_certificate(certdir)
    audit_path = os.path.join(workdir, "audit.jsonl")
    conf = {"ssl": "on", "ssl_cert_file": f"'{crt}'", "ssl_key_file": f"'{key}'"}
    problems = []
    expected = {}
    with PgCluster(extra_conf=conf) as cluster:
        paths = {}
        for name in SESSIONS:
            text, expected[name] = script(name)
            paths[name] = os.path.join(workdir, f"{name}.sql")
            with open(paths[name], "w") as f:
                f.write(text)
        agent = pg_cluster.Agent(agent_exe, audit_path, [cluster.port])
        agent.start(wait_ready=False)
        try:
            waited = wait_for_metrics(agent, timeout=120)
            if waited is None:
                print(f"FAIL: /metrics never answered\nagent stderr:\n{agent.stderr}")
                return 1
            # The instant it answers: all sessions at once.
            clients = {}
            for name, (tcp, sslmode) in SESSIONS.items():
                env = cluster.client_env(tcp=tcp, app=f"dbw-ready-{name}")
                env["PGSSLMODE"] = sslmode
                clients[name] = subprocess.Popen(
                    ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-f", paths[name]],
                    env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            log(f"/metrics answered after {waited:.3f}s; {len(clients)} sessions started")
            for name, p in clients.items():
                out, err = p.communicate(timeout=120)
                want_ssl = "t" if SESSIONS[name][1] == "require" else "f"
                if f"ready-{name}-ssl|{want_ssl}" not in out:
                    problems.append(f"{name}: pg_stat_ssl says otherwise: {short(out)} "
                                    f"{short(err)}")
            agent.wait_audit_settled(expected=None, timeout=60, quiet=2.0)
        finally:
            if stop_agent(agent) is not None:
                problems.append("the agent did not stop cleanly")
    if AGENT_READY_LINE not in agent.stderr:
        problems.append(f"the agent never printed {AGENT_READY_LINE!r}")
    records, bad = read_audit(audit_path)
    problems += bad
    for name, stmts in expected.items():
        app = f"dbw-ready-{name}"
        mine = [r for r in records if r.get("db.client.application_name") == app]
        texts = [str(r.get("db.query.text", "")).rstrip().rstrip(";") for r in mine]
        for s in stmts:
            n = texts.count(s)
            if n != 1:
                problems.append(f"{name}: {short(s)} audited {n} times, want 1")
        for r in mine:
            if r.get("db.user") != "postgres" or r.get("dbwarden.capture_gap"):
                problems.append(f"{name}: record without its startup identity or with a gap: "
                                f"{short(r)}")
        log(f"{name}: {len(mine)} records for {len(stmts)} statements")
    for p in problems:
        print(f"  FAIL {p}")
    if problems:
        print(f"agent stderr:\n{agent.stderr}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
