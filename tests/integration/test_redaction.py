#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Acceptance of issue 18: no credential ever reaches the audit trail.

A private PostgreSQL and a private MariaDB, one real agent watching both with every output on:
the audit file, --audit-stdout, --syslog-address (a collector of this test's own, from
test_agent_shipping.py), the metrics endpoint, --log-level debug, and --record. A corpus of
credential-bearing statements, each with its own planted secret, runs through real clients:
psql (simple protocol, multi-statement text, comments, dollar quotes, E'' strings, a
statement that does not parse), psycopg2 (client-side parameters), pgbench -M extended and
-M prepared (bound parameters), the mariadb CLI, pymysql (multi-statements) and
my_stmt_client (server-side prepared statements with bound values). Some succeed, some fail.

Checks: no planted secret, nor its first eight bytes, in the audit file, stdout, the syslog
messages, the metrics or the agent's log; each statement's record is there with its text as
sent except the secret replaced by the marker (the statement's shape), its bound values
likewise, and "dbwarden.redacted": true; dbwarden_sql_redacted_statements_total counts them;
the --record file (which holds secrets) is 0600.

Exit 77 (skip) without root, or 1 instead when DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import json
import os
import random
import stat
import string
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pymysql  # noqa: E402
import psycopg2  # noqa: E402
from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402
from pg_cluster import (Agent, PgCluster, log, make_workdir, read_audit,  # noqa: E402
                        skip_or_fail, start_agent, stop_agent, verdict)
from test_agent_shipping import FRAME_HEADER, Collector  # noqa: E402

MARK = "<redacted>"
HEAD = 8  # a secret's first bytes must not show either (a server may cut a quote short),
# nor its last six (a statement split inside it)


class Entry:
    """One credential-bearing statement. `sql` holds @S@ where the secret goes; `want` is the
    text the record must show (default: sql with '@S@' -> '<redacted>', @S@ -> <redacted>).
    `params` (templates too) are bound values, `want_params` what the record must show."""

    def __init__(self, client, sql, want=None, params=None, want_params=None, secret=None,
                 mode=None):
        self.client = client
        self.secret = secret or new_secret()
        self.sql = sql.replace("@S@", self.secret)
        default = sql.replace("'@S@'", f"'{MARK}'").replace("@S@", MARK)
        self.want = default if want is None else want
        self.params = [p.replace("@S@", self.secret) for p in (params or [])]
        self.want_params = want_params
        self.mode = mode  # pgbench -M
        if client == "pgbench":
            self.want += ";"  # the script's statement ends with ';', sent as written


_made = set()


def new_secret():
    rng = random.SystemRandom()
    while True:
        s = "Rk" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))
        if s[:HEAD] not in _made:
            _made.add(s[:HEAD])
            return s


def md5_secret():
    rng = random.SystemRandom()
    return "md5" + "".join(rng.choice("0123456789abcdef") for _ in range(32))


