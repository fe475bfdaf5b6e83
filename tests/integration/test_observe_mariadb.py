#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Acceptance test of MySQL observation: every statement MariaDB logs appears once in the audit.

Starts a private MariaDB with the general query log on, starts `dbwarden run --mysql-port`,
drives the `mariadb` CLI, python3-pymysql and our own prepared-statement client
(clients/my_stmt_client.cc, MariaDB C API) over TCP and over the unix socket, then compares
the server's general log with the agent's audit file statement by statement: text, user,
database, SQLSTATE, row counts, transport and client address. The general log is the
reference; the harness's own setup sessions (user root) are left out. The general log carries
no outcome, so SQLSTATE and row counts come from the statements the harness sent, after it
checked that the server logged exactly those.

Exit codes: 0 pass, 1 fail, 77 skip (not root, or the agent says it lacks privilege).
DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip into a failure.
"""

import argparse
import collections
import difflib
import os
import re
import subprocess
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import (in_workdir, log, read_audit, skip_or_fail, start_agent,  # noqa: E402
                        stop_agent)
from audit_match import (RecordChecker, Report, align, audited_total_problems,  # noqa: E402
                         password_leaks, verify_audit_problems)
from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402

import pymysql  # noqa: E402  (python3-pymysql; loads under /usr/bin/python3)

OTHER_DB = "dbw_other"      # a second database the workload switches to with USE
ANY = object()              # a row count the harness does not check

SETUP_USER = "root"         # the harness's own sessions connect as root
DEFAULT_PG_PORT = 5432      # watched by the agent without --postgres-port


class Step:
    """One statement the server logs as one Query (or Init DB), and the record(s) it gives.

    parts: for a multi-statement COM_QUERY, the statements the agent must cut it into (each a
    Step); statements after a failing one never ran and give no record.
    """

    def __init__(self, sql, rows=ANY, status="00000", command="Query", logged=None,
                 parts=None, client_text=None, params=None):
        self.sql = sql
        self.rows = rows          # expected db.response.returned_rows; None: absent
        self.status = status      # expected SQLSTATE
        self.command = command    # general-log command
        self.logged = sql if logged is None else logged   # general-log argument
        self.parts = parts
        self.client_text = client_text  # what a CLI script says for it; "": sent by the CLI
        self.params = params      # COM_STMT_EXECUTE: db.query.parameter.N values (None: NULL)

    def records(self):
        return self.parts if self.parts is not None else [self]


def err(sql, status):
    # An ERR answer carries no row count.
    return Step(sql, rows=None, status=status)


def tag_step(session):
    """First statement of every session: names it in the log and the audit, and tells the
    harness the client address the server saw ("127.0.0.1:port", or "localhost")."""
    return Step(f"SELECT 'dbw-session:{session}' AS tag, HOST FROM "
                "information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()", rows=1)


def cli_script(session, t, unix):
    """Statements for one `mariadb --force` script. The CLI cuts the script at ';' itself and
    sends each statement as its own COM_QUERY, without the ';'."""
    values = ", ".join(f"({i}, 'item {i}', {i % 7})" for i in range(1, 26))
    return [
        tag_step(session),
        Step(f"CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(64), qty INT)", rows=0),
        Step(f"INSERT INTO {t} VALUES {values}", rows=25),
        Step(f"INSERT INTO {t} VALUES (100, 'single', 1)", rows=1),
        Step(f"UPDATE {t} SET qty = qty + 1 WHERE id <= 10", rows=10),
        Step(f"DELETE FROM {t} WHERE id > 20 AND id <= 25", rows=5),
        Step(f"SELECT id, name FROM {t} WHERE id <= 7 ORDER BY id", rows=7),
        Step(f"SELECT COUNT(*) FROM {t}", rows=1),
        Step(f"SELECT * FROM {t} WHERE id < 0", rows=0),
        err("SELECT * FROM missing_table", "42S02"),
        err("SELEC 1", "42000"),
        err(f"INSERT INTO {t} VALUES (1, 'duplicate', 0)", "23000"),
        Step("SELECT 'it''s' AS `quoted ``col```, 'héllo wörld ✓ 日本語 🐬' AS uni, "
             "'back\\\\slash\\ttab' AS esc", rows=1),
        Step(f"SELECT id,\n       qty\n  FROM {t}\n WHERE id IN (1, 2, 3)", rows=3),
        # The CLI's own `use` command: it asks for the current database, then sends
        # COM_INIT_DB, which the agent records as "USE `db`". A refused one is logged with
        # the server's message instead of the name and leaves the database as it was.
        Step("SELECT DATABASE()", rows=1, client_text=""),
        Step("USE `dbw_nosuch`", rows=None, status="42000", command="Init DB",
             logged=f"Access denied for user '{APP_USER}'@'{'localhost' if unix else '%'}' "
                    "to database 'dbw_nosuch'",
             client_text="use dbw_nosuch"),
        Step("SELECT DATABASE() AS still_in", rows=1),
        Step("SELECT DATABASE()", rows=1, client_text=""),
        Step(f"USE `{OTHER_DB}`", command="Init DB", logged=OTHER_DB,
             client_text=f"use {OTHER_DB}"),
        Step("SELECT DATABASE() AS now_in", rows=1),
        Step(f"SELECT COUNT(*) FROM {TEST_DB}.{t}", rows=1),
        Step(f"DROP TABLE {TEST_DB}.{t}", rows=0),
    ]


def cli_text(steps):
    """The script for a CLI session: `use` is a client command, the rest is SQL."""
    return "\n".join(s.sql + ";" if s.client_text is None else s.client_text
                     for s in steps if s.client_text != "")


def cli_multi_steps(session):
    return [tag_step(session), Step("SELECT 1", rows=1), Step("SELECT 2", rows=1)]


def pymysql_steps(session, t):
    """What pymysql_session sends, in order. executemany of a plain INSERT ... VALUES is
    rewritten by pymysql into one multi-row INSERT: one statement, 4 affected rows."""
    return [
        tag_step(session),
        Step(f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(32))", rows=0),
        Step(f"INSERT INTO {t} (id, v) VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d')", rows=4),
        Step(f"SELECT id, v FROM {t} WHERE id >= 2 ORDER BY id", rows=3),
        Step(f"UPDATE {t} SET v = 'z' WHERE id IN (1,2)", rows=2),
        err(f"SELECT nope FROM {t}", "42S22"),
        Step(f"DELETE FROM {t}", rows=4),
        # One COM_QUERY with several statements (CLIENT_MULTI_STATEMENTS): one general-log
        # entry, one record per statement; nothing after the failing one runs.
        Step(f"SELECT 1; SELECT COUNT(*) FROM {t};\nINSERT INTO {t} VALUES (9, 'x')",
             parts=[Step("SELECT 1", rows=1), Step(f"SELECT COUNT(*) FROM {t}", rows=1),
                    Step(f"INSERT INTO {t} VALUES (9, 'x')", rows=1)]),
        Step("SELECT 1; SELECT * FROM missing_table; SELECT 3",
             parts=[Step("SELECT 1", rows=1), err("SELECT * FROM missing_table", "42S02")]),
        Step(f"DROP TABLE {t}", rows=0),
    ]


def prepare(sql):
    """A COM_STMT_PREPARE the server accepted: logged, but nothing ran, so no record."""
    return Step(sql, command="Prepare", parts=[])


def execute(sql, logged, params, rows=ANY, status="00000"):
    """A COM_STMT_EXECUTE: the general log shows the text with the values put in; the record
    holds the prepared text and the values as parameters."""
    return Step(sql, rows=rows, status=status, command="Execute", logged=logged, params=params)


def my_stmt_steps(session, t):
    """What tests/integration/clients/my_stmt_client.cc sends (MariaDB C API), in order."""
    ins = f"INSERT INTO {t} (id, d, s, n, b) VALUES (?, ?, ?, ?, ?)"
    sel = f"SELECT id, d, s, b FROM {t} WHERE id >= ? ORDER BY id"
    upd = f"UPDATE {t} SET s = ? WHERE id <= ?"

    def ins_logged(i, d, s):
        return (f"INSERT INTO {t} (id, d, s, n, b) VALUES ({i}, {d}, {s}, NULL, "
                f"'blob-{i}-part1;part2')")

    # Parameter values as the decoder renders binary values: integers and doubles in their
    # shortest decimal form, strings and the long-data blob as sent, NULL as null.
    return [
        tag_step(session),
        Step(f"CREATE TABLE {t} (id INT PRIMARY KEY, d DOUBLE, s VARCHAR(64), n INT, b BLOB)",
             rows=0),
        prepare(ins),
        execute(ins, ins_logged(1, "1.5", "'alpha'"),
                ["1", "1.5", "alpha", None, "blob-1-part1;part2"], rows=1),
        execute(ins, ins_logged(2, "-2.25", "'it\\'s'"),
                ["2", "-2.25", "it's", None, "blob-2-part1;part2"], rows=1),
        execute(ins, ins_logged(3, "1e20", "'gamma'"),
                ["3", "1e+20", "gamma", None, "blob-3-part1;part2"], rows=1),
        execute(ins, ins_logged(1, "0", "'dup'"),
                ["1", "0", "dup", None, "blob-1-part1;part2"], rows=None, status="23000"),
        prepare(sel),
        execute(sel, sel.replace("?", "1"), ["1"], rows=3),
        execute(sel, sel.replace("?", "2"), ["2"], rows=2),  # after mysql_stmt_reset
        prepare(upd),
        execute(upd, f"UPDATE {t} SET s = 'updated' WHERE id <= 2", ["updated", "2"], rows=2),
        Step(f"DROP TABLE {t}", rows=0),
    ]


def my_stmt_session(server, client, session, tcp, steps):
    """Runs the C client; checks each outcome it saw against the steps; returns the host."""
    where = ["--port", str(server.port)] if tcp else ["--socket", server.socket_path]
    r = subprocess.run([client] + where + ["--user", APP_USER, "--password", APP_PASSWORD,
                                           "--database", TEST_DB, "--session", session,
                                           "--table", f"stmt_{'tcp' if tcp else 'unix'}"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise HarnessError(f"{session}: my_stmt_client failed: {r.stderr.strip()}")
    got = re.findall(r"^OUTCOME (\S+) (\S+)$", r.stdout, re.M)
    want = [(st.status, "-" if st.rows is None else str(st.rows))
            for st in steps if st.command != "Prepare"]
    if got != want:
        raise HarnessError(f"{session}: the client saw {got}, harness expected {want}")
    return _tag_host(r.stdout)


# Server error number for each SQLSTATE the pymysql workload provokes (pymysql exposes only the
# number): https://mariadb.com/kb/en/mariadb-error-code-reference/
PYMYSQL_ERRNO = {"42S22": 1054, "42S02": 1146}


def pymysql_session(server, session, tcp, steps):
    kw = dict(user=APP_USER, password=APP_PASSWORD, database=TEST_DB, autocommit=True,
              client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, connect_timeout=10)
    if tcp:
        kw.update(host="127.0.0.1", port=server.port)
    else:
        kw.update(unix_socket=server.socket_path)
    conn = pymysql.connect(**kw)
    host, errors = None, []
    try:
        with conn.cursor() as cur:
            for s in steps:
                if s.sql.startswith("INSERT") and s.parts is None:
                    t = s.sql.split()[2]
                    cur.executemany(f"INSERT INTO {t} (id, v) VALUES (%s,%s)",
                                    [(1, "a"), (2, "b"), (3, "c"), (4, "d")])
                    continue
                try:
                    cur.execute(s.sql)
                    if s.sql.startswith("SELECT 'dbw-session:"):
                        host = cur.fetchone()[1]
                    while cur.nextset():
                        pass
                except pymysql.MySQLError as e:
                    errors.append(e.args[0])
    finally:
        conn.close()
    # The general log has no outcomes: the errors the client saw confirm the statuses.
    want = [PYMYSQL_ERRNO[p.status] for st in steps for p in st.records()
            if p.status != "00000"]
    if errors != want:
        raise HarnessError(f"{session}: pymysql saw errors {errors}, harness expected {want}")
    return host


# --- expectations from the general log ---------------------------------------------------------

class Session:
    def __init__(self, name, steps, unix):
        self.name = name
        self.steps = steps
        self.unix = unix
        self.thread_id = None
        self.client_address = None
        self.client_port = None
        self.host = None          # the client address as the server saw it


class Expected:
    """One audit record the agent must have written."""

    def __init__(self, session, step, database, loose):
        self.session = session
        self.text = step.sql
        self.rows = step.rows
        self.status = step.status
        self.database = database
        self.loose = loose
        self.params = step.params


class HarnessError(RuntimeError):
    pass


def build_expected(entries, sessions):
    """Checks that each workload session logged exactly what the harness sent, and turns the
    log into the list of records the agent must have written."""
    by_thread = collections.OrderedDict()
    for e in entries:
        by_thread.setdefault(e.thread_id, []).append(e)
    by_name = {s.name: s for s in sessions}
    expected = []
    for tid, es in by_thread.items():
        connect = next((e for e in es if e.command == "Connect"), None)
        if connect is None or connect.user == SETUP_USER:
            continue
        logged = [e for e in es if e.command in ("Query", "Init DB", "Prepare", "Execute")]
        m = re.match(r"\ASELECT 'dbw-session:([^']+)'", logged[0].argument) if logged else None
        if not m or m.group(1) not in by_name:
            raise HarnessError(f"thread {tid} ({connect.argument}) is no session of the "
                               f"harness: {[e.argument[:80] for e in logged]}")
        s = by_name[m.group(1)]
        s.thread_id = tid
        if (connect.transport == "Socket") != s.unix:
            raise HarnessError(f"session {s.name} connected using {connect.transport}")
        got = [(e.command, e.argument) for e in logged]
        want = [(st.command, st.logged) for st in s.steps]
        if got != want:
            raise HarnessError(f"session {s.name} logged an unexpected sequence:\n" +
                               "\n".join(difflib.unified_diff(
                                   [repr(w)[:200] for w in want],
                                   [repr(g)[:200] for g in got], lineterm="")))
        db = connect.database
        for st in s.steps:
            # A USE that succeeded is recorded in the database it switched to.
            if st.command == "Init DB" and st.status == "00000":
                db = st.logged
            for part in st.records():
                expected.append(Expected(s, part, db, loose=st.parts is not None))
    missing = [s.name for s in sessions if s.thread_id is None]
    if missing:
        raise HarnessError(f"sessions not in the general log: {missing}")
    return expected


# --- comparing ---------------------------------------------------------------------------------


def check_record(exp, rec, server_port):
    """Differences between an expected statement and its audit record, as strings."""
    c = RecordChecker(rec)
    c.text(exp.text, exp.loose)
    # OpenTelemetry's MariaDB table: the system is "mariadb" (from the greeting's version);
    # a failure's db.response.status_code is the error number as a string and error.type is
    # set; the SQLSTATE the harness expects is kept in dbwarden.sqlstate.
    c.want("db.system.name", "mariadb")
    c.want("db.user", APP_USER)
    c.want("db.namespace", exp.database)
    if exp.status == "00000":
        c.want("db.response.status_code", "00000")
        if "error.type" in rec or "dbwarden.sqlstate" in rec:
            c.problems.append("error.type / dbwarden.sqlstate on a statement that succeeded")
    else:
        c.want("dbwarden.sqlstate", exp.status)
        code = rec.get("db.response.status_code")
        if not (isinstance(code, str) and code.isdigit()):
            c.problems.append(f"db.response.status_code {code!r} is not a MySQL error number")
        c.want("error.type", code)
    c.want("server.port", server_port)
    if exp.rows is not ANY:
        c.rows(exp.rows)
    got_params = sorted(k for k in rec if k.startswith("db.query.parameter."))
    want_params = [] if exp.params is None else exp.params
    if got_params != sorted(f"db.query.parameter.{i}" for i in range(len(want_params))):
        c.problems.append(f"parameters: want {len(want_params)}, got keys {got_params}")
    for i, v in enumerate(want_params):
        c.want(f"db.query.parameter.{i}", v)
    if rec.get("dbwarden.statement_unresolved"):
        c.problems.append("dbwarden.statement_unresolved is set")
    c.transport(exp.session.unix, exp.session.client_address, exp.session.client_port)
    c.envelope()
    return c.problems


def session_of(recs):
    """The harness session a connection's records belong to, from its tag statement."""
    for r in recs:
        m = re.match(r"\ASELECT 'dbw-session:([^']+)'", str(r.get("db.query.text", "")))
        if m:
            return m.group(1)
    return None


