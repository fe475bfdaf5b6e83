#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Memory of the enforcing proxy: per idle connection, and with slow readers of large results.

Issue 12's memory check, against `dbwarden run --mode enforce` (shipped default guardrails)
and a private PostgreSQL, over 127.0.0.1 TCP with a minimal PostgreSQL v3 client written
here (one socket per session, so 1,000 sessions cost this script little):

1. idle: N sessions log in through the proxy and run `SELECT 1`, then stay idle. Reported:
   the agent's VmRSS growth / N, and what is given back once they close. The same for a
   private PgBouncer (session mode) as a reference.
2. slow readers: a fresh agent; N sessions each send `SELECT * FROM pgbench_accounts`
   (~120 MB of rows at scale 10) with a 4 KiB receive buffer, and read at most 4 KiB per
   session every --tick seconds for --seconds. The agent's VmRSS is sampled every tick;
   reported: its peak growth, per session, against the bound the proxy's design gives
   (userspace/proxy/proxy.h: about 2 x high_watermark + max_judged_bytes a connection), and
   the bytes the readers received. Then the same readers straight to the server with the
   agent in observe mode alone, since the enforcing agent's RSS holds its observer too.

The enforcing agent runs with --enforce-observer off (proxy_harness.BenchAgent's default):
its RSS is the proxy's and the audit pipeline's, not the observer's ring and decoders.
See bench/README.md, "Enforcement proxy". Needs root. Prints its figures and a final
machine-readable line prefixed with "RESULT ".
"""

import argparse
import json
import os
import shutil
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_harness as ph  # noqa: E402
from pgbench_observe import QUIET_SERVER_CONF, nan_to_null  # noqa: E402
from pg_cluster import SETUP_APP, PgCluster, log  # noqa: E402

# Defaults behind the proxy's memory bound: Options::high_watermark (userspace/proxy/proxy.h),
# kReadChunk (proxy.cc) and Config::max_query_bytes (agent/config.h; max_judged_bytes is that
# plus 4 KiB).
HIGH_WATERMARK = 256 << 10
READ_CHUNK = 64 << 10
MAX_QUERY_BYTES = 1 << 20


def pg_message(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


def read_until_ready(sock, limit=1 << 20):
    """Reads server messages until ReadyForQuery; raises on an ErrorResponse."""
    buf = b""
    while True:
        while len(buf) >= 5:
            kind = buf[:1]
            length = struct.unpack("!I", buf[1:5])[0]
            if len(buf) < 1 + length:
                break
            body, buf = buf[5:1 + length], buf[1 + length:]
            if kind == b"E":
                raise RuntimeError(f"server error: {body[:200]!r}")
            if kind == b"Z":
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before ReadyForQuery")
        buf += chunk
        if len(buf) > limit:
            raise RuntimeError("no ReadyForQuery within the first MiB")


def open_session(port, rcvbuf=None):
    """A logged-in PostgreSQL session (trust authentication) on 127.0.0.1:port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    params = b"user\0postgres\0database\0postgres\0application_name\0dbw-bench\0\0"
    s.sendall(struct.pack("!II", len(params) + 8, 3 << 16) + params)
    read_until_ready(s)
    return s


def query(sock, sql):
    sock.sendall(pg_message(b"Q", sql.encode() + b"\0"))


def open_sessions(port, n, rcvbuf=None):
    socks = []
    try:
        for i in range(n):
            socks.append(open_session(port, rcvbuf))
            if (i + 1) % 250 == 0:
                log(f"{i + 1}/{n} sessions open")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def idle_phase(port, pid, n, settle):
    """RSS growth of process `pid` with n idle sessions through 127.0.0.1:port."""
    time.sleep(settle)
    rss0 = ph.status_kib(pid, "VmRSS")
    socks = open_sessions(port, n)
    try:
        for s in socks:
            query(s, "SELECT 1")
        for s in socks:
            read_until_ready(s)
        time.sleep(settle)
        rss1 = ph.status_kib(pid, "VmRSS")
    finally:
        for s in socks:
            s.close()
    time.sleep(settle)
    rss2 = ph.status_kib(pid, "VmRSS")
    return {"sessions": n, "rss_before_kib": rss0, "rss_idle_kib": rss1,
            "rss_after_close_kib": rss2, "kib_per_session": (rss1 - rss0) / n,
            "kib_kept_after_close": rss2 - rss0}


def slow_reader_phase(port, pid, n, seconds, tick, chunk):
    rss0 = ph.status_kib(pid, "VmRSS")
    socks = open_sessions(port, n, rcvbuf=4096)
    received = 0
    peak = rss0
    samples = []
    try:
        for s in socks:
            query(s, "SELECT * FROM pgbench_accounts")
            s.setblocking(False)
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            t0 = time.monotonic()
            for s in socks:
                try:
                    data = s.recv(chunk)
                except BlockingIOError:
                    continue
                if not data:
                    raise RuntimeError("a session ended before its result did")
                received += len(data)
            rss = ph.status_kib(pid, "VmRSS")
            peak = max(peak, rss)
            samples.append((round(time.monotonic() - start, 1), rss))
            time.sleep(max(0.0, tick - (time.monotonic() - t0)))
    finally:
        for s in socks:
            s.close()
    # RSS over time, thinned to about 12 points, to show whether it levels off.
    step = max(1, len(samples) // 12)
    return {"sessions": n, "seconds": seconds, "rss_before_kib": rss0, "rss_peak_kib": peak,
            "kib_per_session": (peak - rss0) / n, "received_bytes": received,
            "rss_samples": samples[::step]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=60, help="duration of the slow-reader phase")
    ap.add_argument("--tick", type=float, default=0.2,
                    help="slow readers read once per session every TICK seconds")
    ap.add_argument("--chunk", type=int, default=4096, help="bytes per read of a slow reader")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    ap.add_argument("--max-query-bytes", type=int, default=None,
                    help="the agent's --max-query-bytes, if not its default (for the bound)")
    ap.add_argument("--quick", action="store_true", help="smoke check: 100 sessions, 10 s")
    ap.add_argument("--allow-foreign-bpf", action="store_true",
                    help="run even while other dbw_ BPF programs are loaded (a shared machine); "
                         "they tax every setup alike and are counted per round")
    args = ap.parse_args()
    if args.quick:
        args.sessions, args.seconds = 100, 10
    rc, workdir = ph.begin("proxy_memory", args.allow_foreign_bpf)
    if rc is not None:
        return rc

    result = {"bench": "proxy_memory", "sessions": args.sessions, "load_start":
              ph.load_average()}
    try:
        conf = dict(QUIET_SERVER_CONF, max_connections=str(args.sessions + 30))
        with PgCluster(extra_conf=conf) as cluster:
            log(f"pgbench -i -s {args.scale}")
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)

            with ph.PgBouncer(workdir, cluster.port, pool_size=args.sessions + 10,
                              max_clients=args.sessions + 100) as bouncer:
                result["pgbouncer_idle"] = idle_phase(bouncer.port, bouncer.pid,
                                                      args.sessions, 2)
            log(f"pgbouncer idle: {result['pgbouncer_idle']}")

            extra = ([f"--max-query-bytes={args.max_query_bytes}"]
                     if args.max_query_bytes else [])
            agent = ph.BenchAgent(args.agent, workdir, cluster.port, extra_args=extra)
            agent.start()
            try:
                agent.wait_audit_settled(timeout=10, quiet=0.5)
                result["proxy_idle"] = idle_phase(cluster.port, agent.pid, args.sessions, 2)
            finally:
                agent.stop()
            log(f"proxy idle: {result['proxy_idle']}")

            # The same load with the observer alone (observe mode, no proxy): the part of the
            # enforcing agent's growth that is the observer's, not the proxy's.
            for key, enforce in (("proxy_slow_readers", True), ("observer_slow_readers", False)):
                agent = ph.BenchAgent(args.agent, workdir, cluster.port, enforce=enforce,
                                      extra_args=extra)
                agent.start()
                try:
                    agent.wait_audit_settled(timeout=10, quiet=0.5)
                    time.sleep(2)
                    result[key] = slow_reader_phase(cluster.port, agent.pid, args.sessions,
                                                    args.seconds, args.tick, args.chunk)
                finally:
                    agent.stop()
                log(f"{key}: peak VmRSS {result[key]['rss_peak_kib'] / 1024:.1f} MiB")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    max_query = args.max_query_bytes or MAX_QUERY_BYTES
    bound_kib = (2 * HIGH_WATERMARK + READ_CHUNK + max_query + 4096) / 1024
    result["design_bound_kib_per_session"] = bound_kib
    i, b, s = result["proxy_idle"], result["pgbouncer_idle"], result["proxy_slow_readers"]
    print()
    print(f"idle sessions ({args.sessions}): proxy (whole agent) {i['kib_per_session']:.1f} KiB "
          f"per session (VmRSS {i['rss_before_kib'] / 1024:.1f} -> {i['rss_idle_kib'] / 1024:.1f} "
          f"MiB; {i['kib_kept_after_close'] / 1024:.1f} MiB kept after they closed); pgbouncer "
          f"{b['kib_per_session']:.1f} KiB per session")
    print(f"slow readers ({args.sessions} x SELECT * FROM pgbench_accounts, {args.chunk} B per "
          f"{args.tick} s each, {args.seconds} s): agent VmRSS {s['rss_before_kib'] / 1024:.1f} "
          f"-> peak {s['rss_peak_kib'] / 1024:.1f} MiB, {s['kib_per_session']:.1f} KiB per "
          f"session (design bound ~{bound_kib:.0f} KiB); readers received "
          f"{s['received_bytes'] / 1e6:.1f} MB")
    print("  VmRSS over time (s, MiB): " + ", ".join(
        f"{t:.0f} {kib / 1024:.0f}" for t, kib in s["rss_samples"]))
    o = result["observer_slow_readers"]
    print(f"  the same readers straight to the server, agent in observe mode alone: VmRSS "
          f"{o['rss_before_kib'] / 1024:.1f} -> peak {o['rss_peak_kib'] / 1024:.1f} MiB, "
          f"{o['kib_per_session']:.1f} KiB per session; readers received "
          f"{o['received_bytes'] / 1e6:.1f} MB")
    print("  VmRSS over time (s, MiB): " + ", ".join(
        f"{t:.0f} {kib / 1024:.0f}" for t, kib in o["rss_samples"]))
    print(f"load average {result['load_start']} at the start: the machine is shared")
    print("RESULT " + json.dumps(nan_to_null(result), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
