#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""How much of the agent's pgbench -S overhead is the syscall hook itself?

Three conditions, rotated in every round so that drift cancels, pgbench -S (4 clients,
127.0.0.1 TCP, simple protocol) against one private PostgreSQL:
  none   no BPF program attached;
  floor  floor.bpf.c's empty program on tp_btf/sys_exit (the hook dbwarden's capture used
         for every syscall until it moved to sock_send_length/sock_recv_length): what no
         capture built on a hook at every syscall's exit can go below;
  agent  `dbwarden run` observing the server.
Prints each round and the median TPS ratios floor/none and agent/none (bench/README.md,
"The syscall hook's floor"). Needs root.

    sudo /usr/bin/python3 bench/tracepoint_floor/run.py --agent build/agent/dbwarden \\
         [--rounds 7] [--seconds 8]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
from pgbench_observe import QUIET_SERVER_CONF, dbwarden_programs, run_pgbench  # noqa: E402
from pg_cluster import SETUP_APP, Agent, PgCluster, log  # noqa: E402


def build(out):
    arch = os.uname().machine
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{arch}-linux-gnu",
                    "-c", os.path.join(HERE, "floor.bpf.c"), "-o",
                    os.path.join(out, "floor.bpf.o")], check=True)
    subprocess.run(["clang", "-O2", "-Wall", "-o", os.path.join(out, "floor"),
                    os.path.join(HERE, "floor.c"), "-lbpf"], check=True)


def with_floor(out, run):
    p = subprocess.Popen([os.path.join(out, "floor"), os.path.join(out, "floor.bpf.o")],
                         stdout=subprocess.PIPE, text=True)
    try:
        if p.stdout.readline().strip() != "attached":
            raise RuntimeError("floor program did not attach")
        return run()
    finally:
        p.terminate()
        p.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=int, default=8)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("tracepoint_floor: needs root", file=sys.stderr)
        return 77
    if dbwarden_programs():
        print("tracepoint_floor: dbwarden BPF programs are already loaded; they would run in "
              "the no-program condition too. Stop that agent or run `dbwarden detach`",
              file=sys.stderr)
        return 2
    out = tempfile.mkdtemp(prefix="dbw-floor-")
    bench = argparse.Namespace(clients=4, seconds=args.seconds, tls=False)
    rounds = []
    try:
        build(out)
        with PgCluster(extra_conf=QUIET_SERVER_CONF) as cluster:
            cluster.pgbench(["-i", "-q", "-s", "10"], app=SETUP_APP)
            run_pgbench(cluster, argparse.Namespace(clients=4, seconds=3, tls=False))  # warm-up

            def agent_run():
                with Agent(args.agent, os.path.join(out, "audit.jsonl"), [cluster.port]) as a:
                    a.wait_audit_settled(timeout=10, quiet=0.5)
                    tps = run_pgbench(cluster, bench)[0]
                os.unlink(os.path.join(out, "audit.jsonl"))
                return tps

            runs = {"none": lambda: run_pgbench(cluster, bench)[0],
                    "floor": lambda: with_floor(out, lambda: run_pgbench(cluster, bench)[0]),
                    "agent": agent_run}
            order = list(runs)
            for i in range(args.rounds):
                tps = {}
                for kind in order[i % 3:] + order[:i % 3]:
                    tps[kind] = runs[kind]()
                rounds.append(tps)
                print(f"round {i + 1}: none {tps['none']:8.0f}  floor {tps['floor']:8.0f} "
                      f"({tps['floor'] / tps['none']:.3f})  agent {tps['agent']:8.0f} "
                      f"({tps['agent'] / tps['none']:.3f})", flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    for kind in ("floor", "agent"):
        ratios = [r[kind] / r["none"] for r in rounds]
        print(f"{kind}/none TPS ratio: median {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f}, {len(ratios)} rounds)")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