def pg_corpus():
    e = Entry
    return [
        e("psql", "CREATE ROLE rd_a LOGIN PASSWORD '@S@'"),
        e("psql", "CREATE ROLE rd_a PASSWORD '@S@' LOGIN"),  # fails: it exists
        e("psql", "ALTER ROLE rd_a PASSWORD '@S@'"),
        e("psql", "ALTER USER rd_a WITH ENCRYPTED PASSWORD '@S@' VALID UNTIL 'infinity'"),
        e("psql", "ALTER ROLE rd_a LOGIN PASSWORD '@S@'", secret=md5_secret()),  # a verifier
        # Several statements in one Query: the decoder records each; the one with the
        # secret must show the marker, whatever the secret holds (';' here).
        e("psql", "SELECT 1 AS m06; ALTER ROLE rd_a NOLOGIN PASSWORD '@S@'; SELECT 2 AS m06b",
          want=f"ALTER ROLE rd_a NOLOGIN PASSWORD '{MARK}'",
          secret=new_secret()[:HEAD] + ";" + new_secret()[2:HEAD]),
        e("psql", "ALTER ROLE rd_a /* rotate */ PASSWORD -- new one\n E'@S@' CONNECTION LIMIT 5",
          want=f"ALTER ROLE rd_a /* rotate */ PASSWORD -- new one\n '{MARK}' CONNECTION LIMIT 5"),
        e("psql", "ALTER ROLE rd_a PASSWORD $pw$@S@$pw$",
          want=f"ALTER ROLE rd_a PASSWORD '{MARK}'"),
        e("psql", "CREATE ROLE rd_b PASSWORD @S@",  # does not parse
          want=f"CREATE ROLE rd_b PASSWORD '{MARK}'"),
        e("psql", "CREATE USER MAPPING FOR rd_a SERVER rd_fs OPTIONS (user 'rd_a', "
                  "password '@S@')"),
        e("psql", "ALTER USER MAPPING FOR rd_a SERVER rd_fs OPTIONS (SET password '@S@')"),
        e("psql", "CREATE USER MAPPING FOR rd_a SERVER rd_nosuch OPTIONS (password '@S@')"),
        e("psql", "CREATE SERVER rd_fs2 FOREIGN DATA WRAPPER postgres_fdw "
                  "OPTIONS (host 'h', password '@S@')"),
        e("psql", "CREATE SUBSCRIPTION rd_sub CONNECTION 'host=127.0.0.1 port=1 dbname=x "
                  "user=u password=@S@' PUBLICATION p WITH (connect = false)"),
        e("psql", "ALTER SUBSCRIPTION rd_sub CONNECTION 'postgresql://u:@S@@127.0.0.1:1/x'"),
        e("psql", "SELECT 'dbname=x password=@S@'::text AS m15"),
        e("psql", "SELECT dblink_connect('host=127.0.0.1 port=1 password=@S@')"),
        e("psql", "DO $$BEGIN ALTER ROLE rd_a PASSWORD '@S@'; END$$"),
        e("psycopg2", "ALTER ROLE rd_a WITH PASSWORD '@S@'"),
        e("psycopg2", "CREATE ROLE rd_a WITH PASSWORD '@S@'"),  # fails: it exists
        e("psycopg2", "SET application_name = 'rd'; ALTER ROLE rd_a LOGIN ENCRYPTED PASSWORD "
                      "'@S@'", want=f"ALTER ROLE rd_a LOGIN ENCRYPTED PASSWORD '{MARK}'"),
        e("psycopg2", "SELECT 'postgresql://app:@S@@127.0.0.1:5432/db'::text AS m22"),
        e("pgbench", "SELECT CAST(:v AS text) AS m23", want="SELECT CAST($1 AS text) AS m23",
          params=["host=127.0.0.1 password=@S@"],
          want_params=[f"host=127.0.0.1 password={MARK}"], mode="extended"),
        e("pgbench", "SELECT count(*) AS m24 FROM pg_authid WHERE rolpassword = :v",
          want="SELECT count(*) AS m24 FROM pg_authid WHERE rolpassword = $1",
          params=["@S@"], want_params=[MARK], mode="prepared"),
        e("pgbench", "SELECT CAST(:v AS int) AS m25", want="SELECT CAST($1 AS int) AS m25",
          params=["password=@S@"], want_params=[f"password={MARK}"], mode="extended"),
        e("pgbench", "INSERT INTO rd_creds (k, dsn) VALUES (1, :v)",
          want="INSERT INTO rd_creds (k, dsn) VALUES (1, $1)",
          params=["postgresql://u:@S@@h/d"], want_params=[f"postgresql://u:{MARK}@h/d"],
          mode="prepared"),
        e("pgbench", "INSERT INTO rd_creds (dsn, k) VALUES (:v, 1)",  # fails: key 1 exists
          want="INSERT INTO rd_creds (dsn, k) VALUES ($1, 1)",
          params=["postgresql://v:@S@@h/d"], want_params=[f"postgresql://v:{MARK}@h/d"],
          mode="prepared"),
    ]


def my_corpus():
    e = Entry
    return [
        e("cli", "CREATE USER 'rd_u1'@'%' IDENTIFIED BY '@S@'"),
        e("cli", "CREATE USER 'rd_u1'@'%' IDENTIFIED BY '@S@' PASSWORD EXPIRE"),  # exists
        e("cli", "ALTER USER 'rd_u1'@'%' IDENTIFIED BY '@S@'"),
        e("cli", "SET PASSWORD FOR 'rd_u1'@'%' = PASSWORD('@S@')"),
        e("cli", "GRANT SELECT ON dbw_test.* TO 'rd_u2'@'%' IDENTIFIED BY '@S@'"),
        e("cli", "ALTER USER 'rd_nosuch'@'%' IDENTIFIED BY '@S@'"),  # fails
        e("cli", "CREATE USER 'rd_u3'@'%' IDENTIFIED VIA mysql_native_password "
                 "USING PASSWORD('@S@')"),
        e("cli", "SELECT PASSWORD('@S@') AS m08"),
        e("cli", "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=1, MASTER_USER='rd', "
                 "MASTER_PASSWORD='@S@'"),
        e("cli", "START SLAVE USER='rd' PASSWORD='@S@'"),  # MariaDB: a syntax error
        e("cli", "SELECT 'mysql://root:@S@@127.0.0.1:3306/app' AS m11"),
        e("cli", "CREATE USER 'rd_u4'@'%' IDENTIFIED BY @S@",  # does not parse
          want=f"CREATE USER 'rd_u4'@'%' IDENTIFIED BY '{MARK}'"),
        e("pymysql", "ALTER USER 'rd_u2'@'%' IDENTIFIED BY '@S@'"),
        e("pymysql", "CREATE USER 'rd_u1'@'%' IDENTIFIED BY '@S@' ACCOUNT UNLOCK"),  # exists
        e("pymysql", "SELECT 1 AS m15; SET PASSWORD FOR 'rd_u2'@'%' = PASSWORD('@S@')",
          want=f"SET PASSWORD FOR 'rd_u2'@'%' = PASSWORD('{MARK}')"),
        e("pymysql", "SET PASSWORD FOR 'rd_u3'@'%' = '@S@'"),  # fails: not a hash
        e("stmt", "SELECT PASSWORD(?) AS m17", want="SELECT PASSWORD(?) AS m17",
          params=["@S@"], want_params=[MARK]),
        e("stmt", "SELECT ? AS m18", want="SELECT ? AS m18",
          params=["mysql://root:@S@@127.0.0.1:1/x"],
          want_params=[f"mysql://root:{MARK}@127.0.0.1:1/x"]),
        e("stmt", "INSERT INTO rd_creds (k, dsn) VALUES (1, ?)",
          want="INSERT INTO rd_creds (k, dsn) VALUES (1, ?)",
          params=["mysql://a:@S@@h/x"], want_params=[f"mysql://a:{MARK}@h/x"]),
        e("stmt", "INSERT INTO rd_creds (dsn, k) VALUES (?, 1)",  # fails: key 1 exists
          want="INSERT INTO rd_creds (dsn, k) VALUES (?, 1)",
          params=["mysql://b:@S@@h/x"], want_params=[f"mysql://b:{MARK}@h/x"]),
    ]


