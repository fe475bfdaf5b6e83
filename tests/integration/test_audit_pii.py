#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The audit trail is not a PII store (issue 13, item 4): real PostgreSQL, real clients, real
capture.

One agent observes a private PostgreSQL with a policy whose mask rules name content
detectors (`--policy`; observe mode uses only the detectors), bound values recorded
(--record-parameters), the framed trail, the metrics endpoint and --log-level debug. Planted
values — payment cards, e-mail addresses, US SSNs, API tokens, an IBAN — go through psql
(literals, several statements in one message, statements that fail with the value in the
server's error message), psycopg2 and pgbench -M extended / -M prepared (bound values).

Checks: no planted value in `dbwarden audit cat`'s output, the /metrics text or the agent's
log; every statement's record is there, with "[masked:<detector>]" where the value was and
"dbwarden.redacted": true; a 16-digit number failing Luhn is left alone.

Exit 77 (skip) without root, or 1 instead when DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psycopg2  # noqa: E402
from pg_cluster import (Agent, PgCluster, log, make_workdir, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent, verdict)

CARD = "4539578763621486"
CARD2 = "5555555555554444"
EMAIL = "carol.planted@example.org"
EMAIL2 = "dave.planted@example.net"
SSN = "536-22-8107"
TOKEN = "sk_live_9fQ2pLmN4xR7tV1wZ3yB6cD8"
AWS = "AKIAJ7Q3PLANTEDX4Z2A"
IBAN = "DE89370400440532013000"
PLANTED = [CARD, CARD2, EMAIL, EMAIL2, SSN, TOKEN, AWS, IBAN]
NEAR_MISS = "4539578763621487"  # fails Luhn: must stay

POLICY = """\
rules:
  - name: no-drop
    match: {operation: DROP TABLE}
    action: block
  - name: pii-for-analysts
    match: {user: analyst}
    action: mask
    detectors: [payment_card, email, us_ssn]
  - name: secrets
    action: mask
    detectors: [token, iban]
"""


def psql(cluster, sql):
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=0", "-c", sql],
                          env=cluster.client_env(), text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


def pgbench(cluster, workdir, script, mode, var):
    path = os.path.join(workdir, f"pii-{mode}.sql")
    with open(path, "w") as f:
        f.write(script)
    return subprocess.run(["pgbench", "-n", "-t", "1", "-M", mode, "-D", f"v={var}", "-f", path],
                          env=cluster.client_env(), text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


def workload(cluster, workdir, failures):
    """Each statement carries a tag (mNN) its record is found by."""
    statements = [
        f"INSERT INTO pii_t VALUES (1, '{CARD}', '{EMAIL}', '{SSN}') -- m01",
        f"SELECT count(*) AS m02 FROM pii_t WHERE card = '{CARD}' OR email = '{EMAIL2}'",
        f"SELECT 1 AS m03; UPDATE pii_t SET note = 'token {TOKEN} iban {IBAN}' WHERE id = 1",
        f"SELECT '{EMAIL}'::int AS m04",                  # error message quotes the value
        f"SELECT '{SSN}'::date AS m05",                   # likewise
        f"INSERT INTO pii_t VALUES (1, '{CARD2}', '{EMAIL2}', 'x') -- m06",  # duplicate key
        f"SELECT '{NEAR_MISS}' AS m07",
    ]
    for sql in statements:
        psql(cluster, sql)
    conn = psycopg2.connect(host=cluster.socket_dir, port=cluster.port, user="postgres",
                            dbname="postgres", connect_timeout=10)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT %s AS m08, %s AS m08b", (AWS, EMAIL2))
    conn.close()
    for mode, tag in (("extended", "m09"), ("prepared", "m10")):
        r = pgbench(cluster, workdir, f"SELECT CAST(:v AS text) AS {tag};\n", mode, TOKEN)
        if r.returncode != 0:
            failures.append(f"pgbench -M {mode}: {r.stderr.strip()[:300]}")
    return ["m01", "m02", "m04", "m05", "m06", "m07", "m08", "m09", "m10",
            f"UPDATE pii_t SET note"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs")
    workdir = make_workdir("dbw-audit-pii-")
    policy = os.path.join(workdir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    audit = os.path.join(workdir, "audit.zst")
    failures = []
    with PgCluster() as cluster:
        cluster.setup_sql("CREATE TABLE pii_t (id int PRIMARY KEY, card text, email text, "
                          "ssn text, note text)")
        agent = Agent(args.agent, audit, [cluster.port], audit_format="zst",
                      extra_args=["--policy", policy, "--record-parameters", "true",
                                  "--log-level", "debug"])
        rc = start_agent(agent)
        if rc is not None:
            return rc
        try:
            tags = workload(cluster, workdir, failures)
            agent.wait_audit_settled(timeout=30, quiet=2.0)
            metrics = agent.scrape()
        finally:
            if stop_agent(agent) is not None:
                failures.append("the agent did not stop cleanly")
    cat = subprocess.run([args.agent, "audit", "cat", audit], text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=60)
    if cat.returncode != 0:
        failures.append(f"audit cat: {cat.stderr.strip()}")
    outputs = {"audit cat": cat.stdout, "metrics": metrics, "agent log": agent.stderr}
    for name, text in outputs.items():
        for v in PLANTED:
            if v in text:
                failures.append(f"{name}: planted value {v} appears")
    records = [json.loads(line) for line in cat.stdout.splitlines() if line.strip()]
    for tag in tags:
        got = [r for r in records if tag in r.get("db.query.text", "")]
        if not got:
            failures.append(f"no record for {tag}")
            continue
        r = got[0]
        if tag == "m07":
            if NEAR_MISS not in r["db.query.text"] or r.get("dbwarden.redacted"):
                failures.append(f"the near-miss was changed: {r}")
            continue
        blob = json.dumps(r)
        if "[masked:" not in blob or r.get("dbwarden.redacted") is not True:
            failures.append(f"{tag}: record without a masked item or redacted flag: {blob[:400]}")
    m01 = [r for r in records if "m01" in r.get("db.query.text", "")]
    want = ("INSERT INTO pii_t VALUES (1, '[masked:payment_card]', '[masked:email]', "
            "'[masked:us_ssn]') -- m01")
    if m01 and m01[0]["db.query.text"] != want:
        failures.append(f"m01 text {m01[0]['db.query.text']!r}, want {want!r}")
    errors = [r for r in records if "m04" in r.get("db.query.text", "")]
    if errors and "[masked:email]" not in json.dumps(errors[0]):
        failures.append(f"m04's error message not masked: {errors[0]}")
    log(f"{len(records)} records checked")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