def compare(expected, records, server_port):
    """Matches expected statements to audit records per session, in order.

    A session is found in the audit by its connection_id: the connection whose records hold
    the session's tag statement. Records of MySQL connections without a tag are extra (the
    agent may also see the harness's root sentinel session: those are not statements of the
    workload, but they are real statements, so root's records are left out instead).
    """
    report = Report(where=lambda e: f"thread {e.session.thread_id} {e.session.name}",
                    where_record=lambda r: f"connection {r.get('connection_id')}")
    exp_by_session = collections.OrderedDict()
    for e in expected:
        exp_by_session.setdefault(e.session.name, []).append(e)
    rec_by_conn = collections.OrderedDict()
    for r in records:
        if r.get("db.system.name") == "mariadb" and r.get("db.user") == SETUP_USER:
            continue
        if r.get("server.port") == DEFAULT_PG_PORT:
            continue  # the agent also watches PostgreSQL's default port; not this test's
        rec_by_conn.setdefault(r.get("connection_id"), []).append(r)
    rec_by_session = collections.OrderedDict()
    for cid, recs in rec_by_conn.items():
        name = session_of(recs)
        if name is None or name not in exp_by_session:
            report.extra.extend(recs)
        elif name in rec_by_session:
            report.other.append(f"session {name} appears on two connection_ids")
            report.extra.extend(recs)
        else:
            rec_by_session[name] = recs

    for name, exps in exp_by_session.items():
        pairs, blocks = align(exps, rec_by_session.get(name, []))
        for op, es, rs in blocks:
            if op == "replace" and len(es) == len(rs):
                # Same number on both sides: most likely the texts differ; show how.
                pairs.extend(zip(es, rs))
            else:
                report.missing.extend(es)
                report.extra.extend(rs)
        report.check_pairs(pairs, lambda e, r: check_record(e, r, server_port))
    return report



