#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Masking in the MySQL/MariaDB proxy relay (issue 13): a private MariaDB, the real agent in
enforce mode, clients on the server's own port and socket (steered), a policy of the shipped
guardrails plus mask rules.

A `customers` table holds planted values (SSNs, card numbers, a birth date, a salary, a
score, a JSON profile, a blob and an e-mail in free text); a `secrets` table's column is
masked by a rule with on_derived: block; a view and an `orders` table sit beside them.

Checks (none of the outputs may hold a planted value):
- the bypass corpus through the mariadb CLI (text protocol): plain column, alias, function,
  CONCAT, sub-query, derived table, CTE, UNION, SELECT *, view, a join, SQL-level
  PREPARE/EXECUTE, user variables;
- the binary protocol: COM_STMT_PREPARE/EXECUTE by our own libmariadb client
  (clients/my_stmt_client.cc --print 1), every column converted by the client library;
- refusals with a normal error, the session going on: SELECT ... INTO OUTFILE, a masked
  column in WHERE (predicates: block), an expression over the on_derived: block column;
- type safety in pymysql: masked INT, DECIMAL, DATE, JSON and BLOB columns still parse;
- unmasked columns of base tables come through (the proxy's catalog lookup tells the base
  table from the view);
- the content detector masks the e-mail inside free text and leaves other text alone;
- the audit trail: one record per statement, masked ones with dbwarden.masked_values, and no
  planted value in any record.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import datetime
import decimal
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
from pg_cluster import (Agent, PgCluster, read_audit_text, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent)
from test_enforce import write_policy  # noqa: E402

from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402

import pymysql  # noqa: E402

PLANTED = ["123-45-6789", "987-65-4329", "4111111111111111", "5500005555555559", "1980-07-14",
           "1234.50", "770077", "v-planted-json", "PLANTEDBLOB", "ann.planted@example.com",
           "tok-planted-XYZ"]

MASK_RULES = f"""
  - name: mask-customers
    action: mask
    columns: [{TEST_DB}.customers.ssn, {TEST_DB}.customers.card, {TEST_DB}.customers.born,
              {TEST_DB}.customers.salary, {TEST_DB}.customers.score,
              {TEST_DB}.customers.profile, {TEST_DB}.customers.photo]
    detectors: [email]
    style: full
    on_derived: mask
    predicates: block
  - name: secrets-no-derived
    action: mask
    columns: ["{TEST_DB}.secrets.token"]
    style: partial
    on_derived: block
    predicates: block
"""

SETUP = f"""
CREATE TABLE {TEST_DB}.customers (id INT PRIMARY KEY, name VARCHAR(40), ssn VARCHAR(20),
  card VARCHAR(30), born DATE, salary DECIMAL(10,2) NOT NULL, score INT NOT NULL, profile JSON,
  photo BLOB, note TEXT);
INSERT INTO {TEST_DB}.customers VALUES
  (1, 'Ann', '123-45-6789', '4111111111111111', '1980-07-14', 1234.50, 770077,
   '{{"k": "v-planted-json"}}', 'PLANTEDBLOB', 'write to ann.planted@example.com please'),
  (2, 'Bob', '987-65-4329', '5500005555555559', NULL, 99.00, 5, NULL, NULL, 'plain note');
CREATE TABLE {TEST_DB}.orders (id INT, customer_id INT, total INT);
INSERT INTO {TEST_DB}.orders VALUES (10, 1, 4242), (11, 2, 4343);
CREATE TABLE {TEST_DB}.secrets (id INT, token VARCHAR(40));
INSERT INTO {TEST_DB}.secrets VALUES (1, 'tok-planted-XYZ');
CREATE VIEW {TEST_DB}.v_customers AS SELECT id, ssn AS tax_id, name FROM {TEST_DB}.customers;
"""

# (name, SQL) run one by one by the mariadb CLI (--batch); none may print a planted value.
CORPUS = [
    ("plain column", "SELECT ssn FROM customers"),
    ("alias", "SELECT ssn AS x, card AS y FROM customers"),
    ("function", "SELECT UPPER(ssn), LOWER(card), REVERSE(ssn) FROM customers"),
    ("concat", "SELECT CONCAT('x:', ssn, card) FROM customers"),
    ("sub-query", "SELECT (SELECT ssn FROM customers WHERE id = 1) AS s"),
    ("derived table", "SELECT * FROM (SELECT ssn, card FROM customers) d"),
    ("cte", "WITH w AS (SELECT ssn, born FROM customers) SELECT * FROM w"),
    ("union", "SELECT name FROM customers UNION SELECT ssn FROM customers"),
    ("select star", "SELECT * FROM customers"),
    ("view", "SELECT * FROM v_customers"),
    ("join", "SELECT c.ssn, o.total FROM customers c JOIN orders o ON o.customer_id = c.id"),
    ("cast", "SELECT CAST(born AS CHAR), salary + 0, score * 1 FROM customers"),
    ("group_concat", "SELECT GROUP_CONCAT(ssn) FROM customers"),
    ("sql prepare", "PREPARE s FROM 'SELECT ssn, card FROM customers'; EXECUTE s"),
    ("user variable", "SELECT @v := ssn FROM customers; SELECT @v"),
    ("detector", "SELECT note FROM customers"),
]


