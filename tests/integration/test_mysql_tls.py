#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""MariaDB over TLS is audited like plaintext (issue 4, item 1, with issue 3's TLS capture).

A private MariaDB with a self-signed certificate; the `mariadb` CLI runs the same statements
over TCP once with `--ssl` and once with `--skip-ssl`. Debian's mariadbd and mariadb link the
libssl the agent probes. Checks: the TLS session really was TLS (Ssl_cipher), every statement
of both sessions is audited once with the same text, user, schema, rows and status, and no
connection was counted as unreadable TLS.
"""

import argparse
import os
import pwd
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from mariadb_server import APP_USER, MYSQL_OS_USER, TEST_DB, MariaDB  # noqa: E402
from pg_cluster import (log, make_workdir, read_audit, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent, verdict)

STATEMENTS = [
    "CREATE TABLE tls_t (a INT, b VARCHAR(20))",
    "INSERT INTO tls_t VALUES (1, 'x'), (2, 'y'), (3, 'z')",
    "SELECT a, b FROM tls_t WHERE a >= 2",
    "UPDATE tls_t SET b = 'w' WHERE a = 1",
    "SELECT * FROM tls_missing_table",
    "DROP TABLE tls_t",
]
WANT = {  # text -> (rows, SQLSTATE); rows None where not checked
    STATEMENTS[0]: (None, "00000"),
    STATEMENTS[1]: (3, "00000"),
    STATEMENTS[2]: (2, "00000"),
    STATEMENTS[3]: (1, "00000"),
    STATEMENTS[4]: (None, "1146"),  # ER_NO_SUCH_TABLE (SQLSTATE 42S02)
    STATEMENTS[5]: (None, "00000"),
}


def make_certificate(directory):
    crt, key = os.path.join(directory, "server.crt"), os.path.join(directory, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", crt],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pw = pwd.getpwnam(MYSQL_OS_USER)
    for path in (directory, crt, key):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(key, 0o600)
    return crt, key


def session(server, ssl):
    """The statements in one session over TCP; returns the CLI's stdout."""
    script = "SHOW SESSION STATUS LIKE 'Ssl_cipher';\n" + ";\n".join(STATEMENTS) + ";\n"
    args = server.client_args(tcp=True) + ["--batch", "--force",
                                           "--ssl" if ssl else "--skip-ssl"]
    r = subprocess.run(args, input=script, text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return r.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--agent", required=True)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs and run MariaDB")
    workdir = make_workdir("dbw-mytls-")
    certdir = os.path.join(workdir, "cert")
    os.mkdir(certdir, 0o755)
    crt, key = make_certificate(certdir)
    audit_path = os.path.join(workdir, "audit.jsonl")
    failures = []
    with MariaDB(extra_args=[f"--ssl-cert={crt}", f"--ssl-key={key}"]) as server:
        agent = pg_cluster.Agent(args.agent, audit_path, pg_ports=[],
                                 extra_args=["--mysql-port", str(server.port)])
        if (rc := start_agent(agent)) is not None:
            return rc
        try:
            outputs = {ssl: session(server, ssl) for ssl in (True, False)}
            agent.wait_audit_settled(expected=None, timeout=60, quiet=3.0)
            encrypted = agent.metric_sum("dbwarden_decoder_encrypted_connections_total") or 0
            tls_events = agent.metric_sum("dbwarden_tls_events_total") or 0
        finally:
            stopped = stop_agent(agent)
        if stopped is not None:
            return stopped
    cipher = [line for line in outputs[True].splitlines() if line.startswith("Ssl_cipher")]
    if not cipher or len(cipher[0].split("\t")) < 2 or not cipher[0].split("\t")[1].strip():
        failures.append(f"the --ssl session did not use TLS: {outputs[True][:200]!r}")
    records, bad = read_audit(audit_path)
    failures.extend(bad)
    by_text = {}
    for r in records:
        by_text.setdefault(r.get("db.query.text"), []).append(r)
    connections = set()
    for text, (rows, sqlstate) in WANT.items():
        got = by_text.get(text, [])
        if len(got) != 2:
            failures.append(f"{text!r}: {len(got)} records, want 2 (TLS and plaintext)")
            continue
        for r in got:
            connections.add(r.get("connection_id"))
            if r.get("db.user") != APP_USER or r.get("db.namespace") != TEST_DB:
                failures.append(f"{text!r}: user/schema {r.get('db.user')}/"
                                f"{r.get('db.namespace')}")
            if rows is not None and r.get("db.response.returned_rows") != rows:
                failures.append(f"{text!r}: rows {r.get('db.response.returned_rows')}, want {rows}")
            if r.get("db.response.status_code") != sqlstate:
                failures.append(f"{text!r}: status {r.get('db.response.status_code')}, "
                                f"want {sqlstate}")
    if len(connections) != 2:
        failures.append(f"statements spread over connections {connections}, want 2")
    if encrypted:
        failures.append(f"{encrypted:.0f} connection(s) counted as unreadable TLS")
    if not tls_events:
        failures.append("no TLS capture events counted: was the TLS session captured at all?")
    log(f"{len(records)} audit records; TLS events {tls_events:.0f}; cipher {cipher}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
