#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 12, transparency: with an empty policy the proxy is invisible to clients and to the audit.

One private PostgreSQL and one private MariaDB. The same workload runs twice against them,
from the same state (each run starts from freshly created databases):
- direct: `dbwarden run` in observe mode (clients reach the servers themselves);
- steered: `dbwarden run --mode enforce` with a policy of `rules: []` (every connection goes
  through the proxy).
Each client runs over TCP and over the unix socket, always to the server's normal port and
socket path:
- psql scripts: rows, errors (with LINE/caret, DETAIL, HINT, CONTEXT and, once, verbose
  fields), NOTICE and WARNING from DO/RAISE, multi-statement Query messages (`\\;`),
  transactions with an error inside and a savepoint, PREPARE/EXECUTE/DEALLOCATE, `\\copy`
  in and out (and the file it wrote), COPY FROM STDIN with a bad row, LISTEN/NOTIFY with
  psql's notification line, a result of many packets;
- pgbench -M extended and -M prepared, one client, a fixed --random-seed (same statements
  and parameters in both runs);
- clients/pg_features_client (libpq): pipeline mode, a statement prepared then executed,
  a cancel (PQcancel);
- psycopg2: command tags (statusmessage), rows, errors with SQLSTATE, notices, a named
  (server-side) cursor, COPY both ways, LISTEN on one connection and NOTIFY from another
  (the notifying backend's pid checked against the one its BackendKeyData gave), and a
  server-side cancel of pg_sleep(30) (57014);
- the mariadb CLI (-vvv --show-warnings): rows, errors, warnings, multi-statement COM_QUERY,
  a procedure returning two result sets, PREPARE/EXECUTE, LOAD DATA LOCAL INFILE, `use db`
  (COM_INIT_DB, also refused) and USE, a rolled back transaction;
- pymysql: rows, affected rows, lastrowid, errors, warnings, multi-statements with
  nextset(), executemany, LOAD DATA LOCAL INFILE, select_db, ping;
- clients/my_stmt_client (binary protocol prepared statements, long data, NULLs).

Client-visible results: each client's stdout and stderr (or the transcript a python client
writes: rows, command tags, SQLSTATEs and messages, notices, notifications) must be equal in
both runs after normalising only what changes from run to run by nature: the backend pid in
psql's notification line, pgbench's latency/tps/connection-time figures, the mariadb CLI's
"(0.001 sec)" timings, and the client port in "127.0.0.1:<port>" (the server's view of a
TCP client, printed by my_stmt_client). A difference fails the test with a unified diff.

Audit records: grouped by connection, each connection named by its application_name
(PostgreSQL) or the `SELECT 'dbw-session:<name>'` tag it sent first (MySQL), numbered in
order of its first statement; both runs must hold the same connections with the same
records in the same order, and each pair of records must agree on every field except:
- dbwarden.policy.rule, dbwarden.policy.action: the decision fields, which only enforce
  mode writes (checked on their own: every steered record says "allow", no direct record
  carries either);
- time, duration_us: when the statement ran and how long it took;
- connection_id: a name for the connection (the observer derives it from the socket, the
  proxy counts its own connections above 2^62); it only has to be consistent within a run;
