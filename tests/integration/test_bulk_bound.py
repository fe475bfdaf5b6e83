#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Acceptance test of the bulk-data bound (issue 3, item 4) against a real PostgreSQL.

The agent runs with its default bound (1024 head + 1024 tail bytes per server-to-client
write). psql and psycopg2, over TCP, over TLS (`sslmode=require`: the plaintext comes
from the libssl probes and goes through the same bound) and over the unix socket, run a
200,000-row SELECT,
`COPY (SELECT ...) TO STDOUT`, and a failing query after a big result. Every statement the
server logged is audited once with the exact row count and SQLSTATE and without
`dbwarden.capture_gap`; dbwarden_capture_bulk_skipped_bytes_total is positive and the
ring-buffer bytes the agent consumed stay far below the bytes of the results (under 25 %:
the server writes results in 8 KiB flushes, each keeping its 1 KiB tail; measured ~14 %).

Exit codes: 0 pass, 1 fail, 77 skip (not root, or the agent lacks privilege).
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import (PgCluster, log, read_audit, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent, verdict)
import test_tls  # noqa: E402

ROWS = 200000
BIG = f"SELECT g, repeat('x', 100) FROM generate_series(1, {ROWS}) g"
COPY = f"COPY (SELECT g, repeat('y', 100) FROM generate_series(1, {ROWS}) g) TO STDOUT"
FAIL = "SELECT 1 / (g - 150000) FROM generate_series(1, 200000) g"
# Every result is about 200,000 x ~110 bytes.
RESULT_BYTES = ROWS * 110

PSYCOPG_SCRIPT = r"""
import sys, psycopg2
conn = psycopg2.connect(host=sys.argv[1], port=sys.argv[2], user="postgres",
                        dbname="postgres", application_name=sys.argv[3], sslmode=sys.argv[6])
conn.autocommit = True
cur = conn.cursor()
cur.execute(sys.argv[4])
print(len(cur.fetchall()))
try:
    cur.execute(sys.argv[5])
except psycopg2.Error as e:
    print(e.pgcode)
cur.execute("SELECT 42")
print(cur.fetchone()[0])
"""


# (name, over TCP, libpq sslmode): the server has TLS on, so TCP says which it wants.
VIAS = (("tcp", True, "disable"), ("tls", True, "require"), ("unix", False, "disable"))


def run(agent_exe, workdir, audit_path):
    failures = []
    certdir = os.path.join(workdir, "cert")
    os.mkdir(certdir, 0o755)
    crt, key = test_tls.make_certificate(certdir)
    conf = {"ssl": "on", "ssl_cert_file": f"'{crt}'", "ssl_key_file": f"'{key}'"}
    with PgCluster(extra_conf=conf) as cluster:
        agent = pg_cluster.Agent(agent_exe, audit_path, [cluster.port])
        if (rc := start_agent(agent)) is not None:
            return rc
        apps = []
        try:
            for via, tcp, sslmode in VIAS:
                app = f"dbw-bulk-psql-{via}"
                apps.append(app)
                sql = f"{BIG};\n{COPY};\n{FAIL};\nSELECT 42;\n"
                r = subprocess.run(["psql", "-X", "-q", "-o", "/dev/null", "-v",
                                    "ON_ERROR_STOP=0"], input=sql, text=True,
                                   env={**cluster.client_env(tcp=tcp, app=app),
                                        "PGSSLMODE": sslmode},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
                if "division by zero" not in r.stderr:
                    failures.append(f"psql {via}: expected the division error: {r.stderr}")
                app = f"dbw-bulk-psycopg-{via}"
                apps.append(app)
                host = "127.0.0.1" if tcp else cluster.socket_dir
                r = subprocess.run(["/usr/bin/python3", "-c", PSYCOPG_SCRIPT, host,
                                    str(cluster.port), app, BIG, FAIL, sslmode], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
                if r.stdout.split() != [str(ROWS), "22012", "42"]:
                    failures.append(f"psycopg2 {via}: {r.stdout!r} {r.stderr!r}")
            entries = cluster.sync_log()
            logged = [e for e in entries if e.application_name in apps
                      and e.statement is not None]
            agent.wait_audit_settled(timeout=60, quiet=3.0)
            text = agent.scrape()
            skipped = agent.metric_sum("dbwarden_capture_bulk_skipped_bytes_total", text) or 0
            ring = agent.metric_sum("dbwarden_capture_ring_bytes_total", text) or 0
            mismatched = agent.metric_sum("dbwarden_decoder_bulk_recoveries_total", text)
            tls_calls = sum(float(line.split()[-1]) for line in text.splitlines()
                            if line.startswith('dbwarden_tls_events_total{kind="plaintext_call"}'))
        finally:
            stopped = stop_agent(agent)
        if stopped is not None:
            return stopped

    records, bad = read_audit(audit_path)
    failures.extend(bad)
    ours = [r for r in records if r.get("db.client.application_name") in apps]
    log(f"{len(logged)} logged statements, {len(ours)} audit records; skipped {skipped:.0f} "
        f"bytes, ring {ring:.0f} bytes, recoveries {mismatched}")
    want = {BIG: ("00000", ROWS), COPY: ("00000", ROWS), FAIL: ("22012", None),
            "SELECT 42": ("00000", 1)}
    for app in apps:
        got = [r for r in ours if r.get("db.client.application_name") == app]
        server = [e for e in logged if e.application_name == app]
        texts = [r.get("db.query.text", "").strip().rstrip(";") for r in got]
        if len(got) != len(server):
            failures.append(f"{app}: server logged {len(server)} statements, audit has "
                            f"{len(got)}: {texts}")
        for r, t in zip(got, texts):
            status, rows = want.get(t, (None, None))
            if status is None:
                failures.append(f"{app}: unexpected statement {t!r}")
                continue
            if r.get("dbwarden.capture_gap"):
                failures.append(f"{app}: {t[:40]!r} carries capture_gap")
            if r.get("db.response.status_code") != status:
                failures.append(f"{app}: {t[:40]!r} status {r.get('db.response.status_code')}")
            if rows is not None and r.get("db.response.returned_rows") != rows:
                failures.append(f"{app}: {t[:40]!r} rows {r.get('db.response.returned_rows')}")
    if tls_calls == 0:
        failures.append("no TLS plaintext call was captured: the tls cases did not use TLS")
    # PostgreSQL writes a large result in 8 KiB flushes; each keeps its 1 KiB tail (only
    # a response's first write keeps a head): about an eighth of the bytes reach the ring.
    if skipped < 0.6 * 6 * RESULT_BYTES:
        failures.append(f"skipped {skipped:.0f} bytes, want most of {6 * RESULT_BYTES}")
    if ring > 0.25 * (ring + skipped):
        failures.append(f"ring bytes {ring:.0f} not far below the {ring + skipped:.0f} bytes "
                        "the results took")
    return verdict(failures, workdir)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        return skip_or_fail("needs root (CAP_BPF/CAP_SYS_ADMIN) and the postgres user")
    workdir = tempfile.mkdtemp(prefix="dbw-bulk-")
    os.chmod(workdir, 0o755)
    return run(args.agent, workdir, os.path.join(workdir, "audit.jsonl"))


if __name__ == "__main__":
    sys.exit(main())