# --- the run -----------------------------------------------------------------------------------

def setup(server):
    server.setup_sql(f"CREATE DATABASE {OTHER_DB};"
                     f"GRANT ALL PRIVILEGES ON {OTHER_DB}.* TO '{APP_USER}'@'%';"
                     f"GRANT ALL PRIVILEGES ON {OTHER_DB}.* TO '{APP_USER}'@'localhost'")


def run_workload(server, stmt_client=None):
    """Drives every client; returns the sessions with what each sent."""
    sessions = []
    for transport in ("unix", "tcp"):
        tcp = transport == "tcp"

        name = f"cli-{transport}"
        s = Session(name, cli_script(name, f"items_{transport}", not tcp), unix=not tcp)
        r = server.cli(cli_text(s.steps), force=True, tcp=tcp)
        s.host = _tag_host(r.stdout)
        # The general log has no outcomes: the client's error lines confirm the statuses.
        got = re.findall(r"^ERROR \d+ \(([0-9A-Z]{5})\)", r.stderr, re.M)
        want = [st.status for st in s.steps if st.status != "00000"]
        if got != want:
            raise HarnessError(f"{s.name}: the CLI reports SQLSTATEs {got}, harness expected "
                               f"{want}: {r.stderr.strip()}")
        sessions.append(s)

        s = Session(f"cli-multi-{transport}", cli_multi_steps(f"cli-multi-{transport}"),
                    unix=not tcp)
        r = server.cli(";\n".join(st.sql for st in s.steps), tcp=tcp)
        if r.returncode != 0:
            raise HarnessError(f"{s.name} failed: {r.stderr.strip()}")
        s.host = _tag_host(r.stdout)
        sessions.append(s)

        s = Session(f"pymysql-{transport}",
                    pymysql_steps(f"pymysql-{transport}", f"py_{transport}"), unix=not tcp)
        s.host = pymysql_session(server, s.name, tcp, s.steps)
        sessions.append(s)

        if stmt_client:
            name = f"my-stmt-{transport}"
            s = Session(name, my_stmt_steps(name, f"stmt_{transport}"), unix=not tcp)
            s.host = my_stmt_session(server, stmt_client, name, tcp, s.steps)
            sessions.append(s)

    for s in sessions:
        m = re.match(r"\A(.*):(\d+)\Z", s.host or "")
        if not s.unix:
            if not m:
                raise HarnessError(f"session {s.name}: server reports host {s.host!r}")
            s.client_address, s.client_port = m.group(1), int(m.group(2))
    return sessions


