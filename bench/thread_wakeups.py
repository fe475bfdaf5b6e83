#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Per agent thread: CPU and wake-ups per audited statement, live, binaries alternated.

What `pgbench_observe.py` does not show: how often each thread of the agent blocks and
wakes (voluntary context switches, /proc/PID/task/TID/status) during one `pgbench -S -c 4`
run, beside its scheduler run time (schedstat) per audited statement. A change that is
meant to save the audit writer's or the syncer's wake-ups is judged by the first figure,
which the machine's load moves much less than CPU time; and the trail's bytes on disk per
statement (what a cheaper zstd level costs in space). One private PostgreSQL for all
runs; each run starts a fresh agent (framed trail, the default) in a fresh directory.

    sudo /usr/bin/python3 bench/thread_wakeups.py --agent A/dbwarden --agent B/dbwarden \\
         [--rounds 3] [--seconds 5]

Needs root. Prints one line per run. See bench/README.md.
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from pg_cluster import SETUP_APP, Agent, PgCluster  # noqa: E402
from pgbench_observe import (QUIET_SERVER_CONF, run_pgbench,  # noqa: E402  (this folder)
                             task_cpu_seconds)


def threads(pid):
    """{group: [run time ns, voluntary switches]}: the audit threads by name, the rest
    (the decode loop on the main thread and helpers) as "decode"."""
    out = {}
    for tid, (name, seconds) in task_cpu_seconds(pid).items():
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                vol = next(int(line.split()[1]) for line in f
                           if line.startswith("voluntary_ctxt_switches"))
        except (OSError, StopIteration, ValueError):
            continue  # the thread ended meanwhile
        group = out.setdefault(name if name.startswith("dbw-audit") else "decode", [0, 0])
        group[0] += seconds * 1e9
        group[1] += vol
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", action="append", required=True, help="a dbwarden executable")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5, help="duration of each pgbench run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("thread_wakeups: needs root (BPF)", file=sys.stderr)
        return 77
    run_args = argparse.Namespace(clients=4, seconds=args.seconds, tls=False)
    with PgCluster(extra_conf=QUIET_SERVER_CONF) as cluster:
        cluster.pgbench(["-i", "-q", "-s", "10"], app=SETUP_APP)
        for r in range(args.rounds):
            for exe in args.agent:
                with tempfile.TemporaryDirectory(prefix="dbw-wakeups-") as tmp:
                    agent = Agent(exe, os.path.join(tmp, "audit.jsonl.zst"), [cluster.port],
                                  audit_format="zst")
                    agent.start()
                    try:
                        agent.wait_audit_settled(timeout=10, quiet=0.5)
                        rec0 = agent.metric_sum("dbwarden_audit_records_total") or 0.0
                        before = threads(agent.pid)
                        tps, tx = run_pgbench(cluster, run_args)
                        rec1 = agent.wait_audit_settled(expected=rec0 + tx, timeout=30,
                                                        quiet=1.0) or 0.0
                        after = threads(agent.pid)
                    finally:
                        agent.stop()
                    # The trail on disk (every file of the run), per statement: what a
                    # cheaper zstd level costs in bytes.
                    disk = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)
                               if f.startswith("audit.jsonl"))
                n = max(rec1 - rec0, 1.0)
                cols = []
                for group in sorted(after):
                    ns = after[group][0] - before.get(group, [0, 0])[0]
                    wakes = after[group][1] - before.get(group, [0, 0])[1]
                    cols.append(f"{group} {ns / n:.0f} ns/stmt {wakes} wake-ups "
                                f"({1000.0 * wakes / n:.2f}/1k stmts)")
                print(f"round {r} {exe}: {tps:.0f} tps, {n:.0f} statements, "
                      f"{disk / n:.1f} trail bytes/stmt, load "
                      f"{os.getloadavg()[0]:.1f} | " + " | ".join(cols), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
