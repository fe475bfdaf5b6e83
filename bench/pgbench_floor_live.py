#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""BPF time per pgbench -S statement: the minimal floor vs the agent, on the live path.

Issue 16 asks BPF <= 1.0 us per audited plaintext `pgbench -S` statement. bench_bpf_io_cost
measures the floor under a captured call (bpf/io_floor.bpf.c: tracked-pid bit, ring
reservation, time stamp, bpf_probe_read_user of the payload, submit) in a two-process
loopback exchange; this measures it where the agent's figure is taken: a private PostgreSQL
loaded with `pgbench -i`, `pgbench -S -M simple -c 4 -j 4 -T N` over 127.0.0.1 TCP.

Each round runs every condition once, in an order rotating every round:
  floor COND  bench_bpf_floor_live with one floor pair (`min` by default; `nots`, `empty`
              with --floor) attached and the postmaster's children tracked; its BPF
              run_time_ns / pgbench statements;
  agent       `dbwarden run` observing, its BPF figure taken exactly as pgbench_observe.py
              takes it (its observed_run: the agent's dbw_* programs' run_time_ns over the
              audited statements).
Both figures count every socket call on the host that reaches the two tracepoints (the
untracked ones leave at the pid test), as the agent's programs do in production. Reported:
BPF us per statement, program runs per statement, ns per run, ring records and bytes per
statement for the floor, and per round the agent's figure over the same round's `min`.

Needs root. Prints one line per run, a summary table and a final machine-readable JSON line
prefixed with "RESULT ". See bench/README.md, "Issue 16: the floor on the live pgbench path".
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pgbench_observe as obs  # bench/, next to this script
from pg_cluster import SETUP_APP, PgCluster, log  # tests/integration, put on sys.path by obs

LOADER = "bench_bpf_floor_live"


