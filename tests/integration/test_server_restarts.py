#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Server restarts under clients that reconnect at once: every statement the server logged
is audited.

Issue 15, acceptance: a private MariaDB and a private PostgreSQL, the real agent started
before them both, and for each server a pool of clients (two over the unix socket, two over
TCP: pymysql, psycopg2) that run uniquely tagged statements back to back and reconnect the
moment a connection fails; PostgreSQL also under `pgbench -C`-style clients (a new
connection for every statement, one over the unix socket and one over TCP: each restart
lands on connections in every phase, handshake included) and behind a pgbouncer in
transaction mode (two clients of the bouncer, whose server connections die and come back
with each restart). Each
server is restarted three times under that load. Counted
against the server's own statement log (MariaDB's general log, PostgreSQL's log_statement):
audited / logged >= 0.999, at most (clients x restarts) logged statements missing (those in
flight at the instant of a restart), none audited twice, none audited that the server did not
log, and every audited statement carries the user from its connection's handshake (captured
from the first byte: the kernel tracks a new server at its first accept).

Exit 77 (skip) without root, or 1 instead when DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402
from pg_cluster import PgCluster, in_workdir, log, read_audit, skip_or_fail, stop_agent  # noqa: E402
from private_server import poll_until  # noqa: E402

import psycopg2  # noqa: E402  (Debian python3-psycopg2, under /usr/bin/python3)
import pymysql  # noqa: E402  (Debian python3-pymysql)

RESTARTS = 3
SECONDS_BETWEEN = 2.0
RATIO = 0.999
PACE_SECONDS = 0.001
TAG_RE = re.compile(r"SELECT 'rs-([a-z]+-[a-z]+-\d+-\d+)'")


def pool(connect, kind, stop, transports=(False, False, True, True)):
    """Starts a client thread per transport (True: TCP); returns them."""
    threads = []
    for n, tcp in enumerate(transports):
        name = f"{kind}-{'tcp' if tcp else 'unix'}-{n}"
        t = threading.Thread(target=client, args=(name, lambda tcp=tcp: connect(tcp), stop))
        t.start()
        threads.append(t)
    return threads


def client(name, connect, stop):
    """Statements back to back; on any failure, reconnect at once (a pool after a restart).
    A client whose kind ends in "c" connects anew for every statement (pgbench -C)."""
    per_statement = name.split("-")[0].endswith("c")
    conn, seq = None, 0
    while not stop.is_set():
        try:
            if conn is None:
                conn = connect()
            cur = conn.cursor()
            cur.execute(f"SELECT 'rs-{name}-{seq}'")
            cur.fetchall()
            seq += 1
            if per_statement:
                conn.close()
                conn = None
            # Paced below what the shared test machine's agent drains at once: this test is
            # about restarts, test_saturation.py about saturation.
            time.sleep(PACE_SECONDS)
        except Exception:  # the server went away, or is not back yet
            seq += 1  # the statement may have been logged: never reuse its tag
            try:
                if conn is not None:
                    conn.close()
            except Exception:
                pass
            conn = None
            time.sleep(0.002)
    if conn is not None:
        conn.close()


def connect_pg(cluster, tcp):
    conn = psycopg2.connect(host="127.0.0.1" if tcp else cluster.socket_dir, port=cluster.port,
                            user="postgres", dbname="postgres", connect_timeout=5,
                            application_name="dbw-restarts")
    conn.autocommit = True
    return conn


def connect_my(server, tcp):
    kw = dict(user=APP_USER, password=APP_PASSWORD, database=TEST_DB, autocommit=True,
              connect_timeout=5)
    if tcp:
        kw.update(host="127.0.0.1", port=server.port)
    else:
        kw.update(unix_socket=server.socket_path)
    return pymysql.connect(**kw)


def connect_bouncer(port):
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                            connect_timeout=5)
    conn.autocommit = True
    return conn


