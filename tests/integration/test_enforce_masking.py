#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Masking in the PostgreSQL proxy (issue 13), end to end: a private PostgreSQL, steered
through `dbwarden run --mode enforce` with mask rules, real clients (psql, psycopg2).

A table holds planted values: a secret no detector knows (only the column rule can hide it),
US SSNs, payment cards and e-mails in free text (the content detectors' job), and typed
columns (int, numeric, date, uuid, json, bytea) under a column rule.

Checks:
- a bypass corpus (alias, function, cast, concatenation, sub-query, CTE, UNION, SELECT *,
  whole-row, RETURNING, COPY TO STDOUT text and CSV, cursor FETCH, prepared statement with
  binary results, extended protocol through psycopg2's server-side cursor, views, a view
  that renames the masked column, a view inside a transaction block): no result
  carries a planted value, through psql and psycopg2, over TCP and the unix socket;
- masked int, numeric, date, uuid, json and bytea columns still parse in psycopg2;
- a near-miss (16 digits failing Luhn) is left alone;
- on_derived: block refuses a derived column with an error, and the session goes on;
- column lineage through the proxy's catalog: `SELECT name, ssn` masks ssn only;
  predicates: block refuses a masked column in WHERE / ORDER BY / GROUP BY (42501, also
  through a view), predicates: allow runs;
- a table no rule names streams through unchanged;
- the reach set is shared: after DDL, of four new psycopg2 connections of the same start
  only the first asks the server for it (counted per backend in the server's log), the
  others mask the same without a query; DDL from one connection renews it for an open one,
  which then masks a view made by that DDL inside its transaction;
- audit records carry dbwarden.masked_columns / masked_values, the metrics
  dbwarden_masked_values_total{rule,detector}; no planted value in the audit trail, the
  metrics or the agent's log.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
from pg_cluster import (Agent, PgCluster, log, read_audit_text, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent, verdict)

import psycopg2  # noqa: E402

SECRET = "PLANTED-SECRET-7Q4Z"
SSN = "123-45-6789"
CARD = "4111111111111111"
EMAIL = "planted.person@example.com"
NEAR_MISS = "4111111111111112"  # fails Luhn: not a card
STAFF_SSN = "STAFF-SSN-PLANTED-9X"  # no detector knows it: only the column rule hides it
STAFF_NAME = "staff-name-visible"
PLANTED = [SECRET, STAFF_SSN, SSN, CARD, EMAIL, "4111 1111 1111 1111", "12345.67", "1987-06-05",
           "9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b", "planted-json-value", "706c616e746564"]

POLICY = """rules:
  - name: people-columns
    action: mask
    columns: ["public.people.secret", "public.people.amount", "public.people.born",
              "public.people.uid", "public.people.doc", "public.people.blob",
              "public.people.id"]
    style: full
    predicates: allow
  - name: cards-derived
    action: mask
    columns: ["public.vault.*"]
    on_derived: block
  - name: pii-content
    action: mask
    detectors: [email, payment_card, us_ssn]
  - name: staff-ssn
    action: mask
    columns: ["public.staff.ssn"]
    predicates: block
"""

SETUP = f"""
CREATE TABLE people (id int PRIMARY KEY, secret text, amount numeric, born date, uid uuid,
                     doc json, blob bytea, note text);
INSERT INTO people VALUES
  (1, '{SECRET}', 12345.67, '1987-06-05', '9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b',
   '{{"k": "planted-json-value"}}', 'planted'::bytea,
   'ssn {SSN} card 4111 1111 1111 1111 mail {EMAIL} near {NEAR_MISS}'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, 'card {CARD}');
CREATE TABLE vault (k text);
INSERT INTO vault VALUES ('vault-value');
CREATE TABLE plain_t (a int, b text);
INSERT INTO plain_t VALUES (1, 'plain-value');
CREATE TABLE notes_t (note text);
INSERT INTO notes_t VALUES ('near {NEAR_MISS} real {CARD} mail {EMAIL}');
CREATE TABLE staff (name text, ssn text);
INSERT INTO staff VALUES ('{STAFF_NAME}', '{STAFF_SSN}');
CREATE VIEW people_view AS SELECT id, secret, note FROM people;
CREATE VIEW renamed_view AS SELECT secret AS alias_col, note AS n FROM people;
CREATE VIEW staff_view AS SELECT name AS who, ssn AS hidden FROM staff;
CREATE VIEW tx_view AS SELECT name AS who, ssn AS hidden FROM staff;
"""

# The bypass corpus: each statement reads a planted value some way.
CORPUS = [
    ("plain", "SELECT secret, note FROM people"),
    ("alias", "SELECT secret AS s, p.note AS n FROM people p"),
    ("function", "SELECT upper(secret), lower(note) FROM people"),
    ("cast", "SELECT secret::varchar, amount::text, born::text FROM people"),
    ("concatenation", "SELECT 'x' || secret || 'y', note || '' FROM people"),
    ("sub-query", "SELECT s FROM (SELECT secret AS s FROM people) q"),
    ("scalar sub-query", "SELECT (SELECT secret FROM people WHERE id = 1)"),
    ("cte", "WITH c AS (SELECT secret, note FROM people) SELECT * FROM c"),
    ("union", "SELECT secret FROM people UNION ALL SELECT b FROM plain_t"),
    ("select star", "SELECT * FROM people"),
    ("whole-row", "SELECT p::text FROM people p"),
    ("row_to_json", "SELECT row_to_json(p) FROM people p"),
    ("returning", "UPDATE people SET note = note WHERE id = 1 RETURNING secret, note"),
    ("copy text", "COPY people TO STDOUT"),
    ("copy csv", "COPY (SELECT * FROM people) TO STDOUT WITH (FORMAT csv)"),
    # Through the catalog: views followed to their tables.
    ("view", "SELECT * FROM people_view"),
    ("renaming view", "SELECT alias_col, n FROM renamed_view"),
    ("view of a view's column", "SELECT upper(hidden) FROM staff_view"),
    ("view in a transaction", "BEGIN; SELECT * FROM staff_view; COMMIT"),
    ("staff", "SELECT name, ssn FROM staff"),
]


def planted_in(text):
    return [p for p in PLANTED if p in text]


def psql(cluster, sql, tcp):
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=0", "-c", sql],
                          env=cluster.client_env(tcp=tcp), text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


def check_corpus_psql(cluster, failures):
    for tcp in (False, True):
        where = "tcp" if tcp else "unix"
        for name, sql in CORPUS:
            r = psql(cluster, sql, tcp)
            if r.returncode != 0 and "ERROR" not in r.stderr:
                failures.append(f"psql {where} {name}: failed: {r.stderr.strip()[:300]}")
            leaked = planted_in(r.stdout + r.stderr)
            if leaked:
                failures.append(f"psql {where} {name}: leaked {leaked}: {r.stdout[:300]!r}")
            log(f"psql {where} {name}: rc={r.returncode} {r.stdout.strip()[:120]!r}")
        # A cursor, fetched in the same session.
        r = psql(cluster, "BEGIN; DECLARE c CURSOR FOR SELECT secret, note FROM people; "
                          "FETCH 2 FROM c; COMMIT", tcp)
        if planted_in(r.stdout + r.stderr):
            failures.append(f"psql {where} cursor FETCH leaked: {r.stdout[:300]!r}")


def check_psycopg2(cluster, failures):
    conn = psycopg2.connect(host=cluster.socket_dir, port=cluster.port, user="postgres",
                            dbname="postgres")
    conn.autocommit = True
    try:
        cur = conn.cursor()
        # Typed columns masked under a column rule still parse.
        cur.execute("SELECT id, amount, born, uid, doc, blob FROM people ORDER BY id")
        rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in cur.fetchall()]
        text = repr(rows)
        if planted_in(text) or "b'planted'" in text:
            failures.append(f"psycopg2 typed columns leaked: {text[:300]}")
        log(f"psycopg2 typed: {text[:200]}")
        # Prepared statement, SQL level.
        cur.execute("PREPARE p AS SELECT secret, note FROM people")
        cur.execute("EXECUTE p")
        text = repr(cur.fetchall())
        if planted_in(text):
            failures.append(f"psycopg2 EXECUTE leaked: {text[:300]}")
        # Content detectors in a table no column rule names: the card and the e-mail go,
        # the near-miss stays.
        cur.execute("SELECT note FROM notes_t")
        note = cur.fetchone()[0]
        log(f"notes_t: {note!r}")
        if NEAR_MISS not in note:
            failures.append(f"the near-miss {NEAR_MISS} was masked: {note!r}")
        if planted_in(note):
            failures.append(f"notes_t leaked {planted_in(note)}: {note!r}")
        # on_derived: block: refused, the session goes on.
        try:
            cur.execute("SELECT upper(k) FROM vault")
            failures.append("SELECT upper(k) FROM vault was not blocked")
        except psycopg2.Error as e:
            log(f"vault derived: blocked: {e.pgcode} {str(e).strip()[:120]}")
            if e.pgcode != "42501":
                failures.append(f"vault derived: SQLSTATE {e.pgcode}, expected 42501")
        cur.execute("SELECT a, b FROM plain_t")
        if cur.fetchall() != [(1, "plain-value")]:
            failures.append("a table no rule names did not come through unchanged")
        check_lineage(cur, failures)
    finally:
        conn.close()


def check_lineage(cur, failures):
    """What the catalog-backed column lineage decides: the masked column only, predicates
    block and allow, views."""
    cur.execute("SELECT name, ssn FROM staff")
    rows = cur.fetchall()
    log(f"staff: {rows!r}")
    if rows[0][0] != STAFF_NAME:
        failures.append(f"SELECT name, ssn: name was masked too: {rows!r}")
    if STAFF_SSN in repr(rows):
        failures.append(f"SELECT name, ssn: ssn leaked: {rows!r}")
    cur.execute("SELECT who FROM staff_view")
    if cur.fetchall() != [(STAFF_NAME,)]:
        failures.append("a view's unmasked column did not come through unchanged")
    # predicates: block (staff.ssn): refused with 42501, through a view too; the session
    # goes on.
    for sql in ("SELECT name FROM staff WHERE ssn LIKE 'STAFF%'",
                "SELECT who FROM staff_view ORDER BY hidden",
                "SELECT count(*) FROM staff GROUP BY ssn"):
        try:
            cur.execute(sql)
            failures.append(f"predicates: block did not refuse {sql!r}: {cur.fetchall()!r}")
        except psycopg2.Error as e:
            log(f"predicate refused: {e.pgcode} {str(e).strip()[:120]}")
            if e.pgcode != "42501":
                failures.append(f"{sql!r}: SQLSTATE {e.pgcode}, expected 42501")
    # predicates: allow (people-columns): it runs.
    cur.execute("SELECT id FROM people WHERE secret LIKE 'PLANTED%' ORDER BY id")
    if len(cur.fetchall()) != 1:
        failures.append("predicates: allow: the statement did not run")
    # A view that renames the masked column, sorted by it (people-columns allows that).
    cur.execute("SELECT alias_col, n FROM renamed_view ORDER BY alias_col")
    text = repr(cur.fetchall())
    if planted_in(text):
        failures.append(f"renamed view leaked: {text[:300]}")
    # A view first met inside a transaction block: no lookup there, but the scope's reach
    # set (learnt before the BEGIN) holds it, with its definition: its masked column only.
    cur.execute("BEGIN")
    cur.execute("SELECT who, hidden FROM tx_view")
    rows = cur.fetchall()
    cur.execute("COMMIT")
    log(f"tx_view in a transaction: {rows!r}")
    if rows[0][0] != STAFF_NAME or STAFF_SSN in repr(rows):
        failures.append(f"a view first met in a transaction: {rows!r}")


def check_transactions(cluster, failures):
    """psycopg2 in its default mode, as most drivers work: every statement inside a
    transaction block, where the relay cannot look the catalog up. Each connection is new,
    so its first statement is the first the relay traces for it."""
    def connect():
        return psycopg2.connect(host=cluster.socket_dir, port=cluster.port, user="postgres",
                                dbname="postgres")

    checks = [
        # A table no rule can reach: exact rows, counts included (it came back 0 before).
        ("count of an unmasked table", "SELECT count(*) FROM plain_t", [(1,)]),
        ("unmasked table", "SELECT a, b FROM plain_t", [(1, "plain-value")]),
        ("unmasked table with a sub-query",
         "SELECT b FROM plain_t WHERE a IN (SELECT max(a) FROM plain_t)", [("plain-value",)]),
    ]
    for what, sql, want in checks:
        conn = connect()
        try:
            cur = conn.cursor()
            cur.execute(sql)
            got = cur.fetchall()
            conn.commit()
            log(f"in a transaction, {what}: {got!r}")
            if got != want:
                failures.append(f"in a transaction, {what}: {got!r}, expected {want!r}")
        finally:
            conn.close()
    conn = connect()
    try:
        cur = conn.cursor()
        # The masked column is masked, its neighbour is not.
        cur.execute("SELECT name, ssn FROM staff")
        rows = cur.fetchall()
        log(f"in a transaction, staff: {rows!r}")
        if rows[0][0] != STAFF_NAME or STAFF_SSN in repr(rows):
            failures.append(f"in a transaction, SELECT name, ssn FROM staff: {rows!r}")
        # A view over the masked table, inside the same transaction.
        cur.execute("SELECT who, hidden FROM staff_view")
        rows = cur.fetchall()
        log(f"in a transaction, staff_view: {rows!r}")
        if rows[0][0] != STAFF_NAME or STAFF_SSN in repr(rows):
            failures.append(f"in a transaction, a view over the masked table: {rows!r}")
        cur.execute("SELECT count(*) FROM staff")
        if cur.fetchall() != [(1,)]:
            failures.append("in a transaction, count(*) of the masked table was changed")
        conn.commit()
        # A table created inside the transaction: its DDL made the proxy forget the catalog
        # (and the reach set) until the transaction ends, so a statement over it fails
        # closed: every column masked (README, "Failing closed").
        cur.execute("CREATE TABLE tx_new AS SELECT 'made-in-tx'::text AS v")
        cur.execute("SELECT v FROM tx_new")
        rows = cur.fetchall()
        log(f"in a transaction, a table created in it: {rows!r}")
        if rows == [("made-in-tx",)]:
            failures.append("a table created inside the transaction was not failed closed")
        conn.rollback()
        # After the transaction, the next one has its reach set again.
        cur.execute("SELECT count(*) FROM plain_t")
        got = cur.fetchall()
        conn.commit()
        if got != [(1,)]:
            failures.append(f"count(*) after a transaction with DDL: {got!r}")
    finally:
        conn.close()


def reach_lookups_by_pid(cluster):
    """The proxy's reach-set lookups in the server's log (log_statement=all), by backend."""
    counts = {}
    for e in cluster.sync_log():
        if e.statement and "dbwarden catalog lookup" in e.statement and \
                "pg_depend" in e.statement:
            counts[e.pid] = counts.get(e.pid, 0) + 1
    return counts


def check_shared_reach(cluster, failures):
    """New connections of one start (user, database, the same server) share the scope's
    reach set: one asks, the others take it without a query and mask the same."""
    def connect(autocommit=False):
        conn = psycopg2.connect(host=cluster.socket_dir, port=cluster.port, user="postgres",
                                dbname="postgres", application_name="reach-share")
        conn.autocommit = autocommit
        return conn

    def masks_staff(cur, what):
        cur.execute("SELECT count(*) FROM plain_t")
        got = cur.fetchall()
        cur.execute("SELECT name, ssn FROM staff")
        rows = cur.fetchall()
        if got != [(1,)] or rows[0][0] != STAFF_NAME or STAFF_SSN in repr(rows):
            failures.append(f"shared reach set, {what}: count {got!r}, staff {rows!r}")

    # DDL through the proxy first: what earlier checks taught it is forgotten.
    reset = connect(autocommit=True)
    reset.cursor().execute("CREATE TABLE reach_reset (x int)")
    reset.close()
    pids = []
    for i in range(4):
        conn = connect()
        pids.append(conn.get_backend_pid())
        masks_staff(conn.cursor(), f"connection {i + 1}")
        conn.commit()
        conn.close()
    counts = reach_lookups_by_pid(cluster)
    got = [counts.get(p, 0) for p in pids]
    log(f"reach-set lookups of four new connections: {got}")
    if got != [1, 0, 0, 0]:
        failures.append(f"reach-set lookups of four new connections of one start: {got}, "
                        "expected [1, 0, 0, 0]")
    # DDL from another connection renews the set for an open one: its next transaction asks
    # again, and a view the DDL made over the masked table is masked inside it.
    x = connect()
    x_pid = x.get_backend_pid()
    cur = x.cursor()
    masks_staff(cur, "the open connection")
    x.commit()
    y = connect(autocommit=True)
    y.cursor().execute("CREATE VIEW staff_view2 AS SELECT name AS n, ssn AS s FROM staff")
    y.close()
    cur.execute("SELECT n, s FROM staff_view2")
    rows = cur.fetchall()
    x.commit()
    x.close()
    log(f"after DDL elsewhere, in a transaction, staff_view2: {rows!r}")
    if rows[0][0] != STAFF_NAME or STAFF_SSN in repr(rows):
        failures.append(f"after DDL elsewhere, a view it made: {rows!r}")
    later = []
    for i in range(2):
        conn = connect()
        later.append(conn.get_backend_pid())
        cur = conn.cursor()
        cur.execute("SELECT n, s FROM staff_view2")
        rows = cur.fetchall()
        if rows[0][0] != STAFF_NAME or STAFF_SSN in repr(rows):
            failures.append(f"after DDL, new connection {i + 1}, staff_view2: {rows!r}")
        conn.commit()
        conn.close()
    counts = reach_lookups_by_pid(cluster)
    got = [counts.get(x_pid, 0)] + [counts.get(p, 0) for p in later]
    log(f"reach-set lookups after DDL (open connection, two new ones): {got}")
    if got != [1, 1, 0]:
        failures.append(f"reach-set lookups after DDL (open connection, two new ones): {got}, "
                        "expected [1, 1, 0]")


def check_binary_prepared(cluster, failures):
    """Extended protocol with binary results, spoken by hand over the unix socket: Parse,
    Bind (result format 1 for all), Describe portal, Execute, Sync."""
    import socket
    import struct
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(os.path.join(cluster.socket_dir, f".s.PGSQL.{cluster.port}"))

    def msg(t, body):
        return t + struct.pack("!I", len(body) + 4) + body

    params = b"user\0postgres\0database\0postgres\0\0"
    s.sendall(struct.pack("!II", len(params) + 8, 3 << 16) + params)

    def until_ready():
        buf = b""
        while not buf.endswith(b"Z\0\0\0\x05I") and not buf.endswith(b"Z\0\0\0\x05T") \
                and not buf.endswith(b"Z\0\0\0\x05E"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf

    until_ready()
    for sql in (b"SELECT id, secret, amount, born, uid, blob, note FROM people\0",
                b"SELECT id, secret, note FROM people_view\0"):
        binary_round(s, msg, until_ready, sql, failures)
    s.close()


def binary_round(s, msg, until_ready, sql, failures):
    """Parse, Bind (result format 1 for all), Describe portal, Execute, Sync."""
    s.sendall(msg(b"P", b"\0" + sql + b"\0\0") +
              msg(b"B", b"\0\0" + b"\0\0" + b"\0\0" + b"\0\x01\0\x01") +
              msg(b"D", b"P\0") + msg(b"E", b"\0\0\0\0\0") + msg(b"S", b""))
    reply = until_ready()
    leaked = [p for p in PLANTED + ["planted"] if p.encode() in reply]
    if leaked:
        failures.append(f"binary prepared statement leaked {leaked}")
    if b"D" not in reply or b"C\0\0\0\rSELECT 2\0" not in reply:
        failures.append(f"binary prepared statement: unexpected reply {reply[:300]!r}")


EXPECTED_SERIES = (
    'dbwarden_masked_values_total{detector="column",rule="people-columns"}',
    'dbwarden_masked_values_total{detector="email",rule="pii-content"}',
)


def read_metrics(agent, failures):
    """The exposition once the records of the statements above have reached the exporter
    (they pass through the agent's record queue: polled, at most 20 s)."""
    text = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(agent.metrics_url, timeout=10).read().decode()
        except OSError as e:
            failures.append(f"metrics unreadable: {e}")
            return ""
        if all(series in text for series in EXPECTED_SERIES):
            break
        time.sleep(0.2)
    return text


def check_outputs(agent, audit, metrics, failures):
    try:
        text = read_audit_text(audit)
    except FileNotFoundError:
        text = ""
    if planted_in(text):
        failures.append(f"the audit trail holds planted values: {planted_in(text)}")
    if '"dbwarden.masked_values":' not in text:
        failures.append("no audit record carries dbwarden.masked_values")
    if planted_in(metrics):
        failures.append(f"the metrics hold planted values: {planted_in(metrics)}")
    for series in EXPECTED_SERIES:
        if series not in metrics:
            failures.append(f"metrics: no {series}")
    # The shared reach set's counters (check_shared_reach: at least three hits, a miss).
    for line in metrics.splitlines():
        for result, least in (("hit", 3), ("miss", 1)):
            if line.startswith(f'dbwarden_proxy_pg_reach_sets_total{{result="{result}"}} '):
                if float(line.split()[-1]) < least:
                    failures.append(f"metrics: {line}, expected at least {least}")
    if 'dbwarden_proxy_pg_reach_sets_total{result="hit"}' not in metrics:
        failures.append("metrics: no dbwarden_proxy_pg_reach_sets_total{result=\"hit\"}")
    if planted_in(agent.stderr):
        failures.append(f"the agent's log holds planted values: {planted_in(agent.stderr)}")


def run(args, workdir, failures):
    policy = os.path.join(workdir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    os.makedirs(os.path.join(workdir, "proxy"), exist_ok=True)
    steer_dir = f"/sys/fs/bpf/dbw-steer-mask-test-{os.getpid()}"
    with PgCluster() as cluster:
        cluster.setup_sql(SETUP)
        audit = os.path.join(workdir, "audit.jsonl")
        agent = Agent(args.agent, audit, [cluster.port],
                      extra_args=["--mode", "enforce", "--policy", policy, "--fail-mode",
                                  "closed", "--steer-pin-dir", steer_dir,
                                  "--proxy-socket-dir", os.path.join(workdir, "proxy")])
        rc = start_agent(agent)
        if rc is not None:
            return rc
        metrics = ""
        try:
            check_corpus_psql(cluster, failures)
            check_psycopg2(cluster, failures)
            check_transactions(cluster, failures)
            check_shared_reach(cluster, failures)
            check_binary_prepared(cluster, failures)
            metrics = read_metrics(agent, failures)
        finally:
            rc = stop_agent(agent)
            subprocess.run([args.agent, "steering", "detach", "--steer-pin-dir", steer_dir],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        if rc is not None:
            failures.append("the agent did not stop cleanly")
        check_outputs(agent, audit, metrics, failures)
    return verdict(failures, workdir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, a private server)")
    return pg_cluster.in_workdir("dbw-enforce-mask-", False,
                                 lambda workdir: run(args, workdir, []))


if __name__ == "__main__":
    sys.exit(main())
