#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""dbwarden against the audit a PostgreSQL user has today: pgAudit and log_statement.

Issue 16's comparison. One private PostgreSQL 15 (tests/integration/pg_cluster.py: own data
dir, free port, socket dir) with pgAudit preloaded and the logging collector writing a plain
log file, loaded with `pgbench -i`. Each round runs `pgbench -n -S -M simple -c 4 -j 4` over
127.0.0.1 TCP once per configuration, the order rotated every round:

  none           pgaudit.log = 'none', log_statement = 'none' (pgAudit loaded, idle)
  log_statement  log_statement = 'all' (one log line per statement)
  pgaudit        pgaudit.log = 'all', pgaudit.log_rows = on, pgaudit.log_parameter = on
  dbwarden       `dbwarden run` observing the server's port, its default configuration
                 (framed zst trail); the server logs nothing

For each run: CPU added per transaction at saturation, counted two ways over the pgbench
window (the agent's drain after pgbench included):
  - processes: the postmaster and every server process (live ones' utime+stime, ended ones
    through the postmaster's cutime+cstime: the logging collector and each backend), pgbench
    (its rusage) and the agent; the BPF programs run inside the server's and pgbench's
    system calls and are in their stime. Other users of the machine are not in it.
  - host: /proc/stat's busy time (user, nice, system, irq, softirq, steal) over the same
    window: everything, including other users of the machine.
Per round, each configuration's CPU per transaction minus that of `none` in the same round,
and its TPS over `none`'s; medians over the rounds. Also the bytes each writes per
transaction (server log, or the agent's trail).

See bench/README.md. Needs root. Prints one line per run, a summary table and a final
machine-readable JSON line prefixed with "RESULT ".
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                 "integration"))
import pg_cluster  # noqa: E402
from pg_cluster import SETUP_APP, Agent, PgCluster, log, proc_cpu_seconds  # noqa: E402
from pgbench_observe import median, run_pgbench  # noqa: E402  (this folder)

CONFIGS = ("none", "log_statement", "pgaudit", "dbwarden")
PGAUDIT_LIB = "/usr/lib/postgresql/15/lib/pgaudit.so"

# The server's settings per configuration (ALTER SYSTEM, then a reload: new backends see them).
SERVER_SETTINGS = {
    "none": {"log_statement": "none", "pgaudit.log": "none"},
    "log_statement": {"log_statement": "all", "pgaudit.log": "none"},
    "pgaudit": {"log_statement": "none", "pgaudit.log": "all"},
    "dbwarden": {"log_statement": "none", "pgaudit.log": "none"},
}
# What each configuration's log must show, so that a run that logged nothing cannot pass.
LOG_PROOF = {"log_statement": "statement: SELECT abalance", "pgaudit": "AUDIT: SESSION,"}

CLK_TCK = os.sysconf("SC_CLK_TCK")


# log_directory is relative to the data directory.
SERVER_CONF = {
    "shared_preload_libraries": "'pgaudit'",
    "pgaudit.log": "'none'",
    "pgaudit.log_rows": "on",
    "pgaudit.log_parameter": "on",
    "log_statement": "'none'",
    "log_connections": "off",
    "log_disconnections": "off",
    "logging_collector": "on",
    "log_destination": "'stderr'",
    "log_directory": "'pg_log'",
    "log_filename": "'pg-%Y%m%d-%H%M%S.log'",
    "log_rotation_age": "0",
    "log_rotation_size": "0",
    "shared_buffers": "'256MB'",
}


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()  # fields[0] is field 3 (state)


def server_cpu(postmaster):
    """CPU seconds of the server: the postmaster's utime+stime+cutime+cstime (its ended
    children) plus utime+stime of its live children. Also returns the live children."""
    f = stat_fields(postmaster)
    total = sum(int(x) for x in f[11:15])
    children = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            c = stat_fields(name)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(c[1]) == postmaster:
            total += int(c[11]) + int(c[12])
            children.add(int(name))
    return total / CLK_TCK, children


def host_busy_seconds():
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in cpu[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_children(postmaster, background, timeout=20.0):
    """Waits until the server's children are its background processes again: every backend
    of the run has ended and been reaped into the postmaster's cutime."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, children = server_cpu(postmaster)
        if children <= background:
            return
        time.sleep(0.05)
    log("warning: backends still alive 20 s after pgbench ended")


def current_log(cluster):
    with open(os.path.join(cluster.data_dir, "current_logfiles")) as f:
        for line in f:
            kind, _, path = line.strip().partition(" ")
            if kind == "stderr":
                return path if os.path.isabs(path) else os.path.join(cluster.data_dir, path)
    raise RuntimeError("current_logfiles names no stderr log")


def fresh_log(cluster):
    """Rotates the server log and removes the older files: each run's log stands alone."""
    before = current_log(cluster)
    time.sleep(1.05)  # log_filename has one-second resolution
    cluster.setup_sql("SELECT pg_rotate_logfile()")
    deadline = time.monotonic() + 10
    while current_log(cluster) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    now = current_log(cluster)
    log_dir = os.path.dirname(now)
    for name in os.listdir(log_dir):
        path = os.path.join(log_dir, name)
        if path != now:
            os.unlink(path)
    return now


def settled_size(path, quiet=0.3, timeout=30.0):
    """Size of a file once it stopped growing (the logging collector drains its pipe)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return last


def configure(cluster, config):
    for key, value in SERVER_SETTINGS[config].items():
        cluster.setup_sql(f"ALTER SYSTEM SET {key} = '{value}'")
    cluster.setup_sql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = cluster.setup_sql("SHOW pgaudit.log").split()
        if SERVER_SETTINGS[config]["pgaudit.log"] in shown:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not take the settings of {config}")


def one_run(cluster, config, args, workdir, background):
    configure(cluster, config)
    logfile = fresh_log(cluster)
    agent, audit = None, None
    if config == "dbwarden":
        audit = os.path.join(workdir, "audit.jsonl.zst")
        agent = Agent(args.agent, audit, [cluster.port], audit_format="zst")
        agent.start()
    try:
        if agent:
            agent.wait_audit_settled(timeout=10, quiet=0.5)  # start-up work is not timed
            rec0 = agent.metric_sum("dbwarden_audit_records_total") or 0.0
            agent0 = proc_cpu_seconds(agent.pid)
        log_bytes0 = settled_size(logfile)
        server0, _ = server_cpu(cluster.postmaster_pid)
        host0, kids0 = host_busy_seconds(), children_cpu_seconds()
        t0 = time.monotonic()
        tps, tx = run_pgbench(cluster, args)
        kids1 = children_cpu_seconds()
        wait_children(cluster.postmaster_pid, background)
        audited = None
        agent_cpu = 0.0
        if agent:
            # The agent may still be draining its ring: that CPU counts too.
            audited = (agent.wait_audit_settled(expected=rec0 + tx, timeout=30, quiet=1.0)
                       or 0.0) - rec0
            agent_cpu = proc_cpu_seconds(agent.pid) - agent0
        log_bytes = settled_size(logfile) - log_bytes0
        server1, _ = server_cpu(cluster.postmaster_pid)
        host1 = host_busy_seconds()
        wall = time.monotonic() - t0
    finally:
        if agent:
            agent.stop()
    trail_bytes = 0
    if audit:
        trail_bytes = sum(os.path.getsize(os.path.join(workdir, n)) for n in os.listdir(workdir)
                          if n.startswith("audit."))
        for n in os.listdir(workdir):
            if n.startswith("audit."):
                os.unlink(os.path.join(workdir, n))
    proof = LOG_PROOF.get(config)
    if proof:
        with open(logfile, errors="replace") as f:
            if proof not in f.read(1 << 20):
                raise RuntimeError(f"{config}: the server log does not show '{proof}'")
    if agent and audited < tx:
        raise RuntimeError(f"dbwarden audited {audited:.0f} of {tx} transactions")
    procs = (server1 - server0) + (kids1 - kids0) + agent_cpu
    return {
        "config": config, "tps": tps, "transactions": tx, "wall_s": wall,
        "server_s": server1 - server0, "pgbench_s": kids1 - kids0, "agent_s": agent_cpu,
        "procs_us_per_tx": procs / tx * 1e6, "host_us_per_tx": (host1 - host0) / tx * 1e6,
        "bytes_per_tx": (log_bytes + trail_bytes) / tx,
        "audited": None if audited is None else int(audited),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=int, default=15, help="duration of each pgbench run")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless dbwarden adds the least CPU per transaction")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("compare_audit: needs root (the agent loads BPF programs)", file=sys.stderr)
        return pg_cluster.EXIT_SKIP
    if not os.path.exists(PGAUDIT_LIB):
        print(f"compare_audit: {PGAUDIT_LIB} missing: apt-get install postgresql-15-pgaudit",
              file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    workdir = tempfile.mkdtemp(prefix="dbw-compare-")
    os.chmod(workdir, 0o755)
    rounds = []
    try:
        cluster = PgCluster(extra_conf=SERVER_CONF)
        cluster.start()
        try:
            log(f"pgbench -i -s {args.scale}; loadavg {os.getloadavg()[0]:.1f}")
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)
            _, background = server_cpu(cluster.postmaster_pid)
            log("warm-up run")
            run_pgbench(cluster, argparse.Namespace(**{**vars(args), "seconds": 5}))
            wait_children(cluster.postmaster_pid, background)
            for r in range(args.rounds):
                order = CONFIGS[r % len(CONFIGS):] + CONFIGS[:r % len(CONFIGS)]
                runs = {}
                for config in order:
                    runs[config] = one_run(cluster, config, args, workdir, background)
                    x = runs[config]
                    print(f"round {r + 1} {config:13s} {x['tps']:8.0f} tps, "
                          f"{x['procs_us_per_tx']:6.1f} us/tx processes (server "
                          f"{x['server_s']:.1f} s, pgbench {x['pgbench_s']:.1f} s, agent "
                          f"{x['agent_s']:.1f} s), {x['host_us_per_tx']:6.1f} us/tx host, "
                          f"{x['bytes_per_tx']:6.0f} B/tx", flush=True)
                rounds.append({"round": r + 1, "order": list(order), "runs": runs})
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    summary = {"bench": "compare_audit", "rounds": len(rounds), "seconds": args.seconds,
               "clients": args.clients, "scale": args.scale, "configs": {}}
    for c in CONFIGS:
        runs = [rd["runs"][c] for rd in rounds]
        base = [rd["runs"]["none"] for rd in rounds]
        summary["configs"][c] = {
            "tps_median": median([x["tps"] for x in runs]),
            "procs_us_per_tx_median": median([x["procs_us_per_tx"] for x in runs]),
            "host_us_per_tx_median": median([x["host_us_per_tx"] for x in runs]),
            "added_procs_us_per_tx": median([x["procs_us_per_tx"] - b["procs_us_per_tx"]
                                             for x, b in zip(runs, base)]),
            "added_host_us_per_tx": median([x["host_us_per_tx"] - b["host_us_per_tx"]
                                            for x, b in zip(runs, base)]),
            "added_procs_range": [min(x["procs_us_per_tx"] - b["procs_us_per_tx"]
                                      for x, b in zip(runs, base)),
                                  max(x["procs_us_per_tx"] - b["procs_us_per_tx"]
                                      for x, b in zip(runs, base))],
            "tps_ratio_median": median([x["tps"] / b["tps"] for x, b in zip(runs, base)]),
            "tps_ratio_range": [min(x["tps"] / b["tps"] for x, b in zip(runs, base)),
                                max(x["tps"] / b["tps"] for x, b in zip(runs, base))],
            "bytes_per_tx_median": median([x["bytes_per_tx"] for x in runs]),
        }
    print()
    print(f"{'config':14s} {'TPS':>8s} {'ratio':>6s} {'ratio range':>12s} {'us/tx':>7s} "
          f"{'added':>7s} {'added range':>14s} {'host added':>10s} {'B/tx':>6s}")
    for c, s in summary["configs"].items():
        lo, hi = s["tps_ratio_range"]
        alo, ahi = s["added_procs_range"]
        print(f"{c:14s} {s['tps_median']:8.0f} {s['tps_ratio_median']:6.3f} "
              f"{lo:5.3f}-{hi:5.3f} {s['procs_us_per_tx_median']:7.1f} "
              f"{s['added_procs_us_per_tx']:+7.1f} {alo:+6.1f}..{ahi:+6.1f} "
              f"{s['added_host_us_per_tx']:+10.1f} {s['bytes_per_tx_median']:6.0f}")
    added = {c: summary["configs"][c]["added_procs_us_per_tx"] for c in CONFIGS[1:]}
    summary["dbwarden_least"] = added["dbwarden"] < min(added["log_statement"],
                                                        added["pgaudit"])
    print(f"dbwarden adds the least CPU per transaction: "
          f"{'yes' if summary['dbwarden_least'] else 'NO'}")
    print("RESULT " + json.dumps({**summary, "runs": rounds}, sort_keys=True))
    return 1 if args.check and not summary["dbwarden_least"] else 0


if __name__ == "__main__":
    sys.exit(main())