def _tag_host(stdout):
    # --batch output: a header line, then "dbw-session:<name>\t<host>".
    for line in stdout.splitlines():
        if line.startswith("dbw-session:"):
            return line.split("\t")[1]
    return None



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    ap.add_argument("--stmt-client", help="tests/integration/clients/my_stmt_client (built "
                    "when libmariadb-dev is installed); without it, no prepared statements")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop servers on the way out

    if os.geteuid() != 0:
        return skip_or_fail("needs root (CAP_BPF/CAP_SYS_ADMIN) to load BPF programs and to "
                            "run MariaDB as the mysql user; run via `sudo make test`")

    def attempt(workdir):
        try:
            return run(args.agent, os.path.join(workdir, "audit.jsonl"), args.stmt_client)
        except HarnessError as e:
            print(f"FAIL (the harness, not the agent): {e}")
            return 1

    return in_workdir("dbw-integ-mdb-", args.keep, attempt)


def run(agent_exe, audit_path, stmt_client=None):
    with MariaDB() as server:
        setup(server)
        # Setup sessions end before the agent starts: it never sees them.
        agent = pg_cluster.Agent(agent_exe, audit_path, pg_ports=[],
                                 extra_args=["--mysql-port", str(server.port)])
        if (rc := start_agent(agent)) is not None:
            return rc
        try:
            sessions = run_workload(server, stmt_client)
            entries = server.sync_log()
            expected = build_expected(entries, sessions)
            audited = agent.wait_audit_settled(expected=len(expected), timeout=60, quiet=5.0)
        finally:
            stopped = stop_agent(agent)
        if stopped is not None:
            return stopped
        stderr = agent.stderr

    records, bad = read_audit(audit_path)
    report = compare(expected, records, server.port)
    report.other.extend(bad)
    report.other.extend(password_leaks(APP_PASSWORD, audit_path,
                                       {"the agent's stderr": stderr}))
    report.other.extend(verify_audit_problems(agent_exe, audit_path))
    report.other.extend(audited_total_problems(audited, len(expected)))
    log(f"{len(expected)} statements expected, {len(records)} audit records, "
        f"dbwarden_audit_records_total {audited}")
    return report.verdict(agent_stderr=stderr)


if __name__ == "__main__":
    sys.exit(main())
