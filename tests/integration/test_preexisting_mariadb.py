#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""MySQL/MariaDB connections opened before the agent are audited from their next statement.

Issue 15, "Connections found already open": a private MariaDB, the real agent, the real kernel,
and long-lived libmariadb clients (clients/my_loop_client.cc) that connected before the agent
started:
  - over the unix socket and over TCP, each ran text-protocol queries and prepared a statement
    and executed it (binary protocol) before the agent; after the agent is ready each runs
    text queries, executes of the statement prepared before (audited by statement id,
    dbwarden.statement_unresolved) and of a statement prepared after (text and parameters);
  - a long-running connection fires thousands of statements back to back while the agent
    starts (the case the issue found never picked up), then thousands more.
Every statement run after the agent was ready must be audited exactly once; of those running
while it started, the audited ones must be every statement from some point on; no record may
carry text that no client sent (never garbage).

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
from pg_cluster import in_workdir, log, read_audit, short, skip_or_fail, stop_agent  # noqa: E402

PREPARED = "SELECT ? AS n, CONCAT('bin-', ?) AS tag"
TEXT_RE = re.compile(r"\ASELECT '([a-z0-9-]+)-(\d+)' AS tag, (\d+) AS n\Z")
BEFORE, AFTER, LONG_BEFORE, BATCH, LONG_AFTER = 50, 200, 2000, 250, 3000


class LoopClient:
    """One my_loop_client process: one connection, commands over stdin."""

    def __init__(self, exe, server, name, tcp):
        self.name = name
        where = ["--port", str(server.port)] if tcp else ["--socket", server.socket_path]
        self.proc = subprocess.Popen(
            [exe] + where + ["--user", APP_USER, "--password", APP_PASSWORD,
                             "--database", TEST_DB],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_ok(self):
        line = self.proc.stdout.readline()
        if not line.startswith("ok"):
            raise RuntimeError(f"{self.name}: client said {line!r} (exit {self.proc.poll()})")

    def run(self, line):
        self.send(line)
        self.wait_ok()

    def close(self):
        if self.proc.poll() is None:
            self.send("quit")
            self.proc.wait(timeout=30)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--client", required=True, help="path to my_loop_client")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs and run MariaDB")
    return in_workdir("dbw-early-my-", args.keep,
                      lambda workdir: run(args.agent, args.client, workdir))


def run(agent_exe, client_exe, workdir):
    audit_path = os.path.join(workdir, "audit.jsonl")
    problems = []
    batches = []  # (tag, monotonic start) of the long-running connection's batches
    with MariaDB() as server:
        clients = {t: LoopClient(client_exe, server, t, tcp=(t == "tcp")) for t in ("unix", "tcp")}
        longrun = LoopClient(client_exe, server, "long", tcp=False)
        try:
            for t, c in clients.items():
                c.run(f"text {BEFORE} {t}-before")
                c.run("prepare")
                c.run(f"binary {BEFORE} {t}-binbefore")
            longrun.run(f"text {LONG_BEFORE} long-before")
            # Batches back to back on the long-running connection while the agent starts.
            stop = threading.Event()

            def keep_running():
                while not stop.is_set():
                    batches.append((f"long-d{len(batches)}", time.monotonic()))
                    longrun.run(f"text {BATCH} {batches[-1][0]}")

            runner = threading.Thread(target=keep_running)
            runner.start()
            time.sleep(0.5)
            agent = pg_cluster.Agent(agent_exe, audit_path, [],
                                     extra_args=["--mysql-port", str(server.port)])
            try:
                agent.start()
            finally:
                ready_at = time.monotonic()
                time.sleep(1.0)
                stop.set()
                runner.join()
            try:
                longrun.run(f"text {LONG_AFTER} long-after")
                for t, c in clients.items():
                    c.run(f"text {AFTER} {t}-after")
                    c.run(f"binary {AFTER} {t}-binold")  # prepared before the agent
                    c.run("prepare")
                    c.run(f"binary {AFTER} {t}-binnew")
                agent.wait_audit_settled(expected=None, timeout=60, quiet=2.0)
            finally:
                if stop_agent(agent) is not None:
                    problems.append("the agent did not stop cleanly")
        finally:
            for c in list(clients.values()) + [longrun]:
                c.close()
    records, bad = read_audit(audit_path)
    problems += bad
    problems += check([r for r in records if r.get("server.port") == server.port], batches,
                      ready_at)
    for p in problems[:50]:
        print(f"  FAIL {p}")
    if problems:
        print(f"{len(problems)} problem(s); agent stderr:\n{agent.stderr}")
        return 1
    print("PASS")
    return 0


