# SPDX-License-Identifier: Apache-2.0
"""What the enforcement-proxy benchmarks share: the enforcing agent, a private PgBouncer,
process memory and per-thread CPU readings.

Used by proxy_pgbench.py, proxy_latency.py and proxy_memory.py (bench/README.md,
"Enforcement proxy"). Everything started here is stopped by its pid; the agent's capture and
steering pins live in private bpffs directories and are removed with `dbwarden detach`.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                 "integration"))
import pg_cluster  # noqa: E402
from pg_cluster import Agent, free_port  # noqa: E402
from private_server import kill_if_alive, poll_until  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_POLICY = os.path.join(REPO, "packaging", "policy.yaml")
PGBOUNCER = "/usr/sbin/pgbouncer"


class BenchAgent(Agent):
    """`dbwarden run` for a benchmark; with enforce (the default) `--mode enforce` with the
    shipped default guardrails, fail mode closed, steering pinned in a private directory.
    stop() removes its pins (capture and steering) and its audit files.

    While an enforcing agent runs, every connection to the cluster's port (TCP and its unix
    socket) goes through the proxy; once stopped and detached, clients reach the server
    directly again. observer: --enforce-observer "on" (the observer's capture beside the
    proxy, the default) or "off" (the proxy alone; the issue's setting for its targets); None
    passes nothing (a build without the switch). enforce=False runs observe mode alone.
    Steering and capture pins are private (pg_cluster.Agent) and go with stop().
    """

    def __init__(self, exe, workdir, pg_port, enforce=True, policy=SHIPPED_POLICY,
                 extra_args=None, observer="off"):
        args = []
        if enforce:
            proxy_dir = os.path.join(workdir, "proxy")
            os.makedirs(proxy_dir, exist_ok=True)
            args = ["--mode", "enforce", "--policy", policy, "--fail-mode", "closed",
                    "--proxy-socket-dir", proxy_dir]
            if observer is not None:
                args += ["--enforce-observer", observer]
        super().__init__(exe, os.path.join(workdir, "audit.jsonl"), [pg_port],
                         extra_args=args + list(extra_args or []))

    def stop(self):
        try:
            super().stop()
        finally:
            audit = self.audit_file
            for f in os.listdir(os.path.dirname(audit)):
                if f.startswith(os.path.basename(audit)):
                    os.unlink(os.path.join(os.path.dirname(audit), f))  # ~0.5 KB a statement


class PgBouncer:
    """A private PgBouncer in session mode in front of the cluster's TCP port: own config,
    own port on 127.0.0.1, no unix socket, run as the postgres OS user (it refuses root),
    started and stopped by its pid."""

    def __init__(self, workdir, pg_port, pool_size=50, max_clients=2000):
        self.dir = os.path.join(workdir, f"pgbouncer-{time.monotonic_ns()}")
        self.pg_port = pg_port
        self.port = free_port()
        self.pool_size = pool_size
        self.max_clients = max_clients
        self.proc = None

    def config(self):
        return (
            "[databases]\n"
            f"postgres = host=127.0.0.1 port={self.pg_port} dbname=postgres\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir}/userlist.txt\n"
            "pool_mode = session\n"
            f"default_pool_size = {self.pool_size}\n"
            f"max_client_conn = {self.max_clients}\n"
            f"max_db_connections = {self.pool_size}\n"
            f"logfile = {self.dir}/pgbouncer.log\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
            "log_pooler_errors = 1\n"
            "ignore_startup_parameters = extra_float_digits\n")

    def start(self):
        pw = pwd.getpwnam(pg_cluster.PG_OS_USER)
        os.makedirs(self.dir, 0o755)
        with open(os.path.join(self.dir, "pgbouncer.ini"), "w") as f:
            f.write(self.config())
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write('"postgres" ""\n')
        for name in ("", "pgbouncer.ini", "userlist.txt"):
            os.chown(os.path.join(self.dir, name), pw.pw_uid, pw.pw_gid)

        def demote():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        # exec'd directly (no runuser in between), so proc.pid is PgBouncer's own pid.
        self.proc = subprocess.Popen([PGBOUNCER, os.path.join(self.dir, "pgbouncer.ini")],
                                     preexec_fn=demote, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return None
        if not poll_until(listening, 30):
            self.stop()
            raise RuntimeError(f"pgbouncer did not listen within 30 s: {self.log_tail()}")
        return self

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # immediate shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_if_alive(self.proc.pid)
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class FloorForwarder:
    """bench_proxy_floor (bench/proxy_floor.cc), a bare user-space forwarder of the proxy's
    shape, on a free 127.0.0.1 port in front of the cluster's TCP port: what any proxy built
    this way reaches on this host. Started and ended by its pid."""

    def __init__(self, binary, pg_port):
        self.binary = binary
        self.pg_port = pg_port
        self.port = free_port()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def __enter__(self):
        self.proc = subprocess.Popen([self.binary, str(self.port), str(self.pg_port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the floor forwarder exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return None
        if not poll_until(listening, 10):
            self.__exit__()
            raise RuntimeError("the floor forwarder did not listen within 10 s")
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()  # ours, by pid
            self.proc.wait()
            self.proc = None
        return False


def status_kib(pid, field):
    """A memory line of /proc/<pid>/status (VmRSS, VmHWM, RssAnon ...) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def thread_groups(pid, before, after):
    """CPU seconds between two task_cpu_seconds() readings (bench/pgbench_observe.py), by role.

    The agent's main thread (tid == pid) runs the observer (ring buffer, decoders) and the
    pipeline that turns the proxy's statements into audit records; the audit writer and
    compressor threads are named "dbw-audit-*", the proxy's thread "dbw-proxy".
    """
    groups = {"main": 0.0, "proxy": 0.0, "audit": 0.0, "other": 0.0}
    for tid, (name, cpu) in after.items():
        d = cpu - before.get(tid, (name, 0.0))[1]
        if tid == pid:
            groups["main"] += d
        elif name.startswith("dbw-audit"):
            groups["audit"] += d
        elif name == "dbw-proxy":
            groups["proxy"] += d
        else:
            groups["other"] += d
    return groups


def cluster_env(host, port):
    env = dict(os.environ)
    for k in [k for k in env if k.startswith("PG")]:
        del env[k]
    env.update(PGHOST=host, PGPORT=str(port), PGUSER="postgres", PGDATABASE="postgres",
               PGCONNECT_TIMEOUT="10", PGAPPNAME="dbw-bench")
    return env


def pgbench(port, args, cwd=None):
    """pgbench against 127.0.0.1:port over TCP (the server's port, or PgBouncer's)."""
    r = subprocess.run(["pgbench"] + list(args), env=cluster_env("127.0.0.1", port), text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} failed: {r.stderr.strip()[-2000:]}")
    return r.stdout


def begin(name, allow_foreign=False):
    """(None, work directory) when the bench may run, else (exit code, None) after saying why.

    Refuses while any dbw_ program is loaded: a stopped agent leaves its capture pinned,
    another one runs anyway, and either would tax the direct rounds too. The work directory
    (the servers' users can read it) is the caller's to remove; SIGTERM ends the bench
    through its clean-up."""
    import pgbench_observe  # noqa: E402 (bench/, for its BPF helpers)
    if os.geteuid() != 0:
        print(f"{name}: needs root (the agent loads BPF programs); run with sudo",
              file=sys.stderr)
        return pg_cluster.EXIT_SKIP, None
    if not shutil.which("bpftool"):
        print(f"{name}: bpftool not found (Debian package bpftool)", file=sys.stderr)
        return 2, None
    if not os.access(PGBOUNCER, os.X_OK):
        print(f"{name}: {PGBOUNCER} not found (Debian package pgbouncer; "
              "scripts/install-deps.sh installs it)", file=sys.stderr)
        return 2, None
    foreign = pgbench_observe.dbwarden_programs()
    if foreign:
        what = (f"{name}: {len(foreign)} dbwarden BPF programs are already loaded (ids "
                f"{', '.join(str(p['id']) for p in foreign[:8])}); they run in the direct "
                "rounds too")
        if not allow_foreign:
            print(f"{what}. Stop that agent, or remove what a stopped one left pinned with "
                  "`dbwarden detach --bpf-pin-dir DIR --steer-pin-dir DIR`; on a shared "
                  "machine, --allow-foreign-bpf runs anyway and counts them per round",
                  file=sys.stderr)
            return 2, None
        print(f"warning: {what} (--allow-foreign-bpf)", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix=f"dbw-bench-{name}-")
    os.chmod(workdir, 0o755)
    return None, workdir


def percentile(sorted_values, q):
    """The q-quantile (0..1) of already sorted values, linear between closest ranks."""
    if not sorted_values:
        return float("nan")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]

