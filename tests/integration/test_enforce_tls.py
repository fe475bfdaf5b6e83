#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Enforcement with TLS toward clients (issue 12, item 3): the proxy terminates the client's
TLS with the configured certificate and key, and relays the plaintext upstream.

A self-signed certificate is made by the test (openssl CLI, in its own temporary directory).
Checks, through the steered path (clients connect to the server's own 127.0.0.1 port):
- with proxy-tls-cert-file/-key-file: psql sslmode=require works and the session is TLS
  (pg_stat_ssl sees the upstream leg as plaintext, psql's \\conninfo says SSL), verify-ca
  with the certificate as CA works; a shipped guardrail blocks over TLS and the session goes
  on; the audit record carries the statement and the client's identity (psql's process);
  sslmode=disable still works; psycopg2 with
  sslmode=require runs a query;
- SCRAM: channel_binding=prefer logs in over TLS (the proxy's upstream is plaintext, so
  SCRAM-SHA-256-PLUS is never offered and the client's "y" flag is accepted);
  channel_binding=require fails, saying the server offered no channel binding;
- without a certificate: sslmode=require fails with the server-does-not-support-SSL error,
  sslmode=prefer goes on in plaintext;
- MariaDB with the certificate: the greeting offers TLS, `mariadb --ssl` (the CLI reports a
  cipher) and pymysql with ssl log in through the proxy's TLS, a guardrail blocks, records
  are written; without --ssl the CLI still works; without a certificate `mariadb --ssl`
  goes on in plaintext, as against a server without SSL;
- SIGHUP reloads the certificate and key: a pair that does not match keeps the running one
  (new clients still get it, logged, dbwarden_proxy_tls_reload_failures_total counts it); a
  good new pair is served to the next client;
- a certificate that does not load, or a key that does not match it, is a clear startup error.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pg_cluster  # noqa: E402
from pg_cluster import (AgentError, PgCluster, log, read_audit, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent)
from test_enforce import records_with, write_policy  # noqa: E402
from enforce_harness import EnforceAgent  # noqa: E402

from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402

import psycopg2  # noqa: E402
import pymysql  # noqa: E402

SCRAM_USER = "scram_u"
SCRAM_PASSWORD = "s3cret-pw"


def self_signed(workdir, name, cn):
    cert, key = os.path.join(workdir, f"{name}.crt"), os.path.join(workdir, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={cn}", "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def make_cert(workdir):
    cert, key = self_signed(workdir, "proxy", "localhost")
    other_key = os.path.join(workdir, "other.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", other_key], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key, other_key


def psql(cluster, sql, sslmode, sslrootcert=None, **env_kw):
    env = cluster.client_env(tcp=True, **env_kw)
    env["PGSSLMODE"] = sslmode
    if sslrootcert:
        env["PGSSLROOTCERT"] = sslrootcert
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=0"], input=sql, text=True,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def check_with_cert(cluster, cert, failures):
    r = psql(cluster, "\\conninfo\nSELECT 'tls-' || 'ok';\n"
             "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n", "require")
    if r.returncode != 0 or "tls-ok" not in r.stdout:
        failures.append(f"sslmode=require did not work: rc {r.returncode} {r.stderr.strip()}")
    if "SSL connection" not in r.stdout:
        failures.append(f"sslmode=require: psql does not report SSL: {r.stdout.strip()}")
    # The server's leg is plaintext: the proxy terminated the client's TLS.
    if not r.stdout.strip().endswith("f"):
        failures.append(f"sslmode=require: the upstream leg is not plaintext: {r.stdout!r}")

    r = psql(cluster, "DROP TABLE guard_t;\nSELECT 'after-block-tls';\n", "require")
    if "ERROR" not in r.stderr:
        failures.append(f"over TLS: DROP TABLE was not blocked: {r.stderr.strip()[:300]}")
    if "after-block-tls" not in r.stdout:
        failures.append(f"over TLS: the session did not go on after a block: {r.stderr[:300]}")
    c = cluster.psql(["-At", "-c", "SELECT count(*) FROM guard_t"], check=False, tcp=True)
    if c.stdout.strip() != "1":
        failures.append(f"over TLS: guard_t is gone or changed: {c.stdout} {c.stderr}")

    # The client checks the proxy's certificate against it as its CA.
    r = psql(cluster, "SELECT 'verified';\n", "verify-ca", sslrootcert=cert)
    if r.returncode != 0 or "verified" not in r.stdout:
        failures.append(f"sslmode=verify-ca with the proxy's certificate failed: {r.stderr}")

    r = psql(cluster, "SELECT 'plain-' || 'ok';\n", "disable")
    if r.returncode != 0 or "plain-ok" not in r.stdout:
        failures.append(f"sslmode=disable did not work: {r.stderr.strip()}")

    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                            dbname="postgres", sslmode="require", connect_timeout=10)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 'psycopg2-tls'")
        if cur.fetchone()[0] != "psycopg2-tls":
            failures.append("psycopg2 over TLS: wrong result")
        # A result larger than one TLS record and than the proxy's read chunk.
        cur.execute("SELECT repeat('x', 300000)")
        if len(cur.fetchone()[0]) != 300000:
            failures.append("psycopg2 over TLS: a 300 kB value came back wrong")
    finally:
        conn.close()

    env_kw = {"user": SCRAM_USER, "password": SCRAM_PASSWORD}
    env = cluster.client_env(tcp=True, **env_kw)
    env.update(PGSSLMODE="require", PGCHANNELBINDING="prefer")
    r = subprocess.run(["psql", "-X", "-At", "-c", "SELECT 'scram-' || 'prefer'"], env=env,
                       text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0 or "scram-prefer" not in r.stdout:
        failures.append(f"SCRAM over TLS, channel_binding=prefer failed: {r.stderr.strip()}")
    env["PGCHANNELBINDING"] = "require"
    r = subprocess.run(["psql", "-X", "-At", "-c", "SELECT 1"], env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode == 0 or "channel binding" not in r.stderr:
        failures.append(f"SCRAM over TLS, channel_binding=require did not fail clearly: rc "
                        f"{r.returncode} {r.stderr.strip()}")


def check_mariadb_with_cert(server, cert, failures):
    r = server.cli("SELECT 'my-tls-ok';\n", force=True, tcp=True)
    if r.returncode != 0 or "my-tls-ok" not in r.stdout:
        failures.append(f"mariadb without --ssl through a TLS proxy failed: {r.stderr.strip()}")
    args = server.client_args(tcp=True) + ["--ssl", f"--ssl-ca={cert}", "--batch", "--force"]
    r = subprocess.run(args + ["-e", "status"], text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if "Cipher in use" not in r.stdout:
        failures.append(f"mariadb --ssl: the CLI does not report TLS: rc {r.returncode} "
                        f"{r.stderr.strip()} {r.stdout[:600]}")
    # `status` first: its COM_STATISTICS once left the decoder busy, and the blocked
    # statement after it waited for an idle server for ever.
    r = subprocess.run(args, input="status;\nSELECT 'my-tls-on';\nDROP TABLE my_guard_t;\n"
                       "SELECT 'my-after-block';\n", text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if "my-tls-on" not in r.stdout:
        failures.append(f"mariadb --ssl did not work: rc {r.returncode} {r.stderr.strip()}")
    if "ERROR" not in r.stderr or "my-after-block" not in r.stdout:
        failures.append(f"mariadb --ssl: DROP TABLE not blocked or the session ended: "
                        f"{r.stderr.strip()[:300]}")
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user=APP_USER,
                           password=APP_PASSWORD, database=TEST_DB, connect_timeout=10,
                           ssl_ca=cert, ssl_verify_cert=True, ssl_verify_identity=False)
    try:
        if not getattr(conn._sock, "version", lambda: None)():
            failures.append("pymysql with ssl: the connection is not TLS")
        cur = conn.cursor()
        cur.execute("SELECT 'pymysql-tls'")
        if cur.fetchone()[0] != "pymysql-tls":
            failures.append("pymysql over TLS: wrong result")
        try:
            cur.execute("DELETE FROM guard_t")
            failures.append("pymysql over TLS: DELETE without WHERE was not blocked")
        except pymysql.MySQLError:
            pass
        cur.execute("SELECT repeat('y', 300000)")
        if len(cur.fetchone()[0]) != 300000:
            failures.append("pymysql over TLS: a 300 kB value came back wrong")
    finally:
        conn.close()


def check_tls_metrics(agent, cluster, failures):
    # A client that says SSLRequest, gets 'S', then sends no TLS: closed and counted.
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as s:
        s.sendall(struct.pack("!ii", 8, 80877103))
        if s.recv(1) != b"S":
            failures.append("metrics: SSLRequest was not answered 'S'")
        s.sendall(b"this is not a TLS record, not at all\r\n")
        rest = s.recv(4096)  # an alert, then the end
        while rest:
            rest = s.recv(4096)
    deadline = time.monotonic() + 10
    while True:
        text = agent.scrape()
        done = agent.metric_sum("dbwarden_proxy_tls_handshakes_total", text) or 0
        failed = agent.metric_sum("dbwarden_proxy_tls_failures_total", text) or 0
        if (done >= 6 and failed >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if done < 6 or failed < 1:
        failures.append(f"metrics: {done} TLS handshakes (expected at least 6), {failed} "
                        "failures (expected at least 1)")


def served_certificate(cluster):
    """The certificate the proxy shows a new PostgreSQL client (SSLRequest, then a handshake
    that verifies nothing), DER."""
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as s:
        s.sendall(struct.pack("!ii", 8, 80877103))
        if s.recv(1) != b"S":
            raise RuntimeError("SSLRequest was not answered 'S'")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def der_of(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def wait_served(cluster, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = served_certificate(cluster)
        if got == want or time.monotonic() > deadline:
            return got == want
        time.sleep(0.2)


def check_reload(agent, cluster, live, workdir, failures):
    """SIGHUP with a mismatched pair keeps the running one; with a good new pair the next
    client gets the new certificate."""
    live_cert, live_key = live
    first = der_of(live_cert)
    if served_certificate(cluster) != first:
        failures.append("reload: the proxy does not serve its configured certificate")
        return
    new_cert, new_key = self_signed(workdir, "renewed", "renewed.localhost")
    shutil.copyfile(new_cert, live_cert)  # the key still the old one: a bad pair
    os.kill(agent.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (agent.metric_sum("dbwarden_proxy_tls_reload_failures_total") or 0) >= 1:
            break
        time.sleep(0.3)
    else:
        failures.append("reload: a mismatched pair was not counted in "
                        "dbwarden_proxy_tls_reload_failures_total")
    if "the running certificate and key stay" not in agent.stderr:
        failures.append("reload: a mismatched pair was not logged")
    if served_certificate(cluster) != first:
        failures.append("reload: after a bad pair the proxy no longer serves the running one")
    r = psql(cluster, "SELECT 'after-bad-' || 'reload';\n", "require")
    if "after-bad-reload" not in r.stdout:
        failures.append(f"reload: TLS clients fail after a bad pair: {r.stderr.strip()}")
    shutil.copyfile(new_key, live_key)
    os.kill(agent.pid, signal.SIGHUP)
    if not wait_served(cluster, der_of(new_cert)):
        failures.append("reload: the renewed certificate is not served after SIGHUP")
    r = psql(cluster, "SELECT 'after-good-' || 'reload';\n", "require", sslrootcert=new_cert)
    if "after-good-reload" not in r.stdout:
        failures.append(f"reload: verify-ca against the renewed certificate failed: "
                        f"{r.stderr.strip()}")
    log("reload: a bad pair kept the running certificate, a good one replaced it")


def check_records(audit, failures):
    records, bad = read_audit(audit)
    failures.extend(bad)
    for text, blocked in (("SELECT 'tls-' || 'ok'", False), ("DROP TABLE guard_t", True),
                          ("SELECT 'plain-' || 'ok'", False), ("SELECT 'psycopg2-tls'", False),
                          ("SELECT 'scram-' || 'prefer'", False), ("SELECT 'my-tls-on'", False),
                          ("SELECT 'pymysql-tls'", False), ("DELETE FROM guard_t", True),
                          ("DROP TABLE my_guard_t", True)):
        got = records_with(records, text)
        if len(got) != 1:
            failures.append(f"records: {text!r}: {len(got)} records, expected 1")
            continue
        r = got[0]
        if blocked != (r.get("dbwarden.policy.action") == "block"):
            failures.append(f"records: {text!r}: wrong decision: {r}")
        if "psycopg2" in text or "pymysql" in text or "DELETE" in text:
            continue
        client = "mariadb" if "my-" in text or "my_" in text else "psql"
        if r.get("client.process.command") != client or r.get("db.user") is None:
            failures.append(f"records: {text!r}: the client's identity is missing: {r}")


def check_without_cert(args, cluster, server, workdir, policy, failures):
    audit = os.path.join(workdir, "audit-nocert.jsonl")
    agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy,
                         mysql_port=server.port)
    rc = start_agent(agent)
    if rc is not None:
        failures.append("the agent without a certificate did not start")
        return
    try:
        r = psql(cluster, "SELECT 1;\n", "require")
        if r.returncode == 0 or "server does not support SSL" not in r.stderr:
            failures.append(f"no certificate: sslmode=require did not fail as without SSL: "
                            f"rc {r.returncode} {r.stderr.strip()}")
        r = psql(cluster, "SELECT 'prefer-' || 'plain';\n", "prefer")
        if "prefer-plain" not in r.stdout:
            failures.append(f"no certificate: sslmode=prefer did not go on: {r.stderr.strip()}")
        # TLS is not offered: the MariaDB 10.x CLI's --ssl (no verification) goes on in
        # plaintext, as against a server without SSL.
        r = subprocess.run(server.client_args(tcp=True) + ["--ssl", "-e", "status"], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0 or "Not in use" not in r.stdout:
            failures.append(f"no certificate: mariadb --ssl did not go on in plaintext: "
                            f"rc {r.returncode} {r.stderr.strip()} {r.stdout[:400]}")
        r = server.cli("SELECT 'my-plain';", tcp=True)
        if "my-plain" not in r.stdout:
            failures.append(f"no certificate: mariadb without --ssl failed: {r.stderr.strip()}")
    finally:
        if stop_agent(agent) is not None:
            failures.append("the agent without a certificate did not stop cleanly")
        agent.detach(check=False)


def check_bad_files(args, cluster, workdir, policy, cert, key, other_key, failures):
    garbage = os.path.join(workdir, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    cases = [("missing certificate", os.path.join(workdir, "nope.crt"), key, "nope.crt"),
             ("garbage certificate", garbage, key, "garbage.pem"),
             ("key of another certificate", cert, other_key, "does not match")]
    for name, c, k, expect in cases:
        agent = EnforceAgent(args.agent, os.path.join(workdir, "audit-bad.jsonl"),
                             [cluster.port], workdir, policy, tls=(c, k), ready_timeout=60)
        try:
            agent.start()
            failures.append(f"{name}: the agent started")
            agent.stop()
        except AgentError as e:
            if "proxy-tls-cert-file" not in e.stderr or expect not in e.stderr:
                failures.append(f"{name}: unclear startup error: {e.stderr.strip()[-400:]}")
        agent.detach(check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers)")
    # The work directory (the test's private keys with it) goes after a pass.
    return pg_cluster.in_workdir("dbw-enforce-tls-", False, lambda workdir: attempt(args, workdir))


def attempt(args, workdir):
    failures = []
    policy = write_policy(workdir)
    cert, key, other_key = make_cert(workdir)
    return run(args, workdir, policy, cert, key, other_key, failures)


def run(args, workdir, policy, cert, key, other_key, failures):
    hba = [("host", "scram-sha-256", SCRAM_USER)]
    with PgCluster(hba_rules=hba) as cluster, MariaDB() as server:
        server.setup_sql(f"CREATE TABLE {TEST_DB}.guard_t (id int, v int); "
                         f"INSERT INTO {TEST_DB}.guard_t VALUES (1, 1)")
        cluster.setup_sql("CREATE TABLE guard_t (id int, v int); INSERT INTO guard_t VALUES "
                          f"(1, 1); CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{SCRAM_PASSWORD}'")
        audit = os.path.join(workdir, "audit.jsonl")
        # The files the agent reads, replaced by the reload check (a renewal).
        live = (os.path.join(workdir, "live.crt"), os.path.join(workdir, "live.key"))
        shutil.copyfile(cert, live[0])
        shutil.copyfile(key, live[1])
        agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy, tls=live,
                             mysql_port=server.port)
        rc = start_agent(agent)
        if rc is not None:
            return rc
        try:
            check_with_cert(cluster, cert, failures)
            check_mariadb_with_cert(server, cert, failures)
            check_tls_metrics(agent, cluster, failures)
            check_reload(agent, cluster, live, workdir, failures)
        except Exception as e:  # noqa: BLE001 (reported, never swallowed)
            failures.append(f"with a certificate: {type(e).__name__}: {e}")
        finally:
            if stop_agent(agent) is not None:
                failures.append("the agent with a certificate did not stop cleanly")
            agent.teardown()
        check_records(audit, failures)
        check_without_cert(args, cluster, server, workdir, policy, failures)
        check_bad_files(args, cluster, workdir, policy, cert, key, other_key, failures)
    for f in failures:
        print(f"FAIL: {f}")
    if failures:
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
