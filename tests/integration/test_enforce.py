#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Enforcement mode end to end: real servers, real clients, real steering, the real proxy.

A private PostgreSQL (TCP on 127.0.0.1 and ::1, its unix socket) and a private MariaDB (TCP,
its unix socket) run unchanged; `dbwarden run --mode enforce` steers their clients through
the proxy with a policy made of the shipped default guardrails (packaging/policy.yaml) and
one allow rule for a named application in front of them. Clients use the normal port and
the normal socket path, never the proxy's.

Checks:
- every default guardrail blocks its statement with its error, and the session goes on;
  the same statement from the allowed application runs;
- psql, psycopg2, the mariadb CLI and pymysql, over TCP and the unix socket; one audit
  record per statement, with the real client (pid, uid) and the decision fields;
- identity: PostgreSQL peer authentication and MariaDB unix_socket see the client's uid
  through the proxy: the right OS user logs in, another one fails exactly as directly;
- bypass attempts: a client bound to a source address of its choosing is steered; an
  address the server does not listen on stays refused;
- fail closed and fail open with the agent killed (-9) during pgbench -c 8: the mode takes
  effect, nothing hangs, and a restarted agent steers again.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import json
import threading
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "clients"))
import pg_cluster  # noqa: E402
from syscall_capture_test import (REMOTE_HOST_ADDR, allow_host, delete_netns,  # noqa: E402
                                  make_netns)
from pg_cluster import (Agent, PgCluster, log, read_audit, skip_or_fail, start_agent,  # noqa: E402
                        stop_agent, verdict)
from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402
from enforce_harness import EnforceAgent  # noqa: E402

import psycopg2  # noqa: E402
import pymysql  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED_POLICY = os.path.join(REPO, "packaging", "policy.yaml")
MIGRATOR = "dbw-migrator"  # application_name the allow rule lets through

# Each default guardrail: a statement it must block (PostgreSQL, MariaDB).
PG_BLOCKED = [
    "DROP TABLE guard_t",
    "TRUNCATE guard_t",
    "DELETE FROM guard_t",
    "UPDATE guard_t SET v = 0",
    "ALTER TABLE guard_t DROP COLUMN v",
    "GRANT SELECT ON guard_t TO PUBLIC",
    "COPY guard_t TO PROGRAM 'cat'",
    "CREATE ROLE dbw_intruder LOGIN",
]
MY_BLOCKED = [
    "DROP TABLE guard_t",
    "TRUNCATE guard_t",
    "DELETE FROM guard_t",
    "UPDATE guard_t SET v = 0",
    "ALTER TABLE guard_t DROP COLUMN v",
    "CREATE USER dbw_intruder",
]


def write_policy(workdir):
    """The shipped guardrails with one allow rule in front of them."""
    with open(SHIPPED_POLICY) as f:
        shipped = f.read()
    allow = (f"  - name: migrations\n"
             f"    match: {{application_name: {MIGRATOR}}}\n"
             f"    action: allow\n")
    marker = "rules:\n"
    at = shipped.find(marker)
    if at < 0:
        raise RuntimeError(f"{SHIPPED_POLICY} has no top-level 'rules:' line")
    text = shipped[:at + len(marker)] + allow + shipped[at + len(marker):]
    path = os.path.join(workdir, "policy.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def records_with(records, text):
    return [r for r in records if r.get("db.query.text") == text]


def psql_script(cluster, script, tcp, **env_kw):
    """psql reading `script` from stdin: each statement is its own Query message."""
    return subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=0", "-At"], input=script,
                          text=True, env=cluster.client_env(tcp=tcp, **env_kw),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def check_pg_guardrails(cluster, failures, tcp):
    """Each guardrail blocks with an error; the session goes on."""
    where = "tcp" if tcp else "unix"
    for sql in PG_BLOCKED:
        r = psql_script(cluster, f"{sql};\nSELECT 'after-block-{where}';\n", tcp)
        if "ERROR" not in r.stderr:
            failures.append(f"pg {where}: {sql!r} not blocked: {r.stderr.strip()[:300]}")
        if f"after-block-{where}" not in r.stdout:
            failures.append(f"pg {where}: the session did not go on after {sql!r}: "
                            f"{r.stderr.strip()[:300]}")
    # One message with a blocked statement in it is blocked whole: nothing of it runs.
    r = cluster.psql(["-c", "INSERT INTO guard_t VALUES (2, 2); DELETE FROM guard_t"],
                     check=False, tcp=tcp)
    if "ERROR" not in r.stderr:
        failures.append(f"pg {where}: a multi-statement query with a DELETE was not blocked")
    r = cluster.psql(["-At", "-c", "SELECT count(*) FROM guard_t"], check=False, tcp=tcp)
    if r.stdout.strip() != "1":
        failures.append(f"pg {where}: guard_t changed under the guardrails: {r.stdout.strip()} "
                        f"{r.stderr.strip()}")


def check_pg_allowed_identity(cluster, failures):
    r = cluster.psql(["-c", "CREATE TABLE guard_m (v int); DROP TABLE guard_m"], check=False,
                     app=MIGRATOR)
    if r.returncode != 0 or "ERROR" in r.stderr:
        failures.append(f"pg: the migrator's DROP TABLE was not allowed: {r.stderr.strip()}")


def check_psycopg2(cluster, failures):
    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                            dbname="postgres", connect_timeout=10)
    conn.autocommit = True
    cur = conn.cursor()
    try:
        cur.execute("DELETE FROM guard_t")
        failures.append("psycopg2: DELETE without WHERE was not blocked")
    except psycopg2.Error as e:
        if e.pgcode is None:
            failures.append(f"psycopg2: block without SQLSTATE: {e}")
    cur.execute("SELECT %s::text", ("psycopg2-after-block",))
    if cur.fetchone()[0] != "psycopg2-after-block":
        failures.append("psycopg2: wrong answer after a block")
    conn.close()


