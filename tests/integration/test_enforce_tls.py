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
- a certificate that does not load, or a key that does not match it, is a clear startup error.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pg_cluster  # noqa: E402
from pg_cluster import (Agent, AgentError, PgCluster, read_audit, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent)
from test_enforce import records_with, write_policy  # noqa: E402

import psycopg2  # noqa: E402

SCRAM_USER = "scram_u"
SCRAM_PASSWORD = "s3cret-pw"


def steer_dir():
    return f"/sys/fs/bpf/dbw-steer-tls-test-{os.getpid()}"


def enforce_args(workdir, policy, *tls):
    args = ["--mode", "enforce", "--policy", policy, "--fail-mode", "closed",
            "--steer-pin-dir", steer_dir(),
            "--proxy-socket-dir", os.path.join(workdir, "proxy")]
    if tls:
        args += ["--proxy-tls-cert-file", tls[0], "--proxy-tls-key-file", tls[1]]
    return args


def make_cert(workdir):
    cert, key = os.path.join(workdir, "proxy.crt"), os.path.join(workdir, "proxy.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def check_records(audit, failures):
    records, bad = read_audit(audit)
    failures.extend(bad)
    for text, blocked in (("SELECT 'tls-' || 'ok'", False), ("DROP TABLE guard_t", True),
                          ("SELECT 'plain-' || 'ok'", False), ("SELECT 'psycopg2-tls'", False),
                          ("SELECT 'scram-' || 'prefer'", False)):
        got = records_with(records, text)
        if len(got) != 1:
            failures.append(f"records: {text!r}: {len(got)} records, expected 1")
            continue
        r = got[0]
        if blocked != (r.get("dbwarden.policy.action") == "block"):
            failures.append(f"records: {text!r}: wrong decision: {r}")
        if text.startswith("SELECT 'psycopg2"):
            continue
        if r.get("client.process.command") != "psql" or r.get("db.user") is None:
            failures.append(f"records: {text!r}: the client's identity is missing: {r}")


def check_without_cert(args, cluster, workdir, policy, failures):
    audit = os.path.join(workdir, "audit-nocert.jsonl")
    agent = Agent(args.agent, audit, [cluster.port],
                  extra_args=enforce_args(workdir, policy))
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
        agent = Agent(args.agent, os.path.join(workdir, "audit-bad.jsonl"), [cluster.port],
                      extra_args=enforce_args(workdir, policy, c, k),
                      ready_timeout=60)
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
    workdir = pg_cluster.make_workdir("dbw-enforce-tls-")
    os.makedirs(os.path.join(workdir, "proxy"), exist_ok=True)
    failures = []
    policy = write_policy(workdir)
    cert, key, other_key = make_cert(workdir)
    try:
        return run(args, workdir, policy, cert, key, other_key, failures)
    finally:
        # Fail closed keeps steering after a clean stop: the test's own pins go.
        subprocess.run([args.agent, "steering", "detach", "--steer-pin-dir", steer_dir()],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def run(args, workdir, policy, cert, key, other_key, failures):
    hba = [("host", "scram-sha-256", SCRAM_USER)]
    with PgCluster(hba_rules=hba) as cluster:
        cluster.setup_sql("CREATE TABLE guard_t (id int, v int); INSERT INTO guard_t VALUES "
                          f"(1, 1); CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{SCRAM_PASSWORD}'")
        audit = os.path.join(workdir, "audit.jsonl")
        agent = Agent(args.agent, audit, [cluster.port],
                      extra_args=enforce_args(workdir, policy, cert, key))
        rc = start_agent(agent)
        if rc is not None:
            return rc
        try:
            check_with_cert(cluster, cert, failures)
        except Exception as e:  # noqa: BLE001 (reported, never swallowed)
            failures.append(f"with a certificate: {type(e).__name__}: {e}")
        finally:
            if stop_agent(agent) is not None:
                failures.append("the agent with a certificate did not stop cleanly")
            agent.detach(check=False)
        check_records(audit, failures)
        check_without_cert(args, cluster, workdir, policy, failures)
        check_bad_files(args, cluster, workdir, policy, cert, key, other_key, failures)
    for f in failures:
        print(f"FAIL: {f}")
    if failures:
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
