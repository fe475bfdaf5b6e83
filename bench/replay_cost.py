#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Agent userspace CPU per statement, without the kernel, the network or pgbench in the way.

`pgbench_observe.py` measures the live agent, but on a shared 2-core machine its CPU per
statement moves by ±20 % from run to run with the load around it, which hides changes of a
few percent. This bench records one `pgbench -S` session with `dbwarden run --record` (the
raw capture records), then replays that same recording with `dbwarden replay` through the
whole userspace path (reassembly, decoding, SQL analysis, metrics, audit records, hash chain,
write, rotation and zstd compression), once per agent binary per round, alternating, and
reports user+system CPU per audited statement: the median of the rounds, and each agent's
ratio to the first one (the baseline) in the same run.

    sudo /usr/bin/python3 bench/replay_cost.py --agent build/agent/dbwarden \\
         [--agent OTHER/dbwarden ...] [--seconds 8] [--rounds 5] [--recording FILE]

Needs root to record (BPF); with --recording FILE an existing recording is replayed and no
root is needed. Exit code 77 when recording is needed and not root.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import pg_cluster  # noqa: E402
from pg_cluster import SETUP_APP, Agent, PgCluster, log  # noqa: E402
from pgbench_observe import QUIET_SERVER_CONF  # noqa: E402  (this folder)


def record(agent, path, seconds):
    with tempfile.TemporaryDirectory(prefix="dbw-replay-rec-") as tmp, \
            PgCluster(extra_conf=QUIET_SERVER_CONF) as cluster:
        cluster.pgbench(["-i", "-q", "-s", "10"], app=SETUP_APP)
        with Agent(agent, os.path.join(tmp, "audit.jsonl"), [cluster.port],
                   extra_args=["--record", path]) as a:
            a.wait_audit_settled(timeout=10, quiet=0.5)
            cluster.pgbench(["-n", "-S", "-M", "simple", "-c", "4", "-j", "4", "-T",
                             str(seconds)], user="postgres", dbname="postgres", tcp=True,
                            app="dbw-bench")
            a.wait_audit_settled(timeout=30, quiet=1.0)


def replay(agent, recording, audit_format):
    """(CPU seconds of the replay process, statements) for one replay into a fresh dir."""
    out = tempfile.mkdtemp(prefix="dbw-replay-out-")
    name = "audit.jsonl.zst" if audit_format == "zst" else "audit.jsonl"
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run([agent, "replay", recording, "--audit-file", os.path.join(out, name),
                            "--audit-format", audit_format],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            raise RuntimeError(f"{agent} replay failed ({p.returncode}):\n{p.stdout[-2000:]}")
        # "dbwarden: replayed N records (M malformed); S statements"
        words = p.stdout.split()
        statements = int(words[words.index("statements") - 1])
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return cpu, statements
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", action="append", required=True,
                    help="dbwarden executable (repeatable; the first is the baseline)")
    ap.add_argument("--seconds", type=int, default=8, help="length of the recorded session")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--recording", help="replay this recording instead of making one")
    ap.add_argument("--audit-format", action="append", choices=("jsonl", "zst"),
                    help="the trail's format, repeatable: each agent replays in each format "
                    "(default jsonl, the replay's own default)")
    args = ap.parse_args()
    formats = args.audit_format or ["jsonl"]
    runs = [(a, f) for a in args.agent for f in formats]  # the first is the baseline

    workdir = tempfile.mkdtemp(prefix="dbw-replay-")
    try:
        recording = args.recording
        if not recording:
            if os.geteuid() != 0:
                print("replay_cost: recording needs root (BPF); or pass --recording",
                      file=sys.stderr)
                return pg_cluster.EXIT_SKIP
            recording = os.path.join(workdir, "pgbench-S.rec")
            log(f"recording {args.seconds} s of pgbench -S with {args.agent[0]}")
            record(args.agent[0], recording, args.seconds)
        per_run = {run: [] for run in runs}
        statements = None
        for r in range(args.rounds):
            for a, f in runs:
                cpu, n = replay(a, recording, f)
                if statements not in (None, n):
                    raise RuntimeError(f"{a} decoded {n} statements, another agent {statements}")
                statements = n
                per_run[(a, f)].append(cpu / n * 1e6)
                print(f"round {r + 1} {a} --audit-format {f}: {cpu:.3f} s CPU, {n} statements, "
                      f"{cpu / n * 1e6:.3f} us/stmt", flush=True)
        base = statistics.median(per_run[runs[0]])
        print(f"\n{'agent, format':60s} {'us/stmt (median)':>17s} {'range':>15s} {'vs first':>9s}")
        for (a, f), v in per_run.items():
            med = statistics.median(v)
            print(f"{(a + ' ' + f):60s} {med:17.3f} {min(v):7.3f}-{max(v):<7.3f} "
                  f"{med / base:9.3f}")
        print(f"statements per replay: {statements}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