def cli(server, sql, tcp=True):
    return server.cli(sql, tcp=tcp, force=True)


def check_corpus(server, failures):
    for name, sql in CORPUS:
        for tcp in (True, False):
            r = cli(server, sql + ";\n", tcp)
            out = r.stdout + r.stderr
            leaked = [p for p in PLANTED if p in out]
            if leaked:
                failures.append(f"corpus {name} (tcp={tcp}): planted {leaked} in {out[:400]!r}")
            # EXECUTE and user variables read what the proxy cannot see: the secrets rule's
            # on_derived: block refuses them (fail closed), which is an error here.
            if r.returncode != 0 and name not in ("user variable", "sql prepare"):
                failures.append(f"corpus {name} (tcp={tcp}): failed: {r.stderr.strip()[:300]}")


def check_unmasked(server, failures):
    r = cli(server, "SELECT name, note FROM customers ORDER BY id;\n"
                    "SELECT total FROM orders ORDER BY id;\n")
    for want in ("Ann", "Bob", "plain note", "4242", "4343", "write to "):
        if want not in r.stdout:
            failures.append(f"unmasked columns: {want!r} missing: {r.stdout!r} {r.stderr!r}")
    if "ann.planted@example.com" in r.stdout:
        failures.append("detector: the e-mail in free text was not masked")


def check_refused(server, failures):
    cases = [
        ("into outfile", f"SELECT ssn FROM customers INTO OUTFILE '/tmp/dbw-never-{os.getpid()}'"),
        ("predicate", "SELECT id FROM customers WHERE ssn LIKE '123%'"),
        ("predicate order", "SELECT id FROM customers ORDER BY card"),
        ("on_derived block", "SELECT UPPER(token) FROM secrets"),
    ]
    for name, sql in cases:
        r = cli(server, f"{sql};\nSELECT 'after-{name.replace(' ', '-')}';\n")
        if "ERROR 1143" not in r.stderr:
            failures.append(f"{name}: not refused with ERROR 1143: {r.stdout!r} {r.stderr!r}")
        if f"after-{name.replace(' ', '-')}" not in r.stdout:
            failures.append(f"{name}: the session did not go on: {r.stderr.strip()[:300]}")
        if any(p in r.stdout + r.stderr for p in PLANTED):
            failures.append(f"{name}: a planted value came back")
    if os.path.exists(f"/tmp/dbw-never-{os.getpid()}"):
        failures.append("into outfile: the file was written")
    # The rule's partial style, on the plain column of a table read alone.
    r = cli(server, "SELECT token FROM secrets;\n")
    if "tok-planted-XYZ" in r.stdout or r.returncode != 0 or "*" not in r.stdout:
        failures.append(f"secrets: partial masking: {r.stdout!r} {r.stderr!r}")