def check(records, batches, ready_at):
    problems = []
    text = collections.Counter()  # (tag, i) -> records
    by_conn = collections.defaultdict(list)
    for r in records:
        by_conn[r.get("connection_id")].append(r)
        q = str(r.get("db.query.text") or "")
        m = TEXT_RE.match(q)
        if m:
            text[(m.group(1), int(m.group(2)))] += 1
        elif q and q != PREPARED:
            problems.append(f"a record with text no client sent: {short(r)}")
        if r.get("db.system.name") != "mariadb":
            problems.append(f"db.system.name {r.get('db.system.name')!r}: {short(r)}")
    for tag, n in [("unix-after", AFTER), ("tcp-after", AFTER), ("long-after", LONG_AFTER)]:
        missing = [i for i in range(n) if text[(tag, i)] != 1]
        if missing:
            problems.append(f"{tag}: {len(missing)} of {n} statements not audited exactly once "
                            f"(first {missing[:5]})")
    # The long-running connection: every statement from the first audited one on, and at
    # least every batch started after the agent was ready.
    during = [(tag, i, started) for tag, started in batches for i in range(BATCH)]
    audited = [text[(tag, i)] for tag, i, _ in during]
    first = next((k for k, n in enumerate(audited) if n), None)
    if first is None:
        problems.append("long-running connection: not one statement of its batches audited")
    else:
        holes = [during[k][:2] for k in range(first, len(during)) if audited[k] != 1]
        if holes:
            problems.append(f"long-running connection: after the first audited statement "
                            f"{during[first][:2]}, {len(holes)} missing or repeated "
                            f"(first {holes[:5]})")
        late = [during[k][:2] for k in range(first) if during[k][2] > ready_at]
        if late:
            problems.append(f"long-running connection: {len(late)} statements issued after the "
                            f"agent was ready not audited (first {late[:5]})")
        log(f"long-running connection: audited from statement {first} of {len(during)} on "
            f"({LONG_BEFORE} more ran before)")
    for bad_tag in ("unix-before", "tcp-before", "long-before"):
        if any(text[(bad_tag, i)] for i in range(LONG_BEFORE)):
            problems.append(f"{bad_tag}: statements from before the agent were audited")
    for t in ("unix", "tcp"):
        conn = [cid for cid, rs in by_conn.items()
                if any(str(r.get("db.query.text", "")).startswith(f"SELECT '{t}-after-")
                       for r in rs)]
        if len(conn) != 1:
            problems.append(f"{t}: its statements spread over connections {conn}")
            continue
        rs = by_conn[conn[0]]
        old = [r for r in rs if r.get("dbwarden.statement_unresolved")]
        if len(old) != AFTER:
            problems.append(f"{t}: {len(old)} executes of the statement prepared before the "
                            f"agent audited, want {AFTER}")
        new = collections.Counter(r.get("db.query.parameter.1") for r in rs
                                  if r.get("db.query.text") == PREPARED)
        missing = [i for i in range(AFTER) if new[f"{t}-binnew-{i}"] != 1]
        if missing:
            problems.append(f"{t}: {len(missing)} executes of the statement prepared after the "
                            f"agent not audited exactly once with their parameters")
    return problems


if __name__ == "__main__":
    sys.exit(main())
