#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every socket syscall family is captured: the project's own PostgreSQL client
(syscall_pgclient) talks to a real PostgreSQL with read/write, send/recv, readv/writev,
sendmsg/recvmsg and sendmmsg/recvmmsg, over TCP IPv4, TCP IPv6 and the unix socket, and
every statement must appear exactly once in the real agent's audit log with its text, row
count and SQLSTATE.

Second part, the client side: a second PostgreSQL runs in a network namespace of its own
(veth pair 10.231.<n>.1 <-> .2), so from the agent's host namespace it is a remote server:
nothing of it is discovered or tracked as a server. The agent is told its port
(--postgres-port) and the client, in the host namespace, connects to 10.231.<n>.2: its
statements must be audited once each, captured inside the client, with the client's
address and port and the client process as the peer. The local server's statements are
recorded once although both ends are on this host (the client end is not captured).

Exit codes: 0 pass, 1 fail, 77 skip (not root / no netns support) unless
DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import collections
import contextlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pg_cluster  # noqa: E402
from pg_cluster import (PgCluster, log, read_audit, short, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent)

MODES = ("rw", "send", "vec", "msg", "mmsg")
APP_PREFIX = "dbw-sc-"


def statements(tag):
    """(sql, rows, sqlstate) a client run sends; every text is unique to its run."""
    return [
        (f"SELECT g, 'r-{tag}' FROM generate_series(1, 7) g", 7, "00000"),
        (f"CREATE TEMP TABLE t_{tag.replace('-', '_')} (a int)", None, "00000"),
        (f"INSERT INTO t_{tag.replace('-', '_')} SELECT generate_series(1, 5)", 5, "00000"),
        # Longer than one 8 KiB capture chunk: split across records and iovecs.
        (f"SELECT length('{tag}{'z' * 12000}')", 1, "00000"),
        (f"SELECT 1/0 AS e_{tag.replace('-', '_')}", None, "22012"),
    ]


def run_client(client, mode, host, port, app, stmts, sleep_ms=0):
    # sleep_ms keeps the client alive long enough for the agent (which reads the ring buffer
    # on a timer) to name its process from /proc.
    cmd = [client, "--mode", mode, "--host", host, "--port", str(port), "--user", "postgres",
           "--db", "postgres", "--app", app, "--sleep-ms", str(sleep_ms)]
    cmd += [s for s, _, _ in stmts]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:9])} failed: {r.stderr.strip()}")
    lines = r.stdout.splitlines()
    # The client's own view must match what the test expects from the server.
    for (sql, rows, state), line in zip(stmts, lines):
        want = f"ERROR {state}" if state != "00000" else None
        if want and line != want or not want and not line.startswith("OK "):
            raise RuntimeError(f"client said {line!r} for {short(sql)}")
    return r


def check(records, expected, failures, remote=False):
    """expected: list of (app, sql, rows, state, transport)."""
    by_text = collections.defaultdict(list)
    for r in records:
        by_text[str(r.get("db.query.text", "")).strip()].append(r)
    for app, sql, rows, state, transport in expected:
        got = by_text.get(sql, [])
        where = f"[{app}] {short(sql, 90)}"
        if len(got) != 1:
            failures.append(f"{where}: {len(got)} audit records, want exactly 1")
            continue
        r = got[0]
        if r.get("db.response.status_code") != state:
            failures.append(f"{where}: status {r.get('db.response.status_code')} want {state}")
        if rows is not None and r.get("db.response.returned_rows") != rows:
            failures.append(f"{where}: rows {r.get('db.response.returned_rows')} want {rows}")
        if r.get("network.transport") != transport:
            failures.append(f"{where}: transport {r.get('network.transport')} want {transport}")
        if r.get("db.client.application_name") != app:
            failures.append(f"{where}: application_name {r.get('db.client.application_name')}")
        if remote:
            if r.get("client.address") != REMOTE_HOST_ADDR[0]:
                failures.append(f"{where}: client.address {r.get('client.address')}")
            if not r.get("client.process.pid"):
                failures.append(f"{where}: no client.process.pid (the capturing client)")
            # comm: the executable's name cut to 15 bytes.
            if r.get("client.process.command") != "syscall_pgclien":
                failures.append(f"{where}: client.process.command "
                                f"{r.get('client.process.command')}")


REMOTE_HOST_ADDR = ["", ""]  # host side, namespace side of the veth pair


