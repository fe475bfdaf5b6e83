#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Enforcement: a unix-socket client that reaches the server's socket by a path steering does
not match is refused, never let through to the server.

cgroup/connect_unix matches the path string a client passes, so the same socket inode reached
as a relative path (after chdir into the socket's directory), through a symlink, a hard link,
a bind mount (in a private mount namespace of the test's own), `/proc/self/root/...` or a
doubled slash is not rewritten. In enforce mode the agent locks the server's socket to its
owner (0777 -> 0700): connect() needs write permission on the inode, so each such path fails
with EACCES for an unprivileged user, while the proxy connects past the lock as its client.

Checks, with OS user `nobody` (role `nobody`, pg_hba `peer`):
- before enforcement every alias reaches the server directly (the probe can tell);
- enforcing: the normal path is steered (a policy rule blocks the probe), peer authentication
  through the proxy still logs nobody in as nobody; every alias is refused, none direct;
- the server restarts (a new socket with its own mode): locked again, the window measured;
  a server whose socket is 0770 (group only) refuses nobody through the proxy as it does
  directly: the proxy opens nothing the server's permissions kept shut;
- MariaDB's socket is locked too: a relative path and a symlink are refused;
- fail closed: a clean stop and a kill -9 keep the lock (aliases stay refused); `steering
  detach` gives the sockets their modes back;
- fail open: after a kill -9, `steering mark-down` (the unit's ExecStopPost=) lifts the lock
  and nobody reaches the server; a restarted agent locks again; a clean stop unlocks;
- the proxy's upstream connection is not copied to the ring a second time: ring bytes for
  2 MB of queries through the proxy vs the same sent directly.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import pwd
import stat
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
import psycopg2  # noqa: E402
from pg_cluster import (PgCluster, log, skip_or_fail, start_agent, stop_agent,  # noqa: E402
                        verdict)
from mariadb_server import MariaDB  # noqa: E402
from enforce_harness import EnforceAgent  # noqa: E402

PROBE_TABLE = "alias_probe_t"
PROBE_MESSAGE = "dbwarden: alias probe"
POLICY = f"""rules:
  - name: alias-probe
    match: {{collections: [{PROBE_TABLE}]}}
    action: block
    message: "{PROBE_MESSAGE}"
"""

# Run as nobody: connect to argv[1] (after chdir to argv[2] when given), log in as role
# nobody (peer) and send a query the policy blocks. Prints one word: STEERED (the policy
# answered), DIRECT (the server answered: the table does not exist), REFUSED <errno>, or
# OTHER with what came back. With argv[3] "connect": CONNECTED once connect() succeeds.
PROBE = r"""
import os, socket, sys
path, cwd = sys.argv[1], sys.argv[2]
if cwd:
    os.chdir(cwd)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(path)
except OSError as e:
    print("REFUSED", e.errno)
    sys.exit(0)
if sys.argv[3:] == ["connect"]:
    print("CONNECTED")
    sys.exit(0)
params = b"user\0nobody\0database\0postgres\0\0"
s.sendall((len(params) + 8).to_bytes(4, "big") + (3 << 16).to_bytes(4, "big") + params)
buf = b""
while b"Z\0\0\0\x05" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        print("OTHER", repr(buf[:300]))
        sys.exit(0)
    buf += chunk
q = b"SELECT * FROM alias_probe_t\0"
s.sendall(b"Q" + (len(q) + 4).to_bytes(4, "big") + q)
reply = b""
while b"Z\0\0\0\x05" not in reply:
    chunk = s.recv(65536)
    if not chunk:
        break
    reply += chunk
if b"alias probe" in reply:
    print("STEERED")
elif b"does not exist" in reply:
    print("DIRECT")
else:
    print("OTHER", repr(reply[:300]))
"""


def as_nobody(args, cwd=None):
    """argv `args` run as OS user nobody (no supplementary groups)."""
    pw = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"] + args


def probe(path, cwd="", mount=None):
    """The probe as nobody; `mount` = (source, target): first bind-mounts source on target in a
    private mount namespace of its own (as root), then drops to nobody in it."""
    cmd = as_nobody(["/usr/bin/python3", "-c", PROBE, path, cwd])
    if mount:
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               'mount --bind "$0" "$1" && shift && exec "$@"', mount[0], mount[1]] + cmd
    r = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    out = (r.stdout.strip() or f"OTHER rc={r.returncode} {r.stderr.strip()[:300]}")
    return out


def check_mariadb_aliases(server, workdir, failures, when, allowed):
    """MariaDB's socket by a relative path and a symlink, as nobody: connect() only."""
    link = os.path.join(workdir, "links", "mysql-symlink.sock")
    if not os.path.lexists(link):
        os.symlink(server.socket_path, link)
    for name, path, cwd in (("relative", os.path.basename(server.socket_path), server.base),
                            ("symlink", link, "")):
        r = subprocess.run(as_nobody(["/usr/bin/python3", "-c", PROBE, path, cwd, "connect"]),
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = r.stdout.strip() or f"OTHER {r.stderr.strip()[:200]}"
        log(f"{when}: mariadb {name} ({path}): {out}")
        if out not in allowed:
            failures.append(f"{when}: mariadb {name} gave {out}, expected one of {sorted(allowed)}")


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def aliases(cluster, workdir):
    """name -> (path, cwd, mount) reaching the cluster's socket inode by a path steering does
    not match. Made by root: a symlink or a hard link a user made while the socket was open to
    all works the same."""
    sock = os.path.join(cluster.socket_dir, f".s.PGSQL.{cluster.port}")
    link_dir = os.path.join(workdir, "links")
    bind_dir = os.path.join(workdir, "bind")
    if not os.path.isdir(link_dir):
        os.mkdir(link_dir, 0o755)
        os.mkdir(bind_dir, 0o755)
        os.symlink(sock, os.path.join(link_dir, "symlink.sock"))
    # On the socket's own file system (the cluster's base directory), made anew each time:
    # a restarted server's socket is another inode.
    hard = os.path.join(cluster.base, "hardlink.sock")
    if os.path.lexists(hard):
        os.unlink(hard)
    os.link(sock, hard)
    name = os.path.basename(sock)
    return {
        "relative": (name, cluster.socket_dir, None),
        "dot-relative": ("./" + name, cluster.socket_dir, None),
        "doubled slash": (cluster.socket_dir + "//" + name, "", None),
        "/proc/self/root": ("/proc/self/root" + sock, "", None),
        "symlink": (os.path.join(link_dir, "symlink.sock"), "", None),
        "hard link": (os.path.join(cluster.base, "hardlink.sock"), "", None),
        "bind mount": (os.path.join(bind_dir, name), "", (cluster.socket_dir, bind_dir)),
    }


def check_aliases(cluster, workdir, failures, when, allowed):
    """Every alias gives an outcome in `allowed` (e.g. {"REFUSED 13"})."""
    for name, (path, cwd, mount) in aliases(cluster, workdir).items():
        out = probe(path, cwd, mount)
        log(f"{when}: {name} ({path}): {out}")
        if out not in allowed:
            failures.append(f"{when}: {name} ({path}) gave {out}, expected one of "
                            f"{sorted(allowed)}")


def nobody_psql(cluster):
    return subprocess.run(as_nobody(["psql", "-X", "-At", "-c", "SELECT current_user"]),
                          env=cluster.client_env(user="nobody"), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def wait_mode(path, mode, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if mode_of(path) == mode:
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    return False


def restart_and_time_relock(cluster, sock, failures, what):
    """Restarts the server and measures how long its new socket stays open to others: from
    the first sight of a group or other write bit to the lock (polled every 0.2 ms)."""
    old_ino = os.lstat(sock).st_ino
    seen = {}
    stop = threading.Event()

    def watch():
        gone = False  # (ext4 may give the new socket the old one's inode number)
        while not stop.is_set():
            try:
                st = os.lstat(sock)
            except FileNotFoundError:
                gone = True
                time.sleep(0.0002)
                continue
            now = time.monotonic()
            mode = stat.S_IMODE(st.st_mode)
            if gone or st.st_ino != old_ino:
                seen.setdefault("appeared", (now, mode))
                if mode & 0o022:
                    seen.setdefault("open", (now, mode))
                elif mode == 0o700 and "open" in seen:
                    seen["locked"] = now
                    return
            time.sleep(0.0002)
    t = threading.Thread(target=watch)
    t.start()
    cluster.restart()
    # The lock follows the server's own chmod; give it the agent's one-second backstop too.
    t.join(timeout=3)
    stop.set()
    t.join()
    if mode_of(sock) != 0o700:
        failures.append(f"{what}: the restarted server's socket was not locked again "
                        f"(seen {seen}, mode now {oct(mode_of(sock))})")
        return None
    if "appeared" not in seen:
        failures.append(f"{what}: the restart's new socket was never seen")
        return None
    if "open" not in seen:
        log(f"{what}: the new socket appeared with mode {oct(seen['appeared'][1])} and was "
            f"never seen open to others")
        return 0.0
    window_ms = (seen["locked"] - seen["open"][0]) * 1000
    log(f"{what}: the new socket was open to others (mode {oct(seen['open'][1])}) for "
        f"{window_ms:.2f} ms before the lock")
    return window_ms


def ring_bytes(agent):
    """dbwarden_capture_ring_bytes_total once what was sent is read and recorded (a sanitizer
    build at high load can take seconds over 2 MB) and the next once-a-second publication is
    out."""
    agent.wait_audit_settled(timeout=60, quiet=2.0)
    time.sleep(1.5)
    return agent.metric_sum("dbwarden_capture_ring_bytes_total", agent.scrape()) or 0


def big_queries(host, cluster, count=10, size=200_000):
    """`count` queries of `size` bytes each, client to server (never bounded by the capture),
    from one psycopg2 connection to `host` (a socket directory). The connection rests first:
    the agent learns who is at the other end before the bytes flow."""
    conn = psycopg2.connect(host=host, port=cluster.port, user="postgres", dbname="postgres",
                            connect_timeout=10)
    conn.autocommit = True
    time.sleep(0.5)
    cur = conn.cursor()
    literal = "x" * size
    for _ in range(count):
        cur.execute(f"SELECT length('{literal}')")
        if cur.fetchone()[0] != size:
            raise RuntimeError("wrong answer")
    conn.close()
    return count * size


def check_proxied_not_copied(agent, cluster, workdir, failures):
    """The proxy's upstream connection is the server's connection too: the observer used to
    copy and decode every proxied byte a second time only to drop it. Now the kernel stops
    copying it. Measured against the same queries sent directly (root reaches the locked
    socket by another path: a directory symlink, which steering does not match)."""
    dir_link = os.path.join(workdir, "links", "sockdir")
    if not os.path.lexists(dir_link):
        os.symlink(cluster.socket_dir, dir_link)
    before = ring_bytes(agent)
    sent = big_queries(cluster.socket_dir, cluster)  # steered through the proxy
    steered = ring_bytes(agent) - before
    before = ring_bytes(agent)
    big_queries(dir_link, cluster)  # direct to the server, observed
    direct = ring_bytes(agent) - before
    log(f"ring bytes for {sent} query bytes: steered {steered:.0f}, direct {direct:.0f}")
    if direct < sent:
        failures.append(f"proxied capture: the direct run put only {direct:.0f} bytes in the "
                        f"ring for {sent} bytes of queries (the comparison means nothing)")
    elif steered > direct / 10:
        failures.append(f"proxied capture: the proxy's upstream was copied to the ring: "
                        f"{steered:.0f} bytes steered vs {direct:.0f} direct")


def run(args, workdir, cluster, server, failures, made):
    sock = os.path.join(cluster.socket_dir, f".s.PGSQL.{cluster.port}")
    policy = os.path.join(workdir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)

    def agent_for(mode, before=None):
        """An enforcing agent in fail mode `mode`; after `before` (a restart): on its pins."""
        resume = {"pin_dir": before.pin_dir, "steer_dir": before.steer_dir} if before else {}
        agent = EnforceAgent(args.agent, os.path.join(workdir, f"audit-{mode}.jsonl"),
                             [cluster.port], workdir, policy, mode, server.port,
                             keep_pins=True, **resume)
        made.append(agent)  # torn down by main() whatever happens
        return agent

    # Without enforcement every alias reaches the server: the probe tells direct apart.
    original = mode_of(sock)
    my_original = mode_of(server.socket_path)
    check_aliases(cluster, workdir, failures, "before enforcement", {"DIRECT"})
    check_mariadb_aliases(server, workdir, failures, "before enforcement", {"CONNECTED"})

    # --- fail closed ------------------------------------------------------------------------
    agent = agent_for("closed")
    rc = start_agent(agent)
    if rc is not None:
        return rc
    try:
        if mode_of(sock) != 0o700:
            failures.append(f"enforcing: the socket's mode is {oct(mode_of(sock))}, not 0o700")
        r = nobody_psql(cluster)
        if r.returncode != 0 or r.stdout.strip() != "nobody":
            failures.append(f"enforcing: peer authentication through the proxy: rc "
                            f"{r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
        out = probe(sock)
        if out != "STEERED":
            failures.append(f"enforcing: the socket's own path gave {out}, not STEERED")
        check_aliases(cluster, workdir, failures, "enforcing", {"REFUSED 13", "STEERED"})
        if mode_of(server.socket_path) != 0o700:
            failures.append(f"enforcing: MariaDB's socket mode is "
                            f"{oct(mode_of(server.socket_path))}, not 0o700")
        check_mariadb_aliases(server, workdir, failures, "enforcing", {"REFUSED 13"})
        status = agent.steering("status")
        if f"locked unix {sock}: mode 0700 (was {original:04o})" not in status.stdout:
            failures.append(f"steering status does not show the lock: {status.stdout}")
        check_proxied_not_copied(agent, cluster, workdir, failures)

        # A restarted server makes a new socket: locked again.
        restart_and_time_relock(cluster, sock, failures, "server restart")
        check_aliases(cluster, workdir, failures, "after a server restart",
                      {"REFUSED 13", "STEERED"})
        # A socket open to its group only: nobody is refused through the proxy as directly.
        cluster.setup_sql("ALTER SYSTEM SET unix_socket_permissions = '0770'")
        restart_and_time_relock(cluster, sock, failures, "server restart, socket 0770")
        status = agent.steering("status")
        if f"locked unix {sock}: mode 0700 (was 0770)" not in status.stdout:
            failures.append(f"socket 0770: the lock does not remember 0770: {status.stdout}")
        r = nobody_psql(cluster)
        if r.returncode == 0 or "permission denied" not in r.stderr.lower():
            failures.append(f"socket 0770: nobody got through the proxy (or not with a "
                            f"permission error): rc {r.returncode} {r.stdout.strip()} "
                            f"{r.stderr.strip()}")
        cluster.setup_sql("ALTER SYSTEM RESET unix_socket_permissions")
        restart_and_time_relock(cluster, sock, failures, "server restart, socket back to 0777")
        r = nobody_psql(cluster)
        if r.returncode != 0 or r.stdout.strip() != "nobody":
            failures.append(f"after the restarts: peer authentication through the proxy: rc "
                            f"{r.returncode} {r.stderr.strip()}")
    finally:
        if stop_agent(agent) is not None:
            failures.append("the enforcing agent (fail closed) did not stop cleanly")
    # A clean stop in fail mode closed keeps the lock, as it keeps refusing steered clients.
    if mode_of(sock) != 0o700:
        failures.append(f"fail closed, clean stop: mode {oct(mode_of(sock))}, lock lost")
    check_aliases(cluster, workdir, failures, "fail closed, agent stopped", {"REFUSED 13"})
    # A crash keeps it too; the restarted agent resumes with it.
    agent2 = agent_for("closed", before=agent)
    if start_agent(agent2) is not None:
        failures.append("fail closed: the restarted agent did not start")
    else:
        agent2.kill()
        if mode_of(sock) != 0o700:
            failures.append(f"fail closed, kill -9: mode {oct(mode_of(sock))}, lock lost")
    r = agent.steering("detach")
    if r.returncode != 0:
        failures.append(f"steering detach failed: {r.stderr.strip()}")
    if mode_of(sock) != original or mode_of(server.socket_path) != my_original:
        failures.append(f"after detach the sockets' modes are {oct(mode_of(sock))} and "
                        f"{oct(mode_of(server.socket_path))}, not {oct(original)} and "
                        f"{oct(my_original)}")
    agent.detach(check=False)

    # --- fail open --------------------------------------------------------------------------
    agent = agent_for("open")
    if start_agent(agent) is not None:
        failures.append("fail open: the agent did not start")
        return verdict(failures, workdir)
    try:
        if mode_of(sock) != 0o700:
            failures.append(f"fail open, enforcing: mode {oct(mode_of(sock))}, not locked")
        check_aliases(cluster, workdir, failures, "fail open, enforcing",
                      {"REFUSED 13", "STEERED"})
        agent.kill()
        # What the unit's ExecStopPost= runs once the agent is gone.
        dead = time.monotonic()
        r = agent.steering("mark-down")
        lifted_ms = (time.monotonic() - dead) * 1000
        log(f"fail open: mark-down after kill -9: {r.stdout.strip()} ({lifted_ms:.1f} ms for "
            f"the command, from the agent's exit)")
        if r.returncode != 0 or mode_of(sock) != original:
            failures.append(f"fail open: mark-down did not lift the lock: rc {r.returncode} "
                            f"mode {oct(mode_of(sock))} {r.stderr.strip()}")
        r = nobody_psql(cluster)
        if r.returncode != 0 or r.stdout.strip() != "nobody":
            failures.append(f"fail open, proxy dead: nobody did not reach the server: "
                            f"{r.stderr.strip()}")
        agent2 = agent_for("open", before=agent)
        if start_agent(agent2) is not None:
            failures.append("fail open: the restarted agent did not start")
        else:
            if mode_of(sock) != 0o700:
                failures.append(f"fail open, restarted: mode {oct(mode_of(sock))}, not locked")
            out = probe(sock)
            if out != "STEERED":
                failures.append(f"fail open, restarted: the socket's path gave {out}")
            if stop_agent(agent2) is not None:
                failures.append("fail open: the restarted agent did not stop cleanly")
            if mode_of(sock) != original:
                failures.append(f"fail open, clean stop: mode {oct(mode_of(sock))}, not "
                                f"{oct(original)}: clients could not reach the server")
    finally:
        if agent.alive():
            stop_agent(agent)
        agent.teardown()
    return verdict(failures, workdir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, a private server, other OS users)")
    workdir = pg_cluster.make_workdir("dbw-enforce-alias-")
    failures = []
    with PgCluster(hba_rules=[("local", "peer", "nobody")]) as cluster, MariaDB() as server:
        cluster.setup_sql("CREATE ROLE nobody LOGIN")
        # Other OS users reach the sockets' directories (the test's choice, as a packaged
        # server's /run/postgresql is 2775).
        for d in (cluster.base, cluster.socket_dir, server.base):
            os.chmod(d, 0o755)
        made = []
        try:
            return run(args, workdir, cluster, server, failures, made)
        finally:
            for agent in made:
                agent.teardown()
            for path in (os.path.join(cluster.base, "hardlink.sock"),):
                if os.path.lexists(path):
                    os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
