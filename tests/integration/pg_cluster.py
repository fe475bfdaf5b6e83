# SPDX-License-Identifier: Apache-2.0
"""A private PostgreSQL 15 cluster and a dbwarden agent, for integration tests and benchmarks.

Runs under Debian's /usr/bin/python3 (stdlib only). Everything it starts it also stops:
the cluster through `pg_ctl stop -m fast` (falling back to the postmaster pid it started),
the agent through SIGTERM to the pid it spawned. Nothing is ever killed by name.
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

# free_port and log are the harness's; tests import them from here too.
from private_server import PrivateServer, free_port, kill_if_alive, log  # noqa: F401

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_OS_USER = "postgres"

# Application name of the harness's own connections (setup, sentinels). Statements from
# sessions with this name are not part of what a test expects in the audit log.
SETUP_APP = "dbw-setup"

# Column order of PostgreSQL 15's csvlog, see
# https://www.postgresql.org/docs/15/runtime-config-logging.html#RUNTIME-CONFIG-LOGGING-CSVLOG
CSVLOG_COLUMNS = (
    "log_time", "user_name", "database_name", "process_id", "connection_from", "session_id",
    "session_line_num", "command_tag", "session_start_time", "virtual_transaction_id",
    "transaction_id", "error_severity", "sql_state_code", "message", "detail", "hint",
    "internal_query", "internal_query_pos", "context", "query", "query_pos", "location",
    "application_name", "backend_type", "leader_pid", "query_id",
)

# log_statement=all writes "statement: <text>" for simple Query messages and
# "execute <name>: <text>" for Execute of a prepared or unnamed statement (name "<unnamed>");
# "execute fetch from <stmt>/<portal>: <text>" when a portal is resumed.
_STATEMENT_RE = re.compile(r"\A(?:statement|execute(?: fetch from)? [^:]*): ", re.S)


class LogEntry:
    """One csvlog row, with the statement text split off when it is a logged statement."""

    def __init__(self, row):
        row = list(row) + [""] * (len(CSVLOG_COLUMNS) - len(row))
        for name, value in zip(CSVLOG_COLUMNS, row):
            setattr(self, name, value)
        self.pid = int(self.process_id) if self.process_id else 0
        m = _STATEMENT_RE.match(self.message) if self.error_severity == "LOG" else None
        self.statement = self.message[m.end():] if m else None
        self.extended = bool(m) and self.message.startswith("execute")

    @property
    def is_unix(self):
        return self.connection_from == "[local]"

    # connection_from is "[local]" for unix sockets and "host:port" for TCP.
    @property
    def client_port(self):
        m = re.match(r"\A(.*):(\d+)\Z", self.connection_from)
        return int(m.group(2)) if m else None

    @property
    def client_address(self):
        m = re.match(r"\A(.*):(\d+)\Z", self.connection_from)
        return m.group(1) if m else None


class PgCluster(PrivateServer):
    """A throw-away PostgreSQL server: own data dir, port, unix socket dir and csvlog.

    hba_rules: pg_hba.conf rules (connection type "local" or "host", method, role) placed
    before the catch-all trust rules, e.g. [("host", "password", "alice")] makes alice send a
    cleartext password over TCP.
    """

    OS_USER = PG_OS_USER
    DIR_PREFIX = "dbw-pg-"
    KEEP_DIR_ENV = "DBWARDEN_KEEP_PG_DIR"
    LOG_NAME = "server log"

    def __init__(self, port=None, extra_conf=None, hba_rules=None, fsync=False):
        super().__init__(port)
        self.extra_conf = dict(extra_conf or {})
        self.hba_rules = list(hba_rules or [])
        self.fsync = fsync
        self.postmaster_pid = None

    # --- paths -------------------------------------------------------------------------
    @property
    def data_dir(self):
        return os.path.join(self.base, "data")

    @property
    def socket_dir(self):
        return os.path.join(self.base, "sock")

    @property
    def log_dir(self):
        return os.path.join(self.base, "log")

    @property
    def csvlog_path(self):
        return os.path.join(self.log_dir, "postgresql.csv")

    # --- lifecycle (stop() and the context manager: PrivateServer) ---------------------
    def _as_postgres(self, args, **kw):
        return subprocess.run(["runuser", "-u", PG_OS_USER, "--"] + args, check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

    def start(self):
        # pg_ctl -w returns once the server accepts connections.
        pw = self.make_base()
        for d in (self.socket_dir, self.log_dir):
            os.mkdir(d, 0o700)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self._as_postgres([f"{PG_BIN}/initdb", "-D", self.data_dir, "-U", "postgres",
                           "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        conf = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "log_statement": "'all'",
            "logging_collector": "on",
            "log_destination": "'csvlog'",
            "log_directory": f"'{self.log_dir}'",
            "log_filename": "'postgresql.log'",  # csvlog swaps .log for .csv
            "log_rotation_age": "0",
            "log_rotation_size": "0",
            "log_connections": "on",
            "log_disconnections": "on",
            "fsync": "on" if self.fsync else "off",
            "max_connections": "50",
        }
        conf.update(self.extra_conf)
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# dbwarden test harness\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.data_dir, "pg_hba.conf"), "w") as f:
            # First match wins: password rules for named roles go before the trust rules.
            for conn_type, method, role in self.hba_rules:
                where = "" if conn_type == "local" else " 127.0.0.1/32"
                f.write(f"{conn_type} all {role}{where} {method}\n")
            f.write("local all all trust\n")
            f.write("host all all 127.0.0.1/32 trust\n")
        self._launch()

    def _launch(self):
        self._as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data_dir, "-w", "-t", "60",
                           "-l", os.path.join(self.base, "pg_ctl.log"), "start"])
        with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
            self.postmaster_pid = int(f.readline())
        log(f"postgres {self.postmaster_pid} on 127.0.0.1:{self.port} and {self.socket_dir}")

    def restart(self):
        """Stops the server (fast: sessions are ended) and starts it again on the same data
        directory, port, socket and log."""
        self._shutdown()
        self._launch()

    def _shutdown(self):
        if self.postmaster_pid is not None:
            try:
                self._as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data_dir, "-m", "fast",
                                   "-w", "-t", "60", "stop"])
            except subprocess.CalledProcessError as e:
                log(f"pg_ctl stop failed: {e.stdout.strip()}; SIGKILL {self.postmaster_pid}")
                kill_if_alive(self.postmaster_pid, signal.SIGKILL)
            self.postmaster_pid = None

    # --- clients -----------------------------------------------------------------------
    def client_env(self, user="postgres", dbname="postgres", tcp=False, app=None,
                   password=None):
        env = dict(os.environ)
        for k in [k for k in env if k.startswith("PG")]:
            del env[k]
        env.update(PGHOST="127.0.0.1" if tcp else self.socket_dir, PGPORT=str(self.port),
                   PGUSER=user, PGDATABASE=dbname, PGCONNECT_TIMEOUT="10")
        if app:
            env["PGAPPNAME"] = app
        if password is not None:
            env["PGPASSWORD"] = password
        return env

    def psql(self, args, check=True, **env_kw):
        """Runs psql with the given extra args; returns the CompletedProcess (text)."""
        cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=0"] + list(args)
        return subprocess.run(cmd, env=self.client_env(**env_kw), check=check, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)

    def setup_sql(self, sql, dbname="postgres"):
        """Runs harness SQL as the superuser, tagged so tests can tell it from workload."""
        r = self.psql(["-v", "ON_ERROR_STOP=1", "-c", sql], check=False, dbname=dbname,
                      app=SETUP_APP)
        if r.returncode != 0:
            raise RuntimeError(f"setup SQL failed: {sql[:200]!r}: {r.stderr.strip()}")
        return r.stdout

    def pgbench(self, args, **env_kw):
        r = subprocess.run(["pgbench"] + list(args), env=self.client_env(**env_kw), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"pgbench {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    # --- server log ----------------------------------------------------------------------
    def read_log(self):
        # Statements of hundreds of KiB are logged whole; lift the csv module's field bound.
        csv.field_size_limit(1 << 30)
        try:
            with open(self.csvlog_path, newline="", encoding="utf-8") as f:
                return [LogEntry(row) for row in csv.reader(f)]
        except FileNotFoundError:
            return []

    # sync_log() (PrivateServer) waits for a sentinel statement: the logging collector
    # writes asynchronously, and a uniquely tagged statement from a fresh session shows up
    # only after the log lines that were written before it.
    @staticmethod
    def _is_sentinel(entry, tag):
        return entry.statement is not None and tag in entry.statement


# --- the agent -------------------------------------------------------------------------------

AGENT_READY_LINE = "dbwarden: observing"
EXIT_SKIP = 77


class AgentError(RuntimeError):
    def __init__(self, msg, returncode=None, stderr=""):
        super().__init__(msg)
        self.returncode = returncode
        self.stderr = stderr


_pin_dirs_made = [0]


def private_pin_dir():
    """A bpffs pin directory no other test agent on this machine uses."""
    _pin_dirs_made[0] += 1
    return f"/sys/fs/bpf/dbw-test-{os.getpid()}-{_pin_dirs_made[0]}-{time.monotonic_ns()}"


class Agent:
    """Runs `dbwarden run` and waits until it says capture is live.

    Usage: with Agent(path, audit_file, [port]) as agent: ...; agent.returncode and
    agent.stderr are available after the block. stop() raises AgentError unless it exited 0.

    The audit format is always named on the command line: audit_format="jsonl" (plain JSON
    Lines, what the tests that read the file were written for) unless a test names "zst"
    (the agent's default, framed; read_audit and read_audit_text read both).

    Every agent pins its kernel state in its own bpffs directory (pin_dir, by default a
    fresh one: concurrent tests must not resume each other's capture) and stop() detaches it,
    unless keep_pins is set (a restart test hands the directory to the next Agent and calls
    detach() itself at the end). Its steering pins (enforce mode; an observe-mode agent
    removes what an enforce run left there) have a private directory too, steer_dir, or the
    one given as --steer-pin-dir in extra_args; detach() removes both.
    """

    def __init__(self, exe, audit_file, pg_ports, metrics_port=None, config=None,
                 extra_args=None, ready_timeout=120.0, pin_dir=None, keep_pins=False,
                 stdout_path=None, audit_format="jsonl", steer_dir=None):
        self.exe = exe
        self.audit_format = audit_format
        self.pin_dir = pin_dir or private_pin_dir()
        self.keep_pins = keep_pins
        self.audit_file = audit_file
        self.pg_ports = list(pg_ports)
        self.metrics_port = metrics_port or free_port()
        self.config = config
        self.extra_args = list(extra_args or [])
        given = [self.extra_args[i + 1] for i, a in enumerate(self.extra_args[:-1])
                 if a == "--steer-pin-dir"]
        self.steer_dir = (given[-1] if given else
                          steer_dir or private_pin_dir().replace("dbw-test-", "dbw-steer-test-"))
        self.ready_timeout = ready_timeout
        self.stdout_path = stdout_path  # the agent's stdout goes here (else nowhere)
        self.proc = None
        self.returncode = None
        self._stderr = []
        self._ready = threading.Event()
        self._reader = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def stderr(self):
        return "".join(self._stderr)

    @property
    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.stop()
        else:
            try:
                self.stop()
            except AgentError as e:
                log(f"agent stop during error handling: {e}")
        return False

    def command(self):
        cmd = [self.exe, "run", "--audit-file", self.audit_file,
               "--audit-format", self.audit_format,
               "--metrics-address", f"127.0.0.1:{self.metrics_port}"]
        for p in self.pg_ports:
            cmd += ["--postgres-port", str(p)]
        if self.config:
            cmd += ["--config", self.config]
        if not any(a.startswith("--bpf-pin-dir") for a in self.extra_args):
            cmd += ["--bpf-pin-dir", self.pin_dir]
        if "--steer-pin-dir" not in self.extra_args:
            cmd += ["--steer-pin-dir", self.steer_dir]
        return cmd + self.extra_args

    def detach(self, check=True):
        """`dbwarden detach` for this agent's pin directories (capture and steering); returns
        the CompletedProcess."""
        r = subprocess.run([self.exe, "detach", "--bpf-pin-dir", self.pin_dir,
                            "--steer-pin-dir", self.steer_dir], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if check and r.returncode != 0:
            raise AgentError(f"dbwarden detach failed: {r.stderr.strip()}", r.returncode,
                             r.stderr)
        return r

    def _read_stderr(self):
        for line in self.proc.stderr:
            self._stderr.append(line)
            if AGENT_READY_LINE in line:
                self._ready.set()
        self._ready.set()  # EOF: wake the waiter, it checks whether the process died

    def start(self, wait_ready=True):
        """Starts the agent; unless wait_ready is False, waits for its "observing" line."""
        cmd = self.command()
        log("starting agent: " + " ".join(cmd))
        out = subprocess.DEVNULL
        if self.stdout_path:
            out = open(self.stdout_path, "ab")  # noqa: SIM115 (the child keeps it open)
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.PIPE, text=True, errors="replace")
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not wait_ready:
            return
        if not self._ready.wait(self.ready_timeout):
            self._terminate()
            raise AgentError(f"agent did not print {AGENT_READY_LINE!r} within "
                             f"{self.ready_timeout}s", self.returncode, self.stderr)
        if AGENT_READY_LINE not in self.stderr:
            self.returncode = self.proc.wait(timeout=30)
            self._reader.join(timeout=5)
            self.proc = None
            if not self.keep_pins:
                self.detach(check=False)
            raise AgentError(f"agent exited with code {self.returncode} before observing",
                             self.returncode, self.stderr)
        log(f"agent {self.proc.pid} observing, metrics on {self.metrics_url}")

    def _terminate(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log(f"agent {self.proc.pid} ignored SIGTERM for 60s; SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._reader.join(timeout=5)
        self.proc = None
        if not self.keep_pins:
            r = self.detach(check=False)
            if r.returncode != 0:
                log(f"detaching {self.pin_dir} failed: {r.stderr.strip()}")

    def stop(self):
        """SIGTERM, wait, require exit code 0."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            self._terminate()
            raise AgentError(f"agent died during the test with code {self.returncode}",
                             self.returncode, self.stderr)
        self._terminate()
        if self.returncode != 0:
            raise AgentError(f"agent exited with code {self.returncode} after SIGTERM",
                             self.returncode, self.stderr)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # --- metrics -------------------------------------------------------------------------
    def scrape(self, timeout=5.0):
        with urllib.request.urlopen(self.metrics_url, timeout=timeout) as r:
            return r.read().decode("utf-8", "replace")

    def metric_sum(self, name, text=None):
        """Sum of all samples of metric `name` (any labels); None if it is absent."""
        text = self.scrape() if text is None else text
        total, seen = 0.0, False
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"\A([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)", line)
            if m and m.group(1) == name:
                total += float(m.group(3))
                seen = True
        return total if seen else None

    def wait_audit_settled(self, expected=None, timeout=30.0, quiet=2.0):
        """Waits until dbwarden_audit_records_total reaches `expected` (if given) or has not
        changed for `quiet` seconds; returns the last value seen (None if never readable)."""
        deadline = time.monotonic() + timeout
        last, last_change = None, time.monotonic()
        while time.monotonic() < deadline and self.alive():
            try:
                value = self.metric_sum("dbwarden_audit_records_total")
            except OSError:
                value = None
            now = time.monotonic()
            if value != last:
                last, last_change = value, now
            if value is not None:
                if expected is not None and value >= expected:
                    break
                if now - last_change >= quiet:
                    break
            time.sleep(0.1)
        return last


def proc_cpu_seconds(pid):
    """utime+stime of a process in seconds, from /proc/<pid>/stat."""
    return stat_cpu_seconds(f"/proc/{pid}/stat")


def stat_cpu_seconds(path):
    """utime+stime in seconds from a stat file (/proc/<pid>/stat or .../task/<tid>/stat)."""
    with open(path) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- shared by the acceptance tests -----------------------------------------------------------

def short(text, n=160):
    r = repr(text)
    return r if len(r) <= n else f"{r[:n]}...({len(text)} chars)"


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def read_audit_text(path):
    """An audit file's JSON Lines as text, whatever its format: plain (--audit-format jsonl),
    or zstd frames (the framed trail, --audit-format zst, or a rotated file), decoded the way
    zstdcat does (the seals are skippable frames). Raises FileNotFoundError."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(ZSTD_MAGIC):
        import zstandard  # python3-zstandard (scripts/install-deps.sh)
        out, reader = [], zstandard.ZstdDecompressor()
        while data:
            if int.from_bytes(data[:4], "little") & 0xFFFFFFF0 == 0x184D2A50:
                data = data[8 + int.from_bytes(data[4:8], "little"):]  # a seal: skipped
                continue
            obj = reader.decompressobj()
            out.append(obj.decompress(data))
            data = obj.unused_data
        data = b"".join(out)
    return data.decode("utf-8")


def read_audit(path):
    """Statement records of an audit file (checkpoints left out), and problems found."""
    records, bad = [], []
    try:
        text = read_audit_text(path)
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                bad.append(f"audit line {n} is not JSON ({e}): {short(line)}")
                continue
            # Checkpoints and recovery records are the trail's own, not statements.
            if "dbwarden.record_type" not in record:
                records.append(record)
    except FileNotFoundError:
        bad.append(f"audit file {path} does not exist")
    return records, bad


def skip_or_fail(reason):
    """Exit code for a test that cannot run here: 77 (skip), or 1 in CI where skips fail."""
    if os.environ.get("DBWARDEN_REQUIRE_KERNEL_TESTS") == "1":
        print(f"FAIL (DBWARDEN_REQUIRE_KERNEL_TESTS=1): {reason}")
        return 1
    print(f"SKIP: {reason}")
    return EXIT_SKIP


def start_agent(agent):
    """Starts `agent`. Returns None when it is observing; otherwise prints why and returns the
    exit code the test should end with: a skip when the agent lacks privilege (a failure where
    skips are not allowed), 1 for anything else."""
    try:
        agent.start()
        return None
    except AgentError as e:
        print(f"agent stderr:\n{e.stderr}")
        if e.returncode == EXIT_SKIP:
            return skip_or_fail(f"agent lacks privilege: {e.stderr.strip()}")
        print(f"FAIL: {e}")
        return 1


def stop_agent(agent):
    """Stops `agent`. Returns None when it ended cleanly, else prints why and returns 1."""
    try:
        agent.stop()
        return None
    except AgentError as e:
        print(f"FAIL: {e}\nagent stderr:\n{e.stderr}")
        return 1


def make_workdir(prefix):
    """A fresh work directory (audit file, configs, certificates) the servers' users can read."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    os.chmod(workdir, 0o755)
    return workdir


def in_workdir(prefix, keep, run):
    """Exit code of run(workdir), run in a fresh work directory that the servers' users can
    read. The directory is removed after a pass or a skip, kept (and named) after a failure,
    an exception, or when `keep` is set."""
    workdir = make_workdir(prefix)
    ok = False
    try:
        rc = run(workdir)
        ok = rc in (0, EXIT_SKIP)
        return rc
    finally:
        if ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}")


def verdict(failures, workdir):
    """Exit code of a test that collected `failures` (strings): prints each, then PASS or FAIL.
    A failing run's work directory is kept for inspection, a passing run's removed."""
    if failures:
        print(f"work dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    for f in failures:
        print(f"  FAIL {f}")
    print("FAIL" if failures else "PASS")
    return 1 if failures else 0