def client_side(en):
    """(query, value) for a client that interpolates parameters itself (psycopg2, pymysql):
    the literal holding the secret becomes %s, its content the value."""
    at = en.sql.index(en.secret)
    start = en.sql.rindex("'", 0, at)
    end = en.sql.index("'", at + len(en.secret))
    query = en.sql[:start].replace("%", "%%") + "%s" + en.sql[end + 1:].replace("%", "%%")
    return query, en.sql[start + 1:end]


def run_pg(cluster, entries, workdir):
    for i, en in enumerate(entries):
        if en.client == "psql":
            cluster.psql(["-c", en.sql], check=False)
        elif en.client == "psycopg2":
            # Client-side parameters: psycopg2 quotes the value into the text it sends.
            conn = psycopg2.connect(host=cluster.socket_dir, port=cluster.port, user="postgres",
                                    dbname="postgres")
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    query, value = client_side(en)
                    cur.execute(query, (value,))
            except psycopg2.Error as err:
                log(f"psycopg2: {err.pgcode}")
            finally:
                conn.close()
        elif en.client == "pgbench":
            script = os.path.join(workdir, f"pgbench-{i}.sql")
            with open(script, "w") as f:
                f.write(en.sql + ";\n")
            r = subprocess.run(["pgbench", "-n", "-t", "1", "-M", en.mode, "-f", script,
                                "-D", f"v={en.params[0]}"],
                               env=cluster.client_env(tcp=True), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            log(f"pgbench -M {en.mode}: exit {r.returncode}")


def run_my(server, entries, stmt_client):
    for en in entries:
        if en.client == "cli":
            server.cli(en.sql, check=False, user="root", password=None, database=None)
        elif en.client == "pymysql":
            conn = pymysql.connect(unix_socket=server.socket_path, user="root",
                                   client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
            try:
                with conn.cursor() as cur:
                    query, value = client_side(en)
                    cur.execute(query, (value,))
                    while cur.nextset():
                        pass
            except pymysql.MySQLError as err:
                log(f"pymysql: {err.args[0]}")
            finally:
                conn.close()
        elif en.client == "stmt":
            cmd = [stmt_client, "--port", str(server.port), "--user", APP_USER,
                   "--password", APP_PASSWORD, "--database", TEST_DB, "--exec", en.sql]
            for p in en.params:
                cmd += ["--param", p]
            r = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            log(f"my_stmt_client: {r.stdout.strip()} {r.stderr.strip()}")


def record_params(rec):
    out, i = [], 0
    while f"db.query.parameter.{i}" in rec:
        out.append(rec[f"db.query.parameter.{i}"])
        i += 1
    return out


def check_records(entries, records):
    """Each entry's record: its shape (text, bound values as wanted) and dbwarden.redacted."""
    failures = []
    statuses = {"ok": 0, "failed": 0}
    for en in entries:
        found = [r for r in records if r.get("db.query.text") == en.want and
                 (en.want_params is None or record_params(r) == en.want_params)]
        if not found:
            near = [r.get("db.query.text") for r in records
                    if en.want[:20] in (r.get("db.query.text") or "")]
            failures.append(f"{en.client}: no record {en.want!r} params {en.want_params} "
                            f"(near: {near[:3]})")
            continue
        rec = found[-1]
        if rec.get("dbwarden.redacted") is not True:
            failures.append(f"{en.client}: {en.want!r} lacks dbwarden.redacted: {rec}")
        statuses["ok" if rec.get("db.response.status_code") == "00000" else "failed"] += 1
    log(f"corpus outcomes: {statuses}")
    if statuses["ok"] == 0 or statuses["failed"] == 0:
        failures.append(f"the corpus must hold statements that succeed and that fail: {statuses}")
    return failures


def leaks(entries, outputs):
    """Every (entry, output) pair where the secret or its head shows."""
    failures = []
    for name, text in outputs.items():
        for en in entries:
            for needle in (en.secret, en.secret[:HEAD], en.secret[-6:]):
                if needle in text:
                    at = text.index(needle)
                    failures.append(f"secret of {en.sql[:60]!r} in {name}: "
                                    f"...{text[max(0, at - 80):at + 40]!r}...")
                    break
    return failures


def run(args, workdir):
    audit_path = os.path.join(workdir, "audit.jsonl")
    stdout_path = os.path.join(workdir, "agent.stdout")
    record_path = os.path.join(workdir, "capture.rec")
    collector = Collector()
    pg_entries, my_entries = pg_corpus(), my_corpus()
    entries = pg_entries + my_entries
    failures = []
    try:
        with PgCluster() as cluster, MariaDB() as server:
            cluster.setup_sql("CREATE EXTENSION postgres_fdw; CREATE SERVER rd_fs FOREIGN DATA "
                              "WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'x'); "
                              "CREATE TABLE rd_creds (k int PRIMARY KEY, dsn text)")
            server.setup_sql(f"CREATE TABLE {TEST_DB}.rd_creds (k INT PRIMARY KEY, "
                             "dsn VARCHAR(200))")
            extra = ["--mysql-port", str(server.port), "--audit-stdout", "true",
                     "--syslog-address", f"127.0.0.1:{collector.port}",
                     "--syslog-spool-dir", os.path.join(workdir, "spool"),
                     "--log-level", "debug", "--record", record_path]
            agent = Agent(args.agent, audit_path, [cluster.port], extra_args=extra,
                          stdout_path=stdout_path)
            if (rc := start_agent(agent)) is not None:
                return rc
            try:
                run_pg(cluster, pg_entries, workdir)
                run_my(server, my_entries, args.stmt_client)
                audited = agent.wait_audit_settled(timeout=60, quiet=4.0) or 0
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if (agent.metric_sum("dbwarden_shipping_sent_total") or 0) >= audited:
                        break
                    time.sleep(0.3)
                metrics = agent.scrape()
            finally:
                stopped = stop_agent(agent)
            if stopped is not None:
                return stopped
        collector.close()

        # What the collector got after each RFC 5424 header: the JSON records.
        shipped = [msg[m.end():].decode("utf-8", "replace") for msg in collector.messages
                   if (m := FRAME_HEADER.match(msg))]
        failures.extend(collector.errors)
        records, bad = read_audit(audit_path)
        failures.extend(bad)
        with open(audit_path, encoding="utf-8", errors="replace") as f:
            audit_text = f.read()
        with open(stdout_path, encoding="utf-8", errors="replace") as f:
            stdout_text = f.read()
        stdout_records = [json.loads(line) for line in stdout_text.splitlines()
                          if line.startswith("{")]
        log(f"{len(records)} records in the file, {len(stdout_records)} on stdout, "
            f"{len(shipped)} shipped, {len(agent.stderr.splitlines())} agent log lines")
        failures.extend(leaks(entries, {
            "the audit file": audit_text, "stdout": stdout_text,
            "the syslog messages": "\n".join(shipped), "the metrics": metrics,
            "the agent's log (debug)": agent.stderr}))
        failures.extend(check_records(entries, records))
        failures.extend(f"stdout: {f}" for f in check_records(entries, stdout_records))
        failures.extend(f"syslog: {f}" for f in check_records(
            entries, [json.loads(s) for s in shipped]))
        redacted = agent.metric_sum("dbwarden_sql_redacted_statements_total", metrics) or 0
        if redacted < len(entries):
            failures.append(f"dbwarden_sql_redacted_statements_total is {redacted}, "
                            f"below the corpus' {len(entries)} statements")
        mode = stat.S_IMODE(os.stat(record_path).st_mode)
        if mode != 0o600:
            failures.append(f"--record file mode is {oct(mode)}, not 0600")
    finally:
        collector.close()
    return verdict(failures, workdir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--stmt-client", required=True,
                    help="tests/integration/clients/my_stmt_client (server-side prepared)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs")
    return run(args, make_workdir("dbw-redact-"))


if __name__ == "__main__":
    sys.exit(main())