def check_binary(stmt_client, server, failures):
    sql = "SELECT id, name, ssn, card, born, salary, score, profile, photo, note " \
          "FROM customers ORDER BY id"
    for where in (["--port", str(server.port)], ["--socket", server.socket_path]):
        r = subprocess.run([stmt_client] + where + ["--user", APP_USER, "--password",
                           APP_PASSWORD, "--database", TEST_DB, "--exec", sql, "--print", "1"],
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = r.stdout + r.stderr
        if r.returncode != 0 or "OUTCOME 00000 2" not in r.stdout:
            failures.append(f"binary protocol {where[0]}: failed: {out[:400]!r}")
        leaked = [p for p in PLANTED if p in out]
        if leaked:
            failures.append(f"binary protocol {where[0]}: planted {leaked}: {out[:400]!r}")
        rows = [line.split("\t") for line in r.stdout.splitlines() if "\t" in line]
        if len(rows) != 2 or rows[0][1] != "Ann" or rows[1][1] != "Bob":
            failures.append(f"binary protocol {where[0]}: unmasked name lost: {rows}")
        elif rows[0][4] != "1970-01-01" or rows[0][6] != "0":
            failures.append(f"binary protocol {where[0]}: masked date/int not their "
                            f"substitutes: {rows[0]}")


def check_pymysql(server, failures):
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user=APP_USER,
                           password=APP_PASSWORD, database=TEST_DB, connect_timeout=10)
    try:
        cur = conn.cursor()
        cur.execute("SELECT id, ssn, born, salary, score, profile, photo, note FROM customers "
                    "ORDER BY id")
        rows = cur.fetchall()
        text = repr(rows)
        leaked = [p for p in PLANTED if p in text]
        if leaked:
            failures.append(f"pymysql: planted {leaked} in {text[:400]}")
        first = rows[0]
        if not isinstance(first[2], datetime.date):
            failures.append(f"pymysql: masked DATE did not parse as a date: {first[2]!r}")
        if not isinstance(first[3], decimal.Decimal):
            failures.append(f"pymysql: masked DECIMAL did not parse: {first[3]!r}")
        if not isinstance(first[4], int):
            failures.append(f"pymysql: masked INT did not parse: {first[4]!r}")
        if not isinstance(first[6], (bytes, type(None))):
            failures.append(f"pymysql: masked BLOB is not bytes: {first[6]!r}")
        if first[5] is not None and not isinstance(first[5], str):
            failures.append(f"pymysql: masked JSON is not text: {first[5]!r}")
        # The session goes on after a refusal.
        try:
            cur.execute("SELECT id FROM customers WHERE ssn > 'a'")
            failures.append("pymysql: a masked column in WHERE was not refused")
        except pymysql.MySQLError as e:
            if e.args[0] != 1143:
                failures.append(f"pymysql: wrong refusal: {e}")
        cur.execute("SELECT 'pymysql-after'")
        if cur.fetchone()[0] != "pymysql-after":
            failures.append("pymysql: the session did not go on")
    finally:
        conn.close()


def check_audit(audit, failures):
    try:
        text = read_audit_text(audit)
    except FileNotFoundError:
        failures.append("no audit file")
        return
    leaked = [p for p in PLANTED if p in text]
    if leaked:
        failures.append(f"audit: planted values {leaked} in the trail")
    if '"dbwarden.masked_values"' not in text:
        failures.append("audit: no record says dbwarden.masked_values")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--stmt-client", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers)")
    return pg_cluster.in_workdir("dbw-enforce-mask-my-", False,
                                 lambda workdir: attempt(args, workdir))


def steer_dir():
    return f"/sys/fs/bpf/dbw-steer-mask-my-{os.getpid()}"


def attempt(args, workdir):
    os.makedirs(os.path.join(workdir, "proxy"), exist_ok=True)
    policy = write_policy(workdir)
    with open(policy, "a") as f:
        f.write(MASK_RULES)
    failures = []
    try:
        run(args, workdir, policy, failures)
    finally:
        subprocess.run([args.agent, "steering", "detach", "--steer-pin-dir", steer_dir()],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    for f in failures:
        print(f"FAIL: {f}")
    if failures:
        return 1
    print("PASS")
    return 0


def run(args, workdir, policy, failures):
    # Enforce mode protects a PostgreSQL port too (5432 unless one is named): a private one.
    with PgCluster() as cluster, MariaDB() as server:
        server.setup_sql(SETUP)
        os.chmod(server.base, 0o755)
        audit = os.path.join(workdir, "audit.jsonl")
        agent = Agent(args.agent, audit, [cluster.port],
                      extra_args=["--mode", "enforce", "--policy", policy,
                                  "--fail-mode", "closed", "--mysql-port", str(server.port),
                                  "--steer-pin-dir", steer_dir(),
                                  "--proxy-socket-dir", os.path.join(workdir, "proxy")])
        rc = start_agent(agent)
        if rc is not None:
            failures.append(f"the agent did not start (exit {rc})")
            return
        checks = [("corpus", check_corpus, (server, failures)),
                  ("unmasked", check_unmasked, (server, failures)),
                  ("refused", check_refused, (server, failures)),
                  ("binary", check_binary, (args.stmt_client, server, failures)),
                  ("pymysql", check_pymysql, (server, failures))]
        try:
            for name, check, check_args in checks:
                try:
                    check(*check_args)
                except Exception as e:  # noqa: BLE001 (reported, never swallowed)
                    failures.append(f"{name}: {type(e).__name__}: {e}")
        finally:
            if stop_agent(agent) is not None:
                failures.append("the agent did not stop cleanly")
            agent.detach(check=False)
            subprocess.run([args.agent, "steering", "detach", "--steer-pin-dir", steer_dir()],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        check_audit(audit, failures)


if __name__ == "__main__":
    sys.exit(main())