- client.port: the client's ephemeral TCP port, new on every connection;
- client.process.pid: the client process, a new one in every run for the CLI clients;
- process.pid: the server process; PostgreSQL forks a new backend for every connection, so
  it differs between runs by nature (checked on its own: present in every record of both
  runs). MariaDB's is one process for both runs: compared, for its unix-socket (the proxy
  reads SO_PEERCRED) and its TCP connections (the listener's pid from discovery);
- db.statement.name of MySQL records: the statement id the server assigned at
  COM_STMT_PREPARE, from a server-wide counter that the first run has moved on (PostgreSQL
  statement names come from the client and are compared);
- dbwarden.seq, dbwarden.chain: the record's place in the file and the hash chain over
  everything before it (which includes the times above);
- client.process.*, client.user.*, dbwarden.login_*, dbwarden.client.systemd_unit,
  container.id (the local client process) are compared only where both runs resolved it
  from /proc (a non-empty client.process.executable.path in both). The observer names a
  client when it processes the connection's first event: when the client's socket or
  process is gone by then (a short session, an agent behind on a loaded machine), it falls
  back to what its connect(2) hook saw (pid, comm and uid, no executable). The proxy names
  its clients as they connect, from SO_PEERCRED (unix) or that same hook's note (TCP), so
  every steered record must carry the client process: checked on its own.
Every other field (text, operation, collections, fingerprint, status, rows, error message,
parameters, statement names, user, database, transport, client address, server port,
application_name, client process command/executable/uid/login uid/unit, ...) must be equal.

Exit codes: 0 pass, 1 fail, 77 skip (not root, or the agent lacks privilege).
DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip into a failure.
"""

import argparse
import collections
import difflib
import json
import os
import re
import io
import select
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
from pg_cluster import (SETUP_APP, Agent, PgCluster, log, read_audit, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent, verdict)
from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402
from enforce_harness import EnforceAgent  # noqa: E402

import psycopg2  # noqa: E402
import pymysql  # noqa: E402

PG_DB = "dbw_transp"
OTHER_DB = "dbw_other"
TRANSPORTS = ("unix", "tcp")
COPY_ROWS = 50
PGBENCH_TX = 5

DECISION_FIELDS = {"dbwarden.policy.rule", "dbwarden.policy.action"}
# Fields that differ between two runs of the same workload by nature (see the docstring).
RUN_FIELDS = {"time", "duration_us", "connection_id", "client.port", "client.process.pid",
              "process.pid", "dbwarden.seq", "dbwarden.chain"}
TAG_RE = re.compile(r"\ASELECT 'dbw-session:([^']+)'")


# --- the workload ---------------------------------------------------------------------------

def pg_script(w, copy_in, copy_out):
    """A psql -f script; `w` names the transport (tables and channels are per transport)."""
    t = f"items_{w}"
    return f"""\\set VERBOSITY default
CREATE TABLE {t} (id int PRIMARY KEY, name text, qty int);
INSERT INTO {t} SELECT g, 'item ' || g, g % 7 FROM generate_series(1, 25) g;
UPDATE {t} SET qty = qty + 1 WHERE id <= 10;
DELETE FROM {t} WHERE id > 20;
SELECT id, name, qty FROM {t} WHERE id <= 5 ORDER BY id;
SELECT count(*), sum(qty) FROM {t};
SELECT * FROM {t} WHERE id < 0;
SELECT 1/0;
SELECT * FROM no_such_table;
SELEC 1;
INSERT INTO {t} VALUES (1, 'duplicate', 0);
DO $$ BEGIN RAISE NOTICE 'notice from DO: %', 42; RAISE WARNING 'warning from DO'; END $$;
DO $$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'P0042', DETAIL = 'a detail', HINT = 'a hint'; END $$;
DROP TABLE IF EXISTS never_there;
SELECT 1 AS a \\; SELECT 2 AS b \\; SELECT 'three' AS c;
SELECT 1 AS first \\; SELECT 1/0 \\; SELECT 3 AS never;
INSERT INTO {t} VALUES (300, 'multi', 1) \\; UPDATE {t} SET qty = 0 WHERE id = 300 \\; DELETE FROM {t} WHERE id = 300;
BEGIN;
INSERT INTO {t} VALUES (200, 'in tx', 2);
SELECT 1/0;
SELECT 1;
ROLLBACK;
BEGIN;
INSERT INTO {t} VALUES (201, 'kept', 1);
SAVEPOINT sp;
INSERT INTO {t} VALUES (201, 'dup in tx', 1);
ROLLBACK TO SAVEPOINT sp;
COMMIT;
SELECT id, name FROM {t} WHERE id >= 200 ORDER BY id;
PREPARE next_id(int) AS SELECT $1 + 1 AS next;
EXECUTE next_id(41);
EXECUTE next_id('x');
DEALLOCATE next_id;
\\copy {t} FROM '{copy_in}'
\\copy {t} TO '{copy_out}'
\\copy (SELECT id, name FROM {t} WHERE id > 1045 ORDER BY id) TO STDOUT
COPY {t} (id, name, qty) FROM STDIN;
3001\tcopied inline\t1
3002\t\\N\t2
\\.
COPY {t} FROM STDIN;
bad row
\\.
COPY (SELECT id, name FROM {t} WHERE id > 3000 ORDER BY id) TO STDOUT;
LISTEN tr_channel_{w};
NOTIFY tr_channel_{w}, 'hello from psql';
SELECT pg_notify('tr_channel_{w}', 'via pg_notify');
UNLISTEN *;
SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
SELECT 'it''s' AS "quoted ""col"" here", 'héllo wörld ✓ 日本語 🐘' AS uni, E'tab\\there' AS esc;
\\set VERBOSITY verbose
SELECT 1/0;
DROP TABLE {t};
"""


def run_client(cmd, env=None, input_text=None, timeout=180):
    """Runs a client; returns its stdout and stderr as one text, with its exit code."""
    r = subprocess.run(cmd, env=env, input=input_text, text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, errors="replace")
    return r.stdout + f"[exit code {r.returncode}]\n"


def pg_psql(cluster, w, workdir, out):
    copy_in = os.path.join(workdir, "copy_in.tsv")
    copy_out = os.path.join(workdir, f"copy_out_{w}.tsv")
    script = os.path.join(workdir, f"script_{w}.sql")
    with open(script, "w", encoding="utf-8") as f:
        f.write(pg_script(w, copy_in, copy_out))
    env = cluster.client_env(dbname=PG_DB, tcp=w == "tcp", app=f"tr-psql-{w}")
    out[f"psql {w}"] = run_client(["psql", "-X", "-a", "-v", "ON_ERROR_STOP=0", "-f", script],
                                  env=env)
    try:
        with open(copy_out, encoding="utf-8") as f:
            out[f"psql {w} \\copy out file"] = f.read()
        os.unlink(copy_out)
    except FileNotFoundError:
        out[f"psql {w} \\copy out file"] = "<not written>"


def pg_pgbench(cluster, w, out):
    for mode in ("extended", "prepared"):
        env = cluster.client_env(dbname=PG_DB, tcp=w == "tcp", app=f"tr-pgbench-{mode}-{w}")
        out[f"pgbench -M {mode} {w}"] = run_client(
            ["pgbench", "-n", "-M", mode, "-t", str(PGBENCH_TX), "-c", "1", "-j", "1",
             "--random-seed=7"], env=env)


def pg_features(cluster, client, w, out):
    for mode in ("pipeline", "prepared", "cancel"):
        env = cluster.client_env(dbname=PG_DB, tcp=w == "tcp", app=f"tr-libpq-{mode}-{w}")
        out[f"pg_features_client {mode} {w}"] = run_client(
            [client, mode], env=env, input_text="go\n" if mode == "prepared" else None)


def pg_psycopg2(cluster, w, out):
    lines = []

    def connect(app):
        c = psycopg2.connect(host="127.0.0.1" if w == "tcp" else cluster.socket_dir,
                             port=cluster.port, user="postgres", dbname=PG_DB,
                             application_name=f"tr-py-{app}-{w}", connect_timeout=10)
        return c

    def run(cur, sql, params=None):
        try:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else None
            lines.append(f"{sql!r} -> {cur.statusmessage!r} rowcount={cur.rowcount} "
                         f"rows={rows!r}")
        except psycopg2.Error as e:
            lines.append(f"{sql!r} -> ERROR {e.pgcode} {e.pgerror!r} "
                         f"detail={e.diag.message_detail!r}")
            cur.connection.rollback()

    t = f"py_{w}"
    conn = connect("main")
    cur = conn.cursor()
    run(cur, f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
    cur.executemany(f"INSERT INTO {t} VALUES (%s, %s)", [(i, f"v{i}") for i in range(1, 6)])
    lines.append(f"executemany -> {cur.statusmessage!r} rowcount={cur.rowcount}")
    conn.commit()
    run(cur, f"SELECT id, v FROM {t} WHERE id > %s ORDER BY id", (2,))
    run(cur, f"UPDATE {t} SET v = %s WHERE id <= %s", ("upd", 2))
    run(cur, f"INSERT INTO {t} VALUES (1, 'dup')")
    run(cur, "SELECT %s::int", ("not a number",))
    run(cur, "DO $$ BEGIN RAISE NOTICE 'py notice %', 7; END $$")
    lines.append(f"notices: {conn.notices!r}")
    conn.commit()
    named = conn.cursor(name="tr_cursor")
    named.itersize = 3
    named.execute(f"SELECT id, v FROM {t} ORDER BY id")
    lines.append(f"named cursor rows: {[r for r in named]!r}")
    named.close()
    conn.commit()
    src = io.StringIO("".join(f"{i}\tcopied {i}\n" for i in range(100, 110)))
    cur.copy_expert(f"COPY {t} FROM STDIN", src)
    lines.append(f"copy in -> {cur.statusmessage!r} rowcount={cur.rowcount}")
    dst = io.StringIO()
    cur.copy_expert(f"COPY (SELECT * FROM {t} ORDER BY id) TO STDOUT", dst)
    lines.append(f"copy out -> {cur.statusmessage!r} {dst.getvalue()!r}")
    conn.commit()

    # LISTEN on one connection, NOTIFY from another; the notification names the notifier.
    listener, notifier = connect("listen"), connect("notify")
    listener.autocommit = notifier.autocommit = True
    listener.cursor().execute(f"LISTEN tr_py_{w}")
    notifier.cursor().execute(f"NOTIFY tr_py_{w}, 'hello from psycopg2'")
    got = []
    for _ in range(50):
        if select.select([listener], [], [], 0.2)[0]:
            listener.poll()
            got.extend(listener.notifies)
            listener.notifies.clear()
        if got:
            break
    lines.append("notifications: " + repr([
        (n.channel, n.payload, n.pid == notifier.get_backend_pid()) for n in got]))
    listener.close()
    notifier.close()

    # Server-side cancel: a CancelRequest on a connection of its own, while pg_sleep runs.
    conn.autocommit = True
    timer = threading.Timer(1.0, conn.cancel)
    timer.start()
    run(cur, "SELECT pg_sleep(30)")
    timer.join()
    run(cur, "SELECT 'after cancel'")
    run(cur, f"DROP TABLE {t}")
    conn.close()
    out[f"psycopg2 {w}"] = "\n".join(lines) + "\n"


def my_cli_script(w, infile):
    t = f"items_{w}"
    return f"""SELECT 'dbw-session:cli-{w}' AS tag;
CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(64), qty INT);
INSERT INTO {t} VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);
UPDATE {t} SET qty = qty + 1 WHERE id <= 2;
SELECT * FROM {t} ORDER BY id;
SELECT * FROM missing_table;
SELEC 1;
INSERT INTO {t} VALUES (1, 'dup', 0);
SELECT 1/0 AS div;
SELECT CAST('12abc' AS INTEGER) AS trunc;
SHOW WARNINGS;
PREPARE s FROM 'SELECT id, name FROM {t} WHERE id >= ?';
SET @a = 2;
EXECUTE s USING @a;
DEALLOCATE PREPARE s;
LOAD DATA LOCAL INFILE '{infile}' INTO TABLE {t} FIELDS TERMINATED BY '\\t';
SELECT COUNT(*), SUM(qty) FROM {t};
DELIMITER //
SELECT 1 AS one; SELECT 2 AS two; SELECT name FROM {t} WHERE id = 1//
SELECT 1 AS one; SELECT * FROM missing_table; SELECT 3 AS three//
CREATE PROCEDURE two_results_{w}() BEGIN SELECT 1 AS a; SELECT 2 AS b; END//
DELIMITER ;
CALL two_results_{w}();
DROP PROCEDURE two_results_{w};
START TRANSACTION;
INSERT INTO {t} VALUES (500, 'rolled back', 0);
ROLLBACK;
SELECT COUNT(*) FROM {t} WHERE id = 500;
use dbw_nosuch
use {OTHER_DB}
SELECT DATABASE();
USE {TEST_DB};
SELECT DATABASE();
DROP TABLE {t};
"""


def my_cli(server, w, workdir, infile, out):
    script = my_cli_script(w, infile)
    cmd = server.client_args(tcp=w == "tcp") + ["--batch", "--force", "-vvv", "--show-warnings",
                                                "--local-infile=1"]
    out[f"mariadb cli {w}"] = run_client(cmd, input_text=script)


def my_pymysql(server, w, infile, out):
    lines = []
    kw = dict(user=APP_USER, password=APP_PASSWORD, database=TEST_DB, autocommit=True,
              local_infile=True, connect_timeout=10,
              client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    if w == "tcp":
        kw.update(host="127.0.0.1", port=server.port)
    else:
        kw.update(unix_socket=server.socket_path)
    conn = pymysql.connect(**kw)
    cur = conn.cursor()

    def run(sql, args=None):
        try:
            cur.execute(sql, args)
            results = [(cur.rowcount, cur.fetchall(), cur.lastrowid)]
            while cur.nextset():
                results.append((cur.rowcount, cur.fetchall(), cur.lastrowid))
            lines.append(f"{sql!r} -> {results!r} warnings={conn.show_warnings()!r}")
        except pymysql.MySQLError as e:
            lines.append(f"{sql!r} -> ERROR {e.args!r}")

    t = f"py_{w}"
    run(f"SELECT 'dbw-session:pymysql-{w}'")
    run(f"CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(8))")
    cur.executemany(f"INSERT INTO {t} (v) VALUES (%s)", ["a", "b", "c"])
    lines.append(f"executemany -> rowcount={cur.rowcount} lastrowid={cur.lastrowid}")
    run(f"INSERT INTO {t} (v) VALUES (%s)", ("d",))
    run(f"SELECT id, v FROM {t} WHERE id >= %s ORDER BY id", (2,))
    run(f"UPDATE {t} SET v = 'z' WHERE id IN (1, 2)")
    run(f"SELECT nope FROM {t}")
    run(f"INSERT INTO {t} (v) VALUES ('much too long for eight')")
    run("SELECT 1/0, CAST('7x' AS INTEGER)")
    run(f"SELECT 1; SELECT COUNT(*) FROM {t}; INSERT INTO {t} (v) VALUES ('m')")
    run("SELECT 1; SELECT * FROM missing_table; SELECT 3")
    run(f"LOAD DATA LOCAL INFILE '{infile}' INTO TABLE {t} FIELDS TERMINATED BY '\\t' (id, v)")
    run(f"SELECT COUNT(*) FROM {t}")
    conn.select_db(OTHER_DB)
    run("SELECT DATABASE()")
    conn.ping(reconnect=False)
    conn.select_db(TEST_DB)
    run(f"DROP TABLE {t}")
    conn.close()
    out[f"pymysql {w}"] = "\n".join(lines) + "\n"


def my_stmt(server, client, w, out):
    where = ["--port", str(server.port)] if w == "tcp" else ["--socket", server.socket_path]
    out[f"my_stmt_client {w}"] = run_client(
        [client] + where + ["--user", APP_USER, "--password", APP_PASSWORD, "--database",
                            TEST_DB, "--session", f"stmt-{w}", "--table", f"stmt_{w}"])


def reset_state(cluster, server):
    """Both runs start from the same state: fresh databases (as the harness, unrecorded)."""
    cluster.setup_sql(f"DROP DATABASE IF EXISTS {PG_DB}")
    cluster.setup_sql(f"CREATE DATABASE {PG_DB}")
    cluster.pgbench(["-i", "-q", "-s", "1"], dbname=PG_DB, app=SETUP_APP)
    server.setup_sql(f"DROP DATABASE IF EXISTS {TEST_DB}; CREATE DATABASE {TEST_DB}; "
                     f"DROP DATABASE IF EXISTS {OTHER_DB}; CREATE DATABASE {OTHER_DB}; "
                     f"GRANT ALL PRIVILEGES ON {OTHER_DB}.* TO '{APP_USER}'@'%'; "
                     f"GRANT ALL PRIVILEGES ON {OTHER_DB}.* TO '{APP_USER}'@'localhost'")


def run_workload(args, cluster, server, workdir):
    out = collections.OrderedDict()
    infile = os.path.join(workdir, "load_data.tsv")
    for w in TRANSPORTS:
        pg_psql(cluster, w, workdir, out)
        pg_pgbench(cluster, w, out)
        pg_features(cluster, args.client, w, out)
        pg_psycopg2(cluster, w, out)
        my_cli(server, w, workdir, infile, out)
        my_pymysql(server, w, infile, out)
        if args.stmt_client:
            my_stmt(server, args.stmt_client, w, out)
    return out


# --- comparing --------------------------------------------------------------------------------

_NORMALISE = [
    # psql: Asynchronous notification "c" with payload "p" received from server process
    # with PID 1234.
    (re.compile(r"(received from server process with PID) \d+"), r"\1 <pid>"),
    # pgbench's figures.
    (re.compile(r"^(latency average|latency stddev|initial connection time|tps) = .*$", re.M),
     r"\1 = <timing>"),
    # mariadb -vvv: "3 rows in set (0.001 sec)", "Query OK, 1 row affected (0.002 sec)".
    (re.compile(r"\(\d+\.\d+ sec\)"), "(<t> sec)"),
    # The server's view of a TCP client (my_stmt_client prints it): a new port each time.
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
]


def normalise(text):
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text


def compare_outputs(direct, steered, failures):
    for name in list(direct) + [n for n in steered if n not in direct]:
        a, b = normalise(direct.get(name, "<absent>")), normalise(steered.get(name, "<absent>"))
        if a != b:
            diff = "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(),
                                                  f"{name} (direct)", f"{name} (steered)",
                                                  lineterm="", n=2))
            failures.append(f"client-visible output of {name} differs:\n{diff[:6000]}")


def sessions_of(records):
    """Records per connection, each connection named `label#n` (n: its place among the
    connections of that label, by the time of its first statement)."""
    by_conn = collections.OrderedDict()
    for r in records:
        by_conn.setdefault(r.get("connection_id"), []).append(r)
    named = []
    for recs in by_conn.values():
        label = None
        for r in recs:
            m = TAG_RE.match(str(r.get("db.query.text", "")))
            if m:
                label = m.group(1)
                break
        label = label or recs[0].get("db.client.application_name") or "<unnamed>"
        named.append((min(r.get("time", "") for r in recs), label, recs))
    named.sort(key=lambda x: x[0])
    seen = collections.Counter()
    out = collections.OrderedDict()
    for _, label, recs in named:
        seen[label] += 1
        out[f"{label}#{seen[label]}"] = recs
    return out


def comparable(record):
    out = {k: v for k, v in record.items() if k not in DECISION_FIELDS | RUN_FIELDS}
    if record.get("db.system.name") in ("mysql", "mariadb"):
        out.pop("db.statement.name", None)  # the server's own counter (see the docstring)
    return out


def without_client_process(record):
    return {k: v for k, v in record.items() if not k.startswith("client.process.") and
            k not in ("client.user.id", "client.user.name", "dbwarden.login_uid",
                      "dbwarden.login_user", "dbwarden.client.systemd_unit", "container.id")}


def resolved(record):
    return bool(record.get("client.process.executable.path"))


def one_line(record):
    return json.dumps(comparable(record), sort_keys=True, ensure_ascii=False)[:400]


def compare_records(direct, steered, failures):
    d, s = sessions_of(direct), sessions_of(steered)
    if list(d) != list(s):
        failures.append("audit: the connections differ (label#n in order of their first "
                        "statement):\n" + "\n".join(difflib.unified_diff(
                            list(d), list(s), "direct", "steered", lineterm="")))
    compared = 0
    unresolved = [0, 0]  # records whose client process one run did not resolve: direct, steered
    for name in [n for n in d if n in s]:
        a, b = d[name], s[name]
        if len(a) != len(b):
            diff = "\n".join(difflib.unified_diff([one_line(r) for r in a],
                                                  [one_line(r) for r in b], f"{name} (direct)",
                                                  f"{name} (steered)", lineterm="", n=1))
            failures.append(f"audit: {name}: {len(a)} records direct, {len(b)} steered:\n"
                            f"{diff[:6000]}")
            continue
        for i, (ra, rb) in enumerate(zip(a, b)):
            ca, cb = comparable(ra), comparable(rb)
            if not (resolved(ra) and resolved(rb)):
                ca, cb = without_client_process(ca), without_client_process(cb)
                unresolved[0 if not resolved(ra) else 1] += 1
            compared += 1
            if ca == cb:
                continue
            fields = sorted(k for k in set(ca) | set(cb) if ca.get(k, "<absent>") !=
                            cb.get(k, "<absent>"))
            failures.append(f"audit: {name} record {i + 1} ({str(ra.get('db.query.text'))[:80]!r})"
                            " differs:\n" + "\n".join(
                                f"    {k}: direct {ca.get(k, '<absent>')!r}, steered "
                                f"{cb.get(k, '<absent>')!r}" for k in fields))
    log(f"client process not resolved from /proc: {unresolved[0]} direct records, "
        f"{unresolved[1]} steered records (their client.process.* not compared)")
    # The server pid: present in both runs (PostgreSQL's backends differ by nature).
    for run_name, recs in (("direct", direct), ("steered", steered)):
        without = [r for r in recs if not r.get("process.pid")]
        if without:
            failures.append(f"audit: {len(without)} {run_name} records without process.pid, "
                            f"e.g. {one_line(without[0])}")
    for transport in ("unix", "tcp"):
        my_pids = {run_name: {r.get("process.pid") for r in recs
                              if r.get("db.system.name") in ("mysql", "mariadb") and
                              r.get("network.transport") == transport}
                   for run_name, recs in (("direct", direct), ("steered", steered))}
        if my_pids["direct"] != my_pids["steered"]:
            failures.append(f"audit: MariaDB's process.pid ({transport}) differs: direct "
                            f"{my_pids['direct']}, steered {my_pids['steered']}")
    # The proxy names every local client as it connects: SO_PEERCRED (unix), the capture's
    # connect hook and /proc (TCP).
    anonymous = [r for r in steered if not resolved(r)]
    if anonymous:
        failures.append(f"audit: {len(anonymous)} steered records without the client "
                        f"process, e.g. {one_line(anonymous[0])}")
    return compared


def check_decisions(direct, steered, failures):
    marked = [r for r in direct if DECISION_FIELDS & set(r)]
    if marked:
        failures.append(f"audit: {len(marked)} direct records carry decision fields, e.g. "
                        f"{json.dumps(marked[0])[:300]}")
    unallowed = [r for r in steered if r.get("dbwarden.policy.action") != "allow"]
    if unallowed:
        failures.append(f"audit: {len(unallowed)} steered records without "
                        f"dbwarden.policy.action \"allow\", e.g. {json.dumps(unallowed[0])[:300]}")


def check_not_vacuous(outputs, records, failures):
    """The workload did what it is meant to: a comparison of two empty runs proves nothing."""
    joined = "\n".join(outputs.values())
    for marker in ("Asynchronous notification \"tr_channel_unix\" with payload \"hello from psql\"",
                   "NOTICE:  notice from DO: 42", "ERROR:  division by zero", "COPY 50",
                   "number of transactions actually processed: 5/5", "cancelled: 57014",
                   "('tr_py_tcp', 'hello from psycopg2', True)", "ERROR 57014",
                   "Warning (Code 1292): Truncated incorrect INTEGER value", "ERROR 1146 (42S02)",
                   "Records: 4  Deleted: 0  Skipped: 0  Warnings: 0",
                   "pipelined: PGRES_PIPELINE_ABORTED"):
        if marker not in joined:
            failures.append(f"the direct run's outputs lack {marker!r}: the workload is broken")
    if len(records) < 300:
        failures.append(f"the direct run wrote only {len(records)} records")


# --- the runs ---------------------------------------------------------------------------------

def one_run(args, cluster, server, workdir, mode, failures):
    """Resets the databases, runs the agent in `mode` around the workload; returns the
    clients' outputs and the run's audit records (None on a failure to start)."""
    reset_state(cluster, server)
    audit = os.path.join(workdir, f"audit-{mode}.jsonl")
    if mode == "enforce":
        policy = os.path.join(workdir, "empty-policy.yaml")
        with open(policy, "w") as f:
            f.write("rules: []\n")
        agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy,
                             mysql_port=server.port)
    else:
        agent = Agent(args.agent, audit, [cluster.port],
                      extra_args=["--mysql-port", str(server.port)])
    if (rc := start_agent(agent)) is not None:
        failures.append(f"{mode}: the agent did not start (exit {rc})")
        return None, None
    try:
        outputs = run_workload(args, cluster, server, workdir)
        agent.wait_audit_settled(timeout=60, quiet=3.0)
    finally:
        if stop_agent(agent) is not None:
            failures.append(f"{mode}: the agent did not stop cleanly")
            print(f"agent stderr ({mode}):\n{agent.stderr}")
    records, bad = read_audit(audit)
    failures.extend(f"{mode}: {b}" for b in bad)
    log(f"{mode}: {len(records)} audit records, {len(outputs)} client outputs")
    with open(os.path.join(workdir, f"outputs-{mode}.txt"), "w", encoding="utf-8") as f:
        for name, text in outputs.items():
            f.write(f"===== {name}\n{text}")
    return outputs, records


def run(args, workdir):
    failures = []
    with open(os.path.join(workdir, "copy_in.tsv"), "w") as f:
        f.writelines(f"{i}\tfrom file {i}\t{i % 3}\n" for i in range(1001, 1001 + COPY_ROWS))
    with open(os.path.join(workdir, "load_data.tsv"), "w") as f:
        f.writelines(f"{i}\tld{i}\t{i % 5}\n" for i in range(2001, 2005))
    os.makedirs(os.path.join(workdir, "proxy"), exist_ok=True)
    with PgCluster() as cluster, MariaDB() as server:
        direct_out, direct_recs = one_run(args, cluster, server, workdir, "observe", failures)
        if direct_out is None:
            return verdict(failures, workdir)
        steered_out, steered_recs = one_run(args, cluster, server, workdir, "enforce", failures)
        if steered_out is None:
            return verdict(failures, workdir)
    check_not_vacuous(direct_out, direct_recs, failures)
    compare_outputs(direct_out, steered_out, failures)
    compared = compare_records(direct_recs, steered_recs, failures)
    check_decisions(direct_recs, steered_recs, failures)
    log(f"compared {len(direct_out)} client outputs and {compared} audit records")
    return verdict(failures, workdir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--client", required=True, help="path to pg_features_client")
    ap.add_argument("--stmt-client", help="path to my_stmt_client (optional)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF capture and steering, private servers)")
    workdir = pg_cluster.make_workdir("dbw-transp-")
    try:
        return run(args, workdir)
    except BaseException:
        print(f"work dir kept: {workdir}")
        raise


if __name__ == "__main__":
    sys.exit(main())