class NetnsCluster(PgCluster):
    """A PgCluster whose server runs inside network namespace `ns`."""

    def __init__(self, ns, addr, **kw):
        super().__init__(extra_conf={"listen_addresses": f"'{addr}'"}, **kw)
        self.ns = ns

    def _as_postgres(self, args, **kw):
        return subprocess.run(["ip", "netns", "exec", self.ns, "runuser", "-u",
                               pg_cluster.PG_OS_USER, "--"] + args, check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def allow_host(cluster, cidr):
    """Trusts TCP clients from `cidr` on a running cluster (pg_hba.conf rule, then reload)."""
    with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "a") as f:
        f.write(f"host all all {cidr} trust\n")
    cluster._as_postgres([f"{pg_cluster.PG_BIN}/pg_ctl", "-D", cluster.data_dir, "reload"])


def sh(*args):
    subprocess.run(list(args), check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def make_netns():
    n = os.getpid() % 200 + 20
    ns, host_if, ns_if = f"dbwsc{os.getpid()}", f"dbwh{os.getpid()}", f"dbwn{os.getpid()}"
    REMOTE_HOST_ADDR[0], REMOTE_HOST_ADDR[1] = f"10.231.{n}.1", f"10.231.{n}.2"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{REMOTE_HOST_ADDR[0]}/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{REMOTE_HOST_ADDR[1]}/24", "dev",
           ns_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    except BaseException:
        delete_netns(ns, host_if)
        raise
    return ns, host_if


def delete_netns(ns, host_if):
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "link", "del", host_if], stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--no-remote", action="store_true", help="skip the network-namespace part")
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF, network namespaces)")

    failures = []
    netns = None
    if not args.no_remote:
        try:
            netns = make_netns()
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            return skip_or_fail(f"cannot make a network namespace with a veth pair: {e}")
    try:
        with tempfile.TemporaryDirectory(prefix="dbw-sc-") as tmp, \
                PgCluster(extra_conf={"listen_addresses": "'127.0.0.1,::1'"}) as local, \
                (NetnsCluster(netns[0], REMOTE_HOST_ADDR[1]) if netns
                 else contextlib.nullcontext()) as remote:
            allow_host(local, "::1/128")
            ports = [local.port]
            if remote:
                allow_host(remote, f"{REMOTE_HOST_ADDR[0]}/32")
                ports.append(remote.port)
            audit_path = os.path.join(tmp, "audit.jsonl")
            expected, remote_expected = [], []
            agent = pg_cluster.Agent(args.agent, audit_path, ports)
            if (rc := start_agent(agent)) is not None:
                return rc
            try:
                for mode in MODES:
                    for tname, host, transport in (
                            ("v4", "127.0.0.1", "tcp"), ("v6", "::1", "tcp"),
                            ("unix", local.socket_dir, "unix")):
                        tag = f"{mode}-{tname}"
                        app = APP_PREFIX + tag
                        stmts = statements(tag)
                        run_client(args.client, mode, host, local.port, app, stmts)
                        expected += [(app, s, r, st, transport) for s, r, st in stmts]
                    if remote:
                        tag = f"{mode}-remote"
                        app = APP_PREFIX + tag
                        stmts = statements(tag)
                        run_client(args.client, mode, REMOTE_HOST_ADDR[1], remote.port,
                                   app, stmts, sleep_ms=150)
                        remote_expected += [(app, s, r, st, "tcp") for s, r, st in stmts]
                agent.wait_audit_settled(timeout=30, quiet=2.0)
            finally:
                stopped = stop_agent(agent)
            if stopped is not None:
                return stopped
            records, bad = read_audit(audit_path)
            failures += bad
            ours = [r for r in records
                    if str(r.get("db.client.application_name", "")).startswith(APP_PREFIX)]
            check(ours, expected, failures)
            check(ours, remote_expected, failures, remote=True)
            log(f"{len(ours)} audit records of the test clients, "
                f"{len(expected) + len(remote_expected)} statements expected")
            if len(ours) != len(expected) + len(remote_expected):
                failures.append(f"{len(ours)} audit records for "
                                f"{len(expected) + len(remote_expected)} statements")
    finally:
        if netns:
            delete_netns(*netns)
    for f in failures[:60]:
        print(f"FAIL: {f}")
    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("PASS: every syscall family, TCP v4/v6 and unix, local server and remote (client "
          "side), each statement audited once" if netns else "PASS (local only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
