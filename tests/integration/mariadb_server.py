# SPDX-License-Identifier: Apache-2.0
"""A private MariaDB server and a parser for its general query log, for integration tests.

Runs under Debian's /usr/bin/python3 (stdlib only). The server gets its own data dir, unix
socket, TCP port on 127.0.0.1 and general log; it never reads /etc/mysql (--no-defaults), so
a system-wide MariaDB, if any, is neither used nor touched. Everything it starts it also
stops: `mariadb-admin shutdown` over its own socket, then SIGKILL to the exact mariadbd pid
it spawned if that did not work. Nothing is ever killed by name.

General log format (MariaDB 10.11, log_output=FILE), see
https://mariadb.com/kb/en/general-query-log/ : after a three-line banner, one entry per
command, "<time>\\t<thread id> <Command>\\t<argument>". The time column ("YYMMDD HH:MM:SS")
is written only when it changed since the previous entry, blank otherwise. An argument with
newlines continues on the following lines verbatim, without any prefix.
"""

import os
import re
import subprocess

from private_server import PrivateServer, kill_if_alive, log, poll_until

MYSQL_OS_USER = "mysql"
MARIADBD = "/usr/sbin/mariadbd"

APP_USER = "dbw_app"
APP_PASSWORD = "Dbw-my5ql-S3cret-Zx9"
TEST_DB = "dbw_test"

# Commands as the server names them in the general log (sql/sql_parse.cc command_name[]).
# Listing them keeps a continuation line of a multi-line statement from being taken for a
# new entry unless it looks exactly like one.
LOG_COMMANDS = (
    "Sleep", "Quit", "Init DB", "Query", "Field List", "Create DB", "Drop DB", "Refresh",
    "Shutdown", "Statistics", "Processlist", "Connect", "Kill", "Debug", "Ping", "Time",
    "Delayed insert", "Change user", "Binlog Dump", "Table Dump", "Connect Out",
    "Register Slave", "Prepare", "Execute", "Long Data", "Close stmt", "Reset stmt",
    "Set option", "Fetch", "Daemon", "Reset connection", "Bulk_execute",
)
_ENTRY_RE = re.compile(
    r"\A(?:\d{6}\s+\d{1,2}:\d\d:\d\d)?\s+(\d+) (" +
    "|".join(re.escape(c) for c in sorted(LOG_COMMANDS, key=len, reverse=True)) +
    r")\t(.*)\Z", re.S)
# "dbw_app@127.0.0.1 on dbw_test using TCP/IP", "root@localhost as anonymous on  using Socket"
_CONNECT_RE = re.compile(r"\A(\S*)@(\S*)(?: as \S+)? on (\S*) using (.*)\Z")


class LogEntry:
    """One general-log entry: thread id, command ("Query", "Connect", ...), argument text.

    For Connect: user, host, database and transport ("TCP/IP", "Socket") are parsed out;
    a failed login logs its error message as the Connect argument and leaves them None.
    """

    def __init__(self, thread_id, command, argument):
        self.thread_id = thread_id
        self.command = command
        self.argument = argument
        self.user = self.host = self.database = self.transport = None
        if command == "Connect":
            m = _CONNECT_RE.match(argument)
            if m:
                self.user, self.host, self.database, self.transport = m.groups()

    def __repr__(self):
        return f"LogEntry({self.thread_id}, {self.command!r}, {self.argument[:80]!r})"


def parse_general_log(text):
    """The entries of a general log file's text, in order (banners skipped)."""
    entries = []
    for line in text.split("\n"):
        m = _ENTRY_RE.match(line)
        if m:
            entries.append(LogEntry(int(m.group(1)), m.group(2), m.group(3)))
        elif entries and not _is_banner(line):
            # Continuation of a multi-line argument: the server wrote it verbatim.
            entries[-1].argument += "\n" + line
    # The file ends with "\n" after the last entry; that is no part of its argument.
    for e in entries:
        if e.argument.endswith("\n"):
            e.argument = e.argument[:-1]
    return entries


def _is_banner(line):
    # Written at server start and whenever the log is (re)opened.
    return (line.startswith(MARIADBD + ", Version:") or line.startswith("Tcp port:") or
            line.startswith("Time\t") or line.startswith("Time "))


