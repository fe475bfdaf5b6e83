# SPDX-License-Identifier: Apache-2.0
"""What every throw-away database server of the harness shares (PgCluster, MariaDB).

A private server owns a fresh base directory (owned by the server's OS user), a TCP port on
127.0.0.1, and the process it started: start() returns once the server answers, stop() ends
exactly that process (politely, then SIGKILL to its pid; never anything by name) and removes
the directory unless the environment asks to keep it. Stdlib only.
"""

import os
import pwd
import shutil
import signal
import socket
import sys
import tempfile
import time


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


def poll_until(probe, timeout, interval=0.1):
    """Calls probe() until it returns something other than None, at most `timeout` seconds;
    returns that value, or None when time ran out. probe() may raise to give up early."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def kill_if_alive(pid, sig=signal.SIGKILL):
    """Sends `sig` to the one process `pid` (one the harness started), if it still exists."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class PrivateServer:
    """Lifecycle of a throw-away server; subclasses say how to start, stop and read its log.

    Subclass contract: OS_USER (runs the server), DIR_PREFIX (of the base directory),
    KEEP_DIR_ENV (set: keep the directory for inspection), LOG_NAME (in messages);
    start() calls make_base() first; _shutdown() stops the process it started;
    setup_sql(sql) runs harness SQL; read_log() parses the server's log;
    _is_sentinel(entry, tag) says whether a log entry is the statement SELECT '<tag>'.
    """

    OS_USER = None
    DIR_PREFIX = "dbw-srv-"
    KEEP_DIR_ENV = None
    LOG_NAME = "server log"

    def __init__(self, port=None):
        self.port = port or free_port()
        self.base = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def make_base(self):
        """A fresh base directory the server's OS user owns; returns that user's pwd entry."""
        pw = pwd.getpwnam(self.OS_USER)
        self.base = tempfile.mkdtemp(prefix=self.DIR_PREFIX)
        os.chmod(self.base, 0o755)
        os.chown(self.base, pw.pw_uid, pw.pw_gid)
        return pw

    def stop(self):
        if self.base is None:
            return
        self._shutdown()
        if os.environ.get(self.KEEP_DIR_ENV):
            log(f"keeping {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)
        self.base = None

    def sync_log(self, timeout=30.0):
        """Waits until a fresh sentinel statement is in the server's log; returns all entries.

        Each server's log says why that is enough (its sessions ended before the sentinel's
        are then in the log too): see the subclass.
        """
        tag = f"dbw-sentinel-{os.getpid()}-{time.monotonic_ns()}"
        self.setup_sql(f"SELECT '{tag}'")

        def probe():
            entries = self.read_log()
            return entries if any(self._is_sentinel(e, tag) for e in entries) else None

        entries = poll_until(probe, timeout)
        if entries is None:
            raise RuntimeError(f"{self.LOG_NAME} did not show {tag} within {timeout}s")
        return entries