class PgBouncer:
    """A pgbouncer in transaction mode in front of `cluster` (over its unix socket), run as
    the postgres user (it refuses root); stopped by the pid it started."""

    def __init__(self, cluster, workdir):
        self.port = pg_cluster.free_port()
        ini = os.path.join(workdir, "pgbouncer.ini")
        users = os.path.join(workdir, "pgbouncer-users.txt")
        with open(users, "w") as f:
            f.write('"postgres" ""\n')
        with open(ini, "w") as f:
            f.write(f"""[databases]
postgres = host={cluster.socket_dir} port={cluster.port} dbname=postgres user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 20
server_login_retry = 0
""")
        self.proc = subprocess.Popen(["pgbouncer", "-u", pg_cluster.PG_OS_USER, ini],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if poll_until(self._answers, 30) is None:
            self.stop()
            raise RuntimeError("pgbouncer did not answer within 30 s")
        log(f"pgbouncer {self.proc.pid} on 127.0.0.1:{self.port}, transaction pooling")

    def _answers(self):
        try:
            connect_bouncer(self.port).close()
            return True
        except psycopg2.Error:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def under_restarts(server, pools):
    """Runs every (connect, kind, transports) pool while `server` restarts RESTARTS times."""
    stop = threading.Event()
    threads = [t for connect, kind, transports in pools
               for t in pool(connect, kind, stop, transports)]
    kind = "+".join(p[1] for p in pools)
    try:
        for i in range(RESTARTS):
            time.sleep(SECONDS_BETWEEN)
            log(f"{kind}: restart {i + 1} of {RESTARTS}")
            server.restart()
        time.sleep(SECONDS_BETWEEN)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs and run the servers")
    return in_workdir("dbw-restarts-", args.keep, lambda workdir: run(args.agent, workdir))


def run(agent_exe, workdir):
    audit_path = os.path.join(workdir, "audit.jsonl")
    problems = []
    logged = {}
    with PgCluster() as cluster, MariaDB() as my:
        agent = pg_cluster.Agent(agent_exe, audit_path, [cluster.port],
                                 extra_args=["--mysql-port", str(my.port)])
        agent.start()
        try:
            both = (False, False, True, True)
            under_restarts(my, [(lambda tcp: connect_my(my, tcp), "my", both)])
            bouncer = PgBouncer(cluster, workdir)
            try:
                under_restarts(cluster, [(lambda tcp: connect_pg(cluster, tcp), "pg", both),
                                         (lambda tcp: connect_pg(cluster, tcp), "pgc",
                                          (False, True)),
                                         (lambda _: connect_bouncer(bouncer.port), "pgb",
                                          (True, True))])
            finally:
                bouncer.stop()
            logged["my"] = [m.group(1) for e in my.sync_log() if e.command == "Query"
                            for m in [TAG_RE.fullmatch(e.argument)] if m]
            pg_logged = [m.group(1) for e in cluster.sync_log() if e.statement
                         for m in [TAG_RE.fullmatch(e.statement)] if m]
            for kind in ("pg", "pgc", "pgb"):
                logged[kind] = [t for t in pg_logged if t.split("-")[0] == kind]
            agent.wait_audit_settled(expected=None, timeout=60, quiet=3.0)
            drops = agent.metric_sum("dbwarden_capture_dropped_total")
            log(f"capture drops counted by the agent: {drops}")
        finally:
            if stop_agent(agent) is not None:
                problems.append("the agent did not stop cleanly")
    records, bad = read_audit(audit_path)
    problems += bad
    problems += compare(records, logged)
    for p in problems:
        print(f"  FAIL {p}")
    if problems:
        return 1
    print("PASS")
    return 0


def compare(records, logged):
    problems = []
    audited = collections.defaultdict(collections.Counter)
    users = collections.defaultdict(collections.Counter)
    for r in records:
        m = TAG_RE.fullmatch(str(r.get("db.query.text") or "").rstrip(";"))
        if m:
            kind = m.group(1).split("-")[0]
            audited[kind][m.group(1)] += 1
            users[kind][r.get("db.user")] += 1
    want_user = {"my": APP_USER, "pg": "postgres", "pgc": "postgres", "pgb": "postgres"}
    # A connection per statement costs a backend start: fewer statements, still real load.
    least = {"pgc": 200}
    for kind in ("my", "pg", "pgc", "pgb"):
        logged_set = set(logged[kind])
        got = audited[kind]
        missing = logged_set - set(got)
        twice = [t for t, n in got.items() if n > 1]
        unlogged = set(got) - logged_set
        ratio = (len(logged_set) - len(missing)) / max(1, len(logged_set))
        log(f"{kind}: {len(logged_set)} statements logged by the server, "
            f"{len(logged_set) - len(missing)} audited (ratio {ratio:.5f}), "
            f"{len(missing)} missing, users {dict(users[kind])}")
        if len(logged_set) < least.get(kind, 1000):
            problems.append(f"{kind}: only {len(logged_set)} statements logged: no real load")
        if ratio < RATIO:
            problems.append(f"{kind}: audited / logged {ratio:.5f} < {RATIO}")
        if len(missing) > 4 * RESTARTS:
            problems.append(f"{kind}: {len(missing)} missing, more than clients x restarts "
                            f"({4 * RESTARTS}): {sorted(missing)[:10]}")
        if twice:
            problems.append(f"{kind}: {len(twice)} statements audited twice: {twice[:5]}")
        # A statement read by a server process killed before it logged it (PostgreSQL logs
        # after reading): real, and at most one per client and restart too.
        if len(unlogged) > 4 * RESTARTS:
            problems.append(f"{kind}: {len(unlogged)} audited but never logged: "
                            f"{sorted(unlogged)[:5]}")
        others = {u: n for u, n in users[kind].items() if u != want_user[kind]}
        if others:
            problems.append(f"{kind}: records without the handshake's user: {others}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