class MariaDB(PrivateServer):
    """A throw-away MariaDB server: own data dir, port, unix socket and general log.

    After start() the database TEST_DB exists and APP_USER (password APP_PASSWORD, from
    '%' and 'localhost') has all privileges on it. root connects over the socket without
    a password (the harness's own setup connections).
    """

    OS_USER = MYSQL_OS_USER
    DIR_PREFIX = "dbw-mdb-"
    KEEP_DIR_ENV = "DBWARDEN_KEEP_MARIADB_DIR"
    LOG_NAME = "general log"

    def __init__(self, port=None, extra_args=None):
        super().__init__(port)
        self.extra_args = list(extra_args or [])  # more mariadbd options (e.g. --ssl-cert)
        self.proc = None

    # --- paths -------------------------------------------------------------------------
    @property
    def data_dir(self):
        return os.path.join(self.base, "data")

    @property
    def socket_path(self):
        return os.path.join(self.base, "mysql.sock")

    @property
    def general_log_path(self):
        return os.path.join(self.base, "general.log")

    @property
    def error_log_path(self):
        return os.path.join(self.base, "error.log")

    @property
    def pid_path(self):
        return os.path.join(self.base, "mariadbd.pid")

    # --- lifecycle (stop() and the context manager: PrivateServer) ---------------------
    def start(self, timeout=60.0):
        self.make_base()
        r = subprocess.run(["mariadb-install-db", "--no-defaults", f"--user={MYSQL_OS_USER}",
                            f"--datadir={self.data_dir}",
                            "--auth-root-authentication-method=normal", "--skip-test-db",
                            "--skip-name-resolve"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({r.returncode}): {r.stdout}")
        self._launch(timeout)
        q = APP_PASSWORD.replace("'", "''")
        self.setup_sql(f"CREATE DATABASE {TEST_DB};"
                       f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{q}';"
                       f"CREATE USER '{APP_USER}'@'localhost' IDENTIFIED BY '{q}';"
                       f"GRANT ALL PRIVILEGES ON {TEST_DB}.* TO '{APP_USER}'@'%';"
                       f"GRANT ALL PRIVILEGES ON {TEST_DB}.* TO '{APP_USER}'@'localhost';")

    def restart(self, timeout=60.0):
        """Shuts the server down (sessions are ended) and starts it again on the same data
        directory, port, socket and general log."""
        self._shutdown()
        self._launch(timeout)

    def _launch(self, timeout):
        cmd = [MARIADBD, "--no-defaults", f"--user={MYSQL_OS_USER}",
               f"--datadir={self.data_dir}", f"--socket={self.socket_path}",
               f"--port={self.port}", "--bind-address=127.0.0.1",
               "--general-log=1", f"--general-log-file={self.general_log_path}",
               f"--log-error={self.error_log_path}", f"--pid-file={self.pid_path}",
               "--skip-name-resolve", "--innodb-buffer-pool-size=32M",
               # A test server: durability buys nothing and costs start-up and fsyncs.
               "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
               "--skip-log-bin", "--max-connections=50"] + self.extra_args
        log("starting mariadbd: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}: "
                                   f"{self._error_log_tail()}")
            return True if self.admin(["ping"], check=False).returncode == 0 else None

        if poll_until(answers, timeout) is None:
            raise RuntimeError(f"mariadbd did not answer ping within {timeout}s: "
                               f"{self._error_log_tail()}")
        log(f"mariadbd {self.proc.pid} on 127.0.0.1:{self.port} and {self.socket_path}")

    def _shutdown(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                r = self.admin(["shutdown"], check=False)
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    log(f"mariadb-admin shutdown did not stop mariadbd ({r.stdout.strip()}); "
                        f"SIGKILL {self.proc.pid}")
                    kill_if_alive(self.proc.pid)
                    self.proc.wait()
            self.proc = None

    def _error_log_tail(self, n=20):
        try:
            with open(self.error_log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return "(no error log)"

    # --- clients -----------------------------------------------------------------------
    def admin(self, args, check=True):
        """mariadb-admin as root over the private socket."""
        return subprocess.run(["mariadb-admin", "--no-defaults", "-u", "root",
                               f"--socket={self.socket_path}", "--connect-timeout=5"] +
                              list(args), check=check, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120)

    def client_args(self, user=APP_USER, password=APP_PASSWORD, database=TEST_DB,
                    tcp=False):
        """Arguments for the `mariadb` CLI to connect to this server."""
        args = ["mariadb", "--no-defaults", "-u", user, "--connect-timeout=10"]
        if password is not None:
            args.append(f"--password={password}")
        if tcp:
            args += ["--protocol=TCP", "-h", "127.0.0.1", "-P", str(self.port)]
        else:
            args += ["--protocol=SOCKET", f"--socket={self.socket_path}"]
        if database:
            args.append(database)
        return args

    def cli(self, sql, check=False, force=False, **kw):
        """Runs the `mariadb` CLI in batch mode on `sql`; returns the CompletedProcess (text).

        The CLI cuts `sql` at ';' and sends each statement as its own COM_QUERY (its `use`
        command as COM_INIT_DB). It stops at the first error unless `force`; -e ignores
        --force, so a forced script goes in on stdin instead.
        """
        args = self.client_args(**kw) + ["--batch"]
        args += ["--force"] if force else ["-e", sql]
        r = subprocess.run(args, input=sql if force else None, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        if check and r.returncode != 0:
            raise RuntimeError(f"mariadb -e {sql[:200]!r} failed: {r.stderr.strip()}")
        return r

    def setup_sql(self, sql):
        """Harness SQL as root over the socket."""
        return self.cli(sql, check=True, user="root", password=None, database=None).stdout

    # --- the general log -------------------------------------------------------------------
    def read_log(self):
        try:
            with open(self.general_log_path, encoding="utf-8", errors="surrogateescape") as f:
                return parse_general_log(f.read())
        except FileNotFoundError:
            return []

    # sync_log() (PrivateServer) waits for a sentinel statement: the file log is written
    # synchronously by the thread that runs the command, so once the sentinel's entry is
    # there, every entry of sessions that ended before it is too.
    @staticmethod
    def _is_sentinel(entry, tag):
        return entry.command == "Query" and tag in entry.argument