def floor_run(cluster, args, condition):
    """One pgbench run with the floor pair `condition` attached and the backends tracked."""
    proc = subprocess.Popen([args.floor_loader, "--postmaster", str(cluster.postmaster_pid),
                             "--condition", condition], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline().strip()
        if ready != "READY":
            raise RuntimeError(f"{LOADER} did not attach (said {ready!r}, "
                               f"exit {proc.wait(timeout=10)})")
        load0 = os.getloadavg()[0]
        tps, tx = obs.run_pgbench(cluster, args)
        load1 = os.getloadavg()[0]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [ln for ln in out.splitlines() if ln.startswith("FLOOR ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{LOADER} exited {proc.returncode} without its FLOOR line")
    f = json.loads(lines[-1][len("FLOOR "):])
    per = (lambda v: v / tx) if tx else (lambda v: float("nan"))
    return {
        "tps": tps, "transactions": tx, "bpf_ns": f["run_time_ns"], "bpf_runs": f["run_cnt"],
        "bpf_us_per_stmt": per(f["run_time_ns"]) / 1000.0,
        "bpf_runs_per_stmt": per(f["run_cnt"]),
        "bpf_ns_per_run": f["run_time_ns"] / f["run_cnt"] if f["run_cnt"] else float("nan"),
        "records_per_stmt": per(f["records"]), "bytes_per_stmt": per(f["bytes"]),
        "gaps": f["gaps"], "tracked_processes": f["tracked_processes"],
        "bpf_by_program": {name: {"us_per_stmt": per(ns) / 1000.0, "runs_per_stmt": per(runs)}
                           for name, (runs, ns) in sorted(f["programs"].items())},
        "load_avg": [load0, load1],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--floor-loader", help=f"path to {LOADER} (default: the agent's build "
                    f"tree's bench/{LOADER})")
    ap.add_argument("--floor", action="append", choices=("min", "nots", "empty"),
                    help="floor pair(s) to run each round (repeatable; default min)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each pgbench run")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--audit-format", choices=("zst", "jsonl"), default="zst")
    ap.add_argument("--agent-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for `dbwarden run` (repeatable)")
    args = ap.parse_args()
    args.tls = False  # the target is the plaintext figure; observed_run reads these
    floors = args.floor or ["min"]
    if not args.floor_loader:
        args.floor_loader = os.path.join(os.path.dirname(os.path.abspath(args.agent)), "..",
                                         "bench", LOADER)
    if os.geteuid() != 0:
        print("pgbench_floor_live: needs root (loads BPF programs); run with sudo",
              file=sys.stderr)
        return obs.pg_cluster.EXIT_SKIP
    if not shutil.which("bpftool"):
        print("pgbench_floor_live: bpftool not found (Debian package bpftool)", file=sys.stderr)
        return 2
    if not os.access(args.floor_loader, os.X_OK):
        print(f"pgbench_floor_live: {args.floor_loader} not found: build the {LOADER} target",
              file=sys.stderr)
        return 2
    # Another dbwarden's programs would run in the floor's rounds too (pgbench_observe's rule).
    foreign = obs.dbwarden_programs()
    if foreign:
        print(f"pgbench_floor_live: {len(foreign)} dbwarden BPF programs are already loaded "
              f"(ids {', '.join(str(p['id']) for p in foreign[:8])}); stop that agent or "
              "`dbwarden detach` what a stopped one left pinned", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    workdir = tempfile.mkdtemp(prefix="dbw-floorlive-")
    kinds = [f"floor {c}" for c in floors] + ["agent"]
    rounds = []
    try:
        with obs.BpfStats(), PgCluster(extra_conf=dict(obs.QUIET_SERVER_CONF)) as cluster:
            log(f"pgbench -i -s {args.scale}")
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)
            log("warm-up run")
            obs.run_pgbench(cluster, argparse.Namespace(**{**vars(args),
                                                            "seconds": min(args.seconds, 5)}))
            for i in range(args.rounds):
                order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
                r = {"round": i + 1, "order": "/".join(order)}
                for kind in order:
                    r[kind] = (obs.observed_run(cluster, args, workdir) if kind == "agent"
                               else floor_run(cluster, args, kind.split()[1]))
                    x = r[kind]
                    # Another test's agent attached meanwhile runs on the same calls (its time
                    # is not in these figures, but it shares the caches): say so.
                    x["foreign_dbw_programs_after"] = len(obs.dbwarden_programs())
                    extra = (f", {x['records_per_stmt']:.2f} records and "
                             f"{x['bytes_per_stmt']:.0f} bytes in the ring, gaps {x['gaps']}"
                             if kind != "agent" else
                             f", audited {x['audited']}/{x['transactions']}, "
                             f"dropped {x['dropped']}")
                    print(f"round {i + 1} {kind:11s} {x['tps']:8.0f} tps, BPF "
                          f"{x['bpf_us_per_stmt']:.3f} us/stmt ({x['bpf_runs_per_stmt']:.2f} "
                          f"runs x {x['bpf_ns_per_run']:.0f} ns){extra}, load "
                          f"{x['load_avg'][0]:.1f}-{x['load_avg'][1]:.1f}, foreign dbw_ programs after "
                          f"{x['foreign_dbw_programs_after']}", flush=True)
                    time.sleep(1)
                if "floor min" in r and r["floor min"]["bpf_us_per_stmt"] > 0:
                    r["agent_vs_min"] = (r["agent"]["bpf_us_per_stmt"] /
                                         r["floor min"]["bpf_us_per_stmt"])
                rounds.append(r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    summary = {"bench": "pgbench_floor_live", "rounds": len(rounds), "seconds": args.seconds,
               "clients": args.clients, "scale": args.scale, "conditions": {}}
    print()
    print(f"{'condition':11s} {'TPS':>8s} {'BPF us/stmt':>12s} {'runs/stmt':>10s} "
          f"{'ns/run':>8s} {'x floor min':>12s}")
    for kind in kinds:
        xs = [r[kind] for r in rounds]
        c = {k: obs.median([x[k] for x in xs])
             for k in ("tps", "bpf_us_per_stmt", "bpf_runs_per_stmt", "bpf_ns_per_run")}
        c["bpf_us_per_stmt_range"] = [min(x["bpf_us_per_stmt"] for x in xs),
                                      max(x["bpf_us_per_stmt"] for x in xs)]
        c["load_avg_range"] = [min(min(x["load_avg"]) for x in xs),
                               max(max(x["load_avg"]) for x in xs)]
        if kind == "agent":
            c["vs_floor_min"] = obs.median([r.get("agent_vs_min", float("nan")) for r in rounds])
            c["coverage_min"] = min(x["coverage"] for x in xs)
            c["dropped_total"] = sum(x["dropped"] for x in xs)
        else:
            c["records_per_stmt"] = obs.median([x["records_per_stmt"] for x in xs])
            c["bytes_per_stmt"] = obs.median([x["bytes_per_stmt"] for x in xs])
            c["gaps_total"] = sum(x["gaps"] for x in xs)
        # Per program, where it ran: the agent's socket hooks beside the floor's pair.
        c["by_program"] = {n: {k: obs.median([x["bpf_by_program"][n][k] for x in xs])
                               for k in ("us_per_stmt", "runs_per_stmt")}
                           for n in sorted(xs[0]["bpf_by_program"])
                           if all(x["bpf_by_program"].get(n, {}).get("runs_per_stmt", 0) > 0.01
                                  for x in xs)}
        summary["conditions"][kind] = c
        ratio = f"{c['vs_floor_min']:.2f}" if kind == "agent" else ""
        print(f"{kind:11s} {c['tps']:8.0f} {c['bpf_us_per_stmt']:12.3f} "
              f"{c['bpf_runs_per_stmt']:10.2f} {c['bpf_ns_per_run']:8.0f} {ratio:>12s}")
        for n, p in c.get("by_program", {}).items():
            print(f"  {n:19s} {'':8s} {p['us_per_stmt']:12.3f} {p['runs_per_stmt']:10.2f} "
                  f"{p['us_per_stmt'] * 1000 / p['runs_per_stmt']:8.0f}")
    if "floor min" in summary["conditions"]:
        floor = summary["conditions"]["floor min"]["bpf_us_per_stmt"]
        summary["floor_min_within_target"] = floor <= obs.TARGET_BPF_US
        print(f"floor min {floor:.3f} us/stmt against the {obs.TARGET_BPF_US} us BPF target: "
              f"{'within' if floor <= obs.TARGET_BPF_US else 'ABOVE'}")
    print("RESULT " + json.dumps(obs.nan_to_null({**summary, "runs": rounds}), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