def check_mariadb(server, failures, tcp):
    where = "tcp" if tcp else "unix"
    for sql in MY_BLOCKED:
        r = server.cli(f"{sql};\nSELECT 'after-block-{where}';\n", force=True, tcp=tcp)
        if "ERROR" not in r.stderr:
            failures.append(f"mariadb {where}: {sql!r} not blocked: {r.stderr.strip()[:300]}")
        if f"after-block-{where}" not in r.stdout:
            failures.append(f"mariadb {where}: the session did not go on after {sql!r}")
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user=APP_USER,
                           password=APP_PASSWORD, database=TEST_DB, connect_timeout=10)
    cur = conn.cursor()
    try:
        cur.execute("DELETE FROM guard_t")
        failures.append("pymysql: DELETE without WHERE was not blocked")
    except pymysql.MySQLError as e:
        log(f"pymysql blocked as expected: {e}")
    cur.execute("SELECT 'pymysql-after-block'")
    if cur.fetchone()[0] != "pymysql-after-block":
        failures.append("pymysql: wrong answer after a block")
    conn.close()


def run_as(user, args, env=None, input_text=None):
    pw = pwd.getpwnam(user)

    def demote():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return subprocess.run(args, env=env, preexec_fn=demote, text=True, input=input_text,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def check_identity(cluster, server, failures):
    """peer and unix_socket authentication see the client's uid through the proxy."""
    # Role "nobody" may log in over the socket only as OS user nobody (pg_hba: peer).
    ok = run_as("nobody", ["psql", "-X", "-At", "-c", "SELECT current_user"],
                env=cluster.client_env(user="nobody"))
    if ok.returncode != 0 or ok.stdout.strip() != "nobody":
        failures.append(f"identity: OS user nobody could not log in as role nobody (peer) "
                        f"through the proxy: {ok.stderr.strip()}")
    bad = cluster.psql(["-At", "-c", "SELECT current_user"], check=False, user="nobody")
    if bad.returncode == 0 or "peer authentication failed" not in bad.stderr.lower():
        failures.append(f"identity: OS user root logged in as role nobody (peer): rc "
                        f"{bad.returncode} {bad.stdout.strip()} {bad.stderr.strip()}")
    # MariaDB nobody@localhost is IDENTIFIED VIA unix_socket: OS user nobody yes, root no.
    cmd = ["mariadb", "--no-defaults", "-u", "nobody", "--protocol=SOCKET",
           f"--socket={server.socket_path}", "-N", "-e", "SELECT CURRENT_USER()"]
    good = run_as("nobody", cmd)
    if good.returncode != 0 or "nobody@localhost" not in good.stdout:
        failures.append(f"identity: OS user nobody could not log in as nobody (unix_socket) "
                        f"through the proxy: {good.stderr.strip()}")
    other = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
    if other.returncode == 0 or "access denied" not in other.stderr.lower():
        failures.append(f"identity: OS user root logged in as MariaDB nobody (unix_socket) "
                        f"through the proxy: rc {other.returncode} {other.stdout.strip()} "
                        f"{other.stderr.strip()}")


def pg_startup_query(sock, sql):
    """A minimal PostgreSQL session on a connected socket: returns the server's reply bytes."""
    def msg(kind, body):
        return kind + (len(body) + 4).to_bytes(4, "big") + body
    params = b"user\0postgres\0database\0postgres\0\0"
    sock.sendall((len(params) + 8).to_bytes(4, "big") + (3 << 16).to_bytes(4, "big") + params)
    buf = b""
    while b"Z\0\0\0\x05" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    sock.sendall(msg(b"Q", sql.encode() + b"\0"))
    reply = b""
    while not reply.endswith(b"Z\0\0\0\x05I") and not reply.endswith(b"Z\0\0\0\x05T"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply


def check_bypass(cluster, failures):
    # A client that picks its own source address and port (as the proxy's upstream does)
    # is still steered: its DROP is blocked.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", cluster.port))
    reply = pg_startup_query(s, "DROP TABLE guard_t")
    s.close()
    if b"C42501" not in reply and b"dbwarden" not in reply:
        failures.append(f"bypass: a client bound to its own source was not steered: {reply[:200]}")
    # Over IPv6 loopback too.
    try:
        s6 = socket.create_connection(("::1", cluster.port), timeout=10)
        reply = pg_startup_query(s6, "DROP TABLE guard_t")
        s6.close()
        if b"C42501" not in reply and b"dbwarden" not in reply:
            failures.append(f"bypass: ::1 was not steered: {reply[:200]}")
    except OSError as e:
        failures.append(f"bypass: ::1 connection failed: {e}")
    # An address the server does not listen on stays closed.
    try:
        socket.create_connection(("127.0.0.2", cluster.port), timeout=5).close()
        failures.append("bypass: 127.0.0.2 (not a server address) accepted a connection")
    except ConnectionRefusedError:
        pass
    except OSError as e:
        failures.append(f"bypass: 127.0.0.2 gave {e!r}, not a refusal")


def check_remote_client(cluster, netns, failures):
    """A client in another network namespace (a remote host, over a veth pair) connecting to
    the server's address on that link is steered too."""
    r = subprocess.run(["ip", "netns", "exec", netns, "psql", "-X", "-v", "ON_ERROR_STOP=0",
                        "-At", "-h", REMOTE_HOST_ADDR[0], "-p", str(cluster.port), "-U",
                        "postgres", "postgres"],
                       input="DROP TABLE guard_t;\nSELECT 'remote-after-block';\n", text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if "ERROR" not in r.stderr or "remote-after-block" not in r.stdout:
        failures.append(f"remote client via {REMOTE_HOST_ADDR[0]}: not steered or the session "
                        f"did not go on: {r.stdout.strip()} {r.stderr.strip()[:300]}")


def check_reload(agent, cluster, policy, failures):
    """SIGHUP applies an edited policy at once; a broken file keeps the running one."""
    def reloads(result):
        text = agent.scrape()
        for line in text.splitlines():
            if line.startswith(f'dbwarden_config_reloads_total{{result="{result}"}}'):
                return float(line.split()[-1])
        return 0.0

    def sighup_and_wait(result):
        before = reloads(result)
        os.kill(agent.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and reloads(result) <= before:
            time.sleep(0.1)
        return reloads(result) > before

    with open(policy) as f:
        original = f.read()
    probe = "SELECT * FROM reload_probe_t"
    rule = ("  - name: reload-probe\n    match: {collections: [reload_probe_t]}\n"
            "    action: block\n    message: \"dbwarden: reload probe\"\n")
    try:
        with open(policy, "w") as f:
            f.write(original.replace("rules:\n", "rules:\n" + rule, 1))
        if not sighup_and_wait("ok"):
            failures.append("reload: SIGHUP with a good policy was not counted ok")
        r = cluster.psql(["-c", probe], check=False, tcp=True)
        if "reload probe" not in r.stderr:
            failures.append(f"reload: the reloaded rule does not block: {r.stderr.strip()}")
        with open(policy, "w") as f:
            f.write("rules:\n  - name: [broken\n")
        if not sighup_and_wait("failed"):
            failures.append("reload: a broken policy file was not counted as a failed reload")
        r = cluster.psql(["-c", probe], check=False, tcp=True)
        if "reload probe" not in r.stderr:
            failures.append("reload: a broken policy file replaced the running policy")
    finally:
        with open(policy, "w") as f:
            f.write(original)
        sighup_and_wait("ok")


def check_cancel(cluster, failures):
    """A CancelRequest (a connection of its own) reaches the right backend through the proxy."""
    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                            dbname="postgres", connect_timeout=10)
    timer = threading.Timer(1.0, conn.cancel)
    timer.start()
    t0 = time.monotonic()
    try:
        conn.cursor().execute("SELECT pg_sleep(30)")
        failures.append("cancel: pg_sleep(30) was not cancelled")
    except psycopg2.Error as e:
        if e.pgcode != "57014":
            failures.append(f"cancel: expected SQLSTATE 57014, got {e.pgcode}: {e}")
    took = time.monotonic() - t0
    timer.join()
    conn.close()
    if took > 10:
        failures.append(f"cancel: took {took:.1f}s")


def check_records(records, failures):
    for where in ("tcp", "unix"):
        text = f"SELECT 'after-block-{where}'"
        # psql (PostgreSQL) and the mariadb CLI each ran it once per guardrail.
        got = records_with(records, text)
        expected = len(PG_BLOCKED) + len(MY_BLOCKED)
        if len(got) != expected:
            failures.append(f"records: {text!r}: {len(got)} records, expected {expected} "
                            "(one per statement)")
    blocked = [r for r in records if r.get("dbwarden.policy.action") == "block"]
    if len(blocked) < len(PG_BLOCKED) * 2 + len(MY_BLOCKED) * 2:
        failures.append(f"records: only {len(blocked)} blocked records")
    for r in blocked:
        if not r.get("dbwarden.policy.rule"):
            failures.append(f"records: a block without its rule: {json.dumps(r)[:300]}")
            break
        if r.get("db.response.status_code") in (None, "00000"):
            failures.append(f"records: a block without an error status: {json.dumps(r)[:300]}")
            break
    # The real client: psql's pid and uid, not the agent's.
    psql_records = [r for r in blocked if r.get("client.process.command") == "psql"]
    if not psql_records:
        failures.append("records: no blocked record names psql as its client process")
    agent_named = [r for r in records if r.get("client.process.command", "").startswith("dbw")]
    if agent_named:
        failures.append(f"records: {len(agent_named)} records name the agent as the client")


def check_observer_off(args, cluster, workdir, policy, mysql_port, failures):
    """--enforce-observer off: no capture program is pinned or reads anything; the proxy
    alone writes one record per steered statement, with the client and the decision; a
    connection open before enforcement is logged as not audited, and is not."""
    early = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                             dbname="postgres", connect_timeout=10)
    early.autocommit = True
    audit = os.path.join(workdir, "audit-observer-off.jsonl")
    agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy,
                         mysql_port=mysql_port, observer="off")
    if start_agent(agent) is not None:
        failures.append("observer off: the agent did not start")
        early.close()
        return
    try:
        if "enforce-observer off: no syscall capture" not in agent.stderr:
            failures.append("observer off: the start-up log does not say the capture is off")
        if "kept, NOT audited: enforce-observer is off" not in agent.stderr:
            failures.append("observer off: the connection open before enforcement is not "
                            "logged as not audited")
        if os.path.exists(agent.pin_dir):
            failures.append(f"observer off: a capture is pinned at {agent.pin_dir}")
        early.cursor().execute("SELECT 'observer-off-early'")
        for tcp in (True, False):
            where = "tcp" if tcp else "unix"
            r = psql_script(cluster, f"SELECT 'observer-off-{where}';\nDROP TABLE guard_t;\n"
                            f"SELECT 'observer-off-after-{where}';\n", tcp)
            if f"observer-off-after-{where}" not in r.stdout or "ERROR" not in r.stderr:
                failures.append(f"observer off {where}: not blocked, or the session did not go "
                                f"on: {r.stdout.strip()} {r.stderr.strip()[:300]}")
        agent.wait_audit_settled(timeout=30, quiet=1.5)
        events = agent.metric_sum("dbwarden_capture_events_total")
        if events:
            failures.append(f"observer off: the capture read {events} events")
    finally:
        early.close()
        if stop_agent(agent) is not None:
            failures.append("observer off: the agent did not stop cleanly")
        agent.teardown()
    records, bad = read_audit(audit)
    failures.extend(bad)
    for text, action in (("SELECT 'observer-off-tcp'", "allow"),
                         ("SELECT 'observer-off-unix'", "allow"),
                         ("SELECT 'observer-off-after-tcp'", "allow"),
                         ("SELECT 'observer-off-after-unix'", "allow")):
        got = records_with(records, text)
        if len(got) != 1 or got[0].get("dbwarden.policy.action") != action or \
                got[0].get("client.process.command") != "psql":
            failures.append(f"observer off: {text!r}: expected one {action} record from psql, "
                            f"got {got}")
    drops = records_with(records, "DROP TABLE guard_t")
    if len(drops) != 2 or any(r.get("dbwarden.policy.action") != "block" for r in drops):
        failures.append(f"observer off: expected 2 blocked DROP TABLE records, got {drops}")
    if records_with(records, "SELECT 'observer-off-early'"):
        failures.append("observer off: a connection open before enforcement was audited")


def check_mariadb_pids(records, mariadbd_pid, failures):
    """Steered MariaDB records name the server process in process.pid, over the unix socket
    (SO_PEERCRED) and over TCP (the listener's pid, from discovery) alike."""
    for transport in ("tcp", "unix"):
        mine = [r for r in records if r.get("db.system.name") in ("mysql", "mariadb") and
                r.get("network.transport") == transport and "dbwarden.policy.action" in r]
        pids = {r.get("process.pid") for r in mine}
        if not mine or pids != {mariadbd_pid}:
            failures.append(f"records: steered MariaDB {transport}: process.pid {pids} in "
                            f"{len(mine)} records, expected {{{mariadbd_pid}}} (mariadbd)")


def pgbench_kill_phase(args, cluster, workdir, policy, mysql_port, fail_mode, failures):
    """pgbench -c 8 through the proxy; kill -9 the agent; the fail mode must apply at once."""
    audit = os.path.join(workdir, f"audit-{fail_mode}.jsonl")
    agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy, fail_mode,
                         mysql_port, keep_pins=True)
    rc = start_agent(agent)
    if rc is not None:
        failures.append(f"{fail_mode}: agent did not start")
        return
    bench = subprocess.Popen(["pgbench", "-n", "-S", "-c", "8", "-T", "6", "-h", "127.0.0.1",
                              "-p", str(cluster.port), "-U", "postgres", "postgres"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    killed_at = time.monotonic()
    agent.kill()
    dead_at = time.monotonic()  # the kernel has torn the process down (sanitizer builds: slow)
    log(f"fail {fail_mode}: the agent exited {(dead_at - killed_at) * 1000:.1f} ms after kill -9")
    # How long until the fail mode holds: the first new connection after the exit.
    for where, family, address in (("tcp", socket.AF_INET, ("127.0.0.1", cluster.port)),
                                   ("unix", socket.AF_UNIX,
                                    os.path.join(cluster.socket_dir, f".s.PGSQL.{cluster.port}"))):
        deadline = dead_at + 5
        outcome = None
        while time.monotonic() < deadline:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(1)
            try:
                s.connect(address)
                outcome = "connected"
            except ConnectionRefusedError:
                outcome = "refused"
            except OSError as e:
                outcome = f"error {e.errno}"
            finally:
                s.close()
            if outcome == ("refused" if fail_mode == "closed" else "connected"):
                break
        took_ms = (time.monotonic() - dead_at) * 1000
        log(f"fail {fail_mode} {where}: {outcome} {took_ms:.2f} ms after the agent's exit")
        if outcome != ("refused" if fail_mode == "closed" else "connected"):
            failures.append(f"fail {fail_mode} {where}: first connections after the kill "
                            f"gave {outcome}")
    try:
        bench.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        bench.kill()
        bench.communicate()
        failures.append(f"{fail_mode}: pgbench hung after the proxy died")
    for tcp in (True, False):
        t0 = time.monotonic()
        r = cluster.psql(["-At", "-c", "SELECT 'after-kill'"], check=False, tcp=tcp)
        took = time.monotonic() - t0
        where = "tcp" if tcp else "unix"
        log(f"{fail_mode} {where}: psql after kill rc={r.returncode} in {took:.3f}s, "
            f"{time.monotonic() - killed_at:.3f}s after the kill: {r.stderr.strip()[:120]}")
        if took > 5:
            failures.append(f"{fail_mode} {where}: a connection took {took:.1f}s (hang)")
        if fail_mode == "closed" and r.returncode == 0:
            failures.append(f"fail closed {where}: a client reached the server with the proxy dead")
        if fail_mode == "open" and r.returncode != 0:
            failures.append(f"fail open {where}: client refused with the proxy dead: {r.stderr}")
    # Restart: steering resumes from its pins.
    agent2 = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy, fail_mode,
                          mysql_port, pin_dir=agent.pin_dir, steer_dir=agent.steer_dir,
                          keep_pins=True)
    if start_agent(agent2) is not None:
        failures.append(f"{fail_mode}: restarted agent did not start")
    else:
        r = cluster.psql(["-c", "DROP TABLE guard_t"], check=False, tcp=True)
        if "ERROR" not in r.stderr:
            failures.append(f"{fail_mode}: after restart DROP TABLE was not blocked")
        r = cluster.psql(["-At", "-c", "SELECT 'resumed'"], check=False, tcp=False)
        if r.returncode != 0:
            failures.append(f"{fail_mode}: after restart unix clients fail: {r.stderr.strip()}")
        if stop_agent(agent2) is not None:
            failures.append(f"{fail_mode}: restarted agent did not stop cleanly")
        else:
            check_observe_after_enforce(args, cluster, workdir, agent2, fail_mode, failures)
    agent2.teardown()


def check_observe_after_enforce(args, cluster, workdir, enforcer, fail_mode, failures):
    """`dbwarden run --mode observe` on the pins an enforce run left (stopped cleanly: fail
    closed keeps refusing, the sockets stay locked) removes steering and the locks: clients
    reach the server directly again, and the socket has its mode back."""
    sock = os.path.join(cluster.socket_dir, f".s.PGSQL.{cluster.port}")
    locked_mode = os.stat(sock).st_mode & 0o777
    if fail_mode == "closed":
        r = cluster.psql(["-At", "-c", "SELECT 1"], check=False, tcp=True)
        if r.returncode == 0:
            failures.append("closed: a client reached the server after a clean stop")
        if locked_mode != 0o700:
            failures.append(f"closed: the socket is {oct(locked_mode)} after a clean stop, "
                            "not locked to its owner")
    observer = Agent(args.agent, os.path.join(workdir, f"audit-observe-{fail_mode}.jsonl"),
                     [cluster.port], steer_dir=enforcer.steer_dir)
    if start_agent(observer) is not None:
        failures.append(f"{fail_mode}: the observe-mode agent did not start on enforce pins")
        return
    try:
        if "removed the steering an enforce run left" not in observer.stderr:
            failures.append(f"{fail_mode}: observe mode did not say it removed the steering: "
                            f"{observer.stderr[-600:]}")
        if os.path.exists(enforcer.steer_dir):
            failures.append(f"{fail_mode}: observe mode left {enforcer.steer_dir}")
        mode = os.stat(sock).st_mode & 0o777
        setting = cluster.psql(["-At", "-c", "SHOW unix_socket_permissions"], check=False)
        if setting.returncode != 0 or mode != int(setting.stdout.strip() or "0", 8):
            failures.append(f"{fail_mode}: observe mode left the socket {oct(mode)}, the server "
                            f"made it {setting.stdout.strip()} {setting.stderr.strip()}")
        for tcp in (True, False):
            r = cluster.psql(["-At", "-c", "SELECT 'observed-after-enforce'"], check=False,
                             tcp=tcp)
            if r.returncode != 0:
                failures.append(f"{fail_mode}: in observe mode after enforce, tcp={tcp} "
                                f"clients fail: {r.stderr.strip()}")
        observer.wait_audit_settled(timeout=30, quiet=1.5)
    finally:
        if stop_agent(observer) is not None:
            failures.append(f"{fail_mode}: the observe-mode agent did not stop cleanly")
    records, bad = read_audit(observer.audit_file)
    failures.extend(bad)
    got = records_with(records, "SELECT 'observed-after-enforce'")
    if len(got) != 2 or any("dbwarden.policy.action" in r for r in got):
        failures.append(f"{fail_mode}: observe mode after enforce: expected 2 observed records "
                        f"without a decision, got {len(got)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers)")
    workdir = pg_cluster.make_workdir("dbw-enforce-")
    os.makedirs(os.path.join(workdir, "proxy"), exist_ok=True)
    failures = []
    policy = write_policy(workdir)
    hba = [("local", "peer", "nobody")]
    try:
        netns, host_if = make_netns()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        return skip_or_fail(f"cannot make a network namespace with a veth pair: {e}")
    try:
        return run(args, workdir, policy, hba, netns, failures)
    finally:
        delete_netns(netns, host_if)


def run(args, workdir, policy, hba, netns, failures):
    listen = f"'127.0.0.1,::1,{REMOTE_HOST_ADDR[0]}'"
    with PgCluster(extra_conf={"listen_addresses": listen},
                   hba_rules=hba) as cluster, MariaDB() as server:
        cluster.setup_sql("CREATE TABLE guard_t (id int, v int); INSERT INTO guard_t "
                          "VALUES (1, 1); CREATE ROLE nobody LOGIN")
        # Other OS users reach the sockets (the server's own permissions are the test's).
        for d in (cluster.base, cluster.socket_dir, server.base):
            os.chmod(d, 0o755)
        server.setup_sql(f"CREATE TABLE {TEST_DB}.guard_t (id int, v int); "
                         f"INSERT INTO {TEST_DB}.guard_t VALUES (1, 1); "
                         "CREATE USER nobody@localhost IDENTIFIED VIA unix_socket")
        # IPv6 loopback and the namespace's link too (the harness's pg_hba names 127.0.0.1).
        allow_host(cluster, "::1/128")
        allow_host(cluster, REMOTE_HOST_ADDR[0].rsplit(".", 1)[0] + ".0/24")
        # Open before enforcement: cannot be steered; listed, counted, still observed.
        early = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                                 dbname="postgres", connect_timeout=10)
        early.autocommit = True
        subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-h", cluster.socket_dir, "-p",
                        str(cluster.port), "-U", "postgres", "postgres"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        audit = os.path.join(workdir, "audit.jsonl")
        agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy,
                             mysql_port=server.port)
        rc = start_agent(agent)
        if rc is not None:
            return rc
        def attempt(name, check, *check_args):
            # One check's exception is its failure; the others still run.
            try:
                check(*check_args)
            except Exception as e:  # noqa: BLE001 (reported, never swallowed)
                failures.append(f"{name}: {type(e).__name__}: {e}")

        try:
            for tcp in (False, True):
                attempt(f"pg guardrails tcp={tcp}", check_pg_guardrails, cluster, failures, tcp)
                attempt(f"mariadb tcp={tcp}", check_mariadb, server, failures, tcp)
            attempt("allowed identity", check_pg_allowed_identity, cluster, failures)
            attempt("psycopg2", check_psycopg2, cluster, failures)
            attempt("identity", check_identity, cluster, server, failures)
            attempt("bypass", check_bypass, cluster, failures)
            attempt("remote client", check_remote_client, cluster, netns, failures)
            attempt("cancel", check_cancel, cluster, failures)
            attempt("reload", check_reload, agent, cluster, policy, failures)
            early.cursor().execute("SELECT 'opened-before-enforcement'")
            early.close()
            time.sleep(1.5)  # metrics are published once a second
            agent.wait_audit_settled(timeout=30, quiet=1.5)
            metrics = agent.scrape()
            if agent.metric_sum("dbwarden_policy_decisions_total", metrics) in (None, 0):
                failures.append("metrics: no dbwarden_policy_decisions_total")
            if 'dbwarden_enforcement_state{state="unsteered_connections"} 1' not in metrics:
                failures.append("metrics: the connection opened before enforcement is not "
                                "counted as unsteered")
        finally:
            if stop_agent(agent) is not None:
                failures.append("the enforcing agent did not stop cleanly")
            if failures:
                print("agent stderr:\n" + agent.stderr)
            agent.teardown()
        records, bad = read_audit(audit)
        failures += bad
        check_records(records, failures)
        check_mariadb_pids(records, server.proc.pid, failures)
        early_records = records_with(records, "SELECT 'opened-before-enforcement'")
        if len(early_records) != 1 or "dbwarden.policy.action" in early_records[0]:
            failures.append(f"the connection opened before enforcement: expected one observed "
                            f"record without a decision, got {early_records}")
        log(f"{len(records)} audit records")
        check_observer_off(args, cluster, workdir, policy, server.port, failures)
        for mode in ("closed", "open"):
            pgbench_kill_phase(args, cluster, workdir, policy, server.port, mode, failures)
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
