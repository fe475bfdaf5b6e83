#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A local client that has exited before the agent reads /proc is still named (issue 3,
identity: "the local peer process where there is one").

`psql -c` connects, runs one statement and exits within milliseconds; the agent resolves
the peer process when it handles the connection's open record, which may come later (a
busy agent, a burst of records). The connect(2) hook notes who connected each local client
socket (pid, uid, loginuid, comm) in the kernel, so the record still names the client.

To make "later" certain, the test stops the agent (SIGSTOP) while the clients run (the BPF
programs keep capturing into the ring buffer), lets them exit, then resumes it. Clients:
psql over the unix socket and over TCP, each with a loginuid the test sets in the child
(the `sudo -u postgres psql` case: the human behind it), in a cgroup the test makes and
names like a systemd scope, and removes before the agent resumes (a transient unit that
ended with its client). Every statement must be audited once with client.process.pid = the
psql child's pid, command psql, uid 0, the loginuid and the scope as the systemd unit; a
client still running when the agent resolves it (the control) has its executable too.

Exit codes: 0 pass, 1 fail, 77 skip (not root) unless DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
from pg_cluster import Agent, PgCluster, log, read_audit, short, skip_or_fail, verdict  # noqa: E402

LOGIN_UID = 4242


def cgroup2_own_dir():
    """This process's cgroup v2 directory, or None without a cgroup v2 mount."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    with open("/proc/self/cgroup") as f:
        own = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    if not mounts or own is None:
        return None
    return mounts[0] + (own if own != "/" else "")


def make_scope(unit):
    """A child cgroup of ours named like a systemd scope; its directory."""
    base = cgroup2_own_dir()
    if base is None:
        raise RuntimeError("no cgroup v2 mount")
    path = os.path.join(base, unit)
    os.mkdir(path)
    return path


def child_setup(scope_dir):
    """In the child before exec: the loginuid a login session would have set, and the scope."""
    def setup():
        with open("/proc/self/loginuid", "w") as f:
            f.write(str(LOGIN_UID))
        with open(os.path.join(scope_dir, "cgroup.procs"), "w") as f:
            f.write("0")
    return setup


def run_psql(cluster, sql, tcp, scope_dir):
    """Runs psql -c in a child with LOGIN_UID in scope_dir; returns its pid once it exited."""
    env = cluster.client_env(tcp=tcp, app="dbw-exited-client")
    p = subprocess.Popen(["psql", "-X", "-q", "-c", sql], env=env,
                         preexec_fn=child_setup(scope_dir), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    _, err = p.communicate(timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"psql failed: {err.strip()}")
    return p.pid


def check(records, text, pid, failures, want_executable, unit):
    found = [r for r in records if r.get("db.query.text") == text]
    if len(found) != 1:
        failures.append(f"{short(text)}: audited {len(found)} times")
        return
    r = found[0]
    want = {"client.process.pid": pid, "client.process.command": "psql", "client.user.id": 0,
            "dbwarden.login_uid": LOGIN_UID, "dbwarden.client.systemd_unit": unit}
    for key, value in want.items():
        if r.get(key) != value:
            failures.append(f"{short(text)}: {key} {r.get(key)!r}, expected {value!r}")
    if want_executable and not r.get("client.process.executable.path", "").endswith("/psql"):
        failures.append(f"{short(text)}: client.process.executable.path "
                        f"{r.get('client.process.executable.path')!r}")


def identity_sources(metrics_text):
    """dbwarden_identity_local_clients_total by its source label."""
    found = {}
    for m in re.finditer(r'^dbwarden_identity_local_clients_total\{source="(\w+)"\} (\S+)$',
                         metrics_text, re.M):
        found[m.group(1)] = float(m.group(2))
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF, writing a child's loginuid)")
    workdir = pg_cluster.make_workdir("dbw-exited-client-")
    failures = []
    unit = f"dbw-exited-client-{os.getpid()}.scope"
    try:
        scope_dir = make_scope(unit)
    except (OSError, RuntimeError) as e:
        return skip_or_fail(f"cannot make a test cgroup: {e}")
    try:
        with PgCluster() as cluster:
            audit_path = os.path.join(workdir, "audit.jsonl")
            with Agent(args.agent, audit_path, [cluster.port]) as agent:
                agent.wait_audit_settled(timeout=10, quiet=0.5)
                control = "SELECT 'dbw-exited-control'"
                control_pid = run_psql(cluster, control, False, scope_dir)
                agent.wait_audit_settled(timeout=30, quiet=1.0)
                os.kill(agent.pid, signal.SIGSTOP)
                try:
                    runs = [(f"SELECT 'dbw-exited-{kind}'", kind == "tcp") for kind in
                            ("unix", "tcp")]
                    pids = [run_psql(cluster, sql, tcp, scope_dir) for sql, tcp in runs]
                    os.rmdir(scope_dir)  # the unit ended with its clients
                finally:
                    os.kill(agent.pid, signal.SIGCONT)
                agent.wait_audit_settled(timeout=30, quiet=2.0)
                time.sleep(1.5)  # metrics are published once a second
                sources = identity_sources(agent.scrape())
            # The control from /proc; the two exited clients from the hook alone.
            if sources.get("proc", 0) < 1 or sources.get("connect_hook", 0) != 2:
                failures.append(f"dbwarden_identity_local_clients_total: {sources}")
            records, bad = read_audit(audit_path)
            failures += bad
            check(records, control, control_pid, failures, True, unit)
            for (sql, _), pid in zip(runs, pids):
                check(records, sql, pid, failures, False, unit)
            log(f"{len(records)} audit records")
    except pg_cluster.AgentError as e:
        failures.append(f"agent: {e}\n{e.stderr[-2000:]}")
    finally:
        if os.path.isdir(scope_dir):
            os.rmdir(scope_dir)
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
