#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Latency the enforcing proxy adds per statement: pgbench -S -c 1 -R 1000 --log.

Issue 12's latency check. Rounds of three runs of `pgbench -n -S -M simple -c 1 -R 1000
--log` over 127.0.0.1 TCP, order rotating every round: direct (no agent), steered
(`dbwarden run --mode enforce --enforce-observer off`, shipped default guardrails: the proxy
alone, as the issue's targets ask), and direct again (A/A). Each
transaction's latency is read from pgbench's log: its elapsed time minus its schedule lag
(under -R pgbench counts from the scheduled start, so a late start would otherwise count as
latency). Per run the p50 and p99 of those latencies; per round the added latency at each
percentile, steered minus direct (and direct-aa minus direct for the A/A); medians over
rounds. Also the percentiles of all rounds' transactions pooled per setup. With
--baseline-agent BINARY a further run per round, steered-base, goes through that other build
(the one before a change), so a change's effect is read within one run. With --pgbouncer a
run through PgBouncer (session mode, same host), and with --floor BINARY one through the bare
forwarder (bench_proxy_floor, bench/proxy_floor.cc): what any user-space proxy hop costs
here, the floor under the steered figure.

See bench/README.md, "Enforcement proxy". Needs root. Prints one line per round, a summary
table and a final machine-readable line prefixed with "RESULT ".
"""

import argparse
import glob
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_harness as ph  # noqa: E402
from pgbench_observe import QUIET_SERVER_CONF, median, nan_to_null  # noqa: E402
from pg_cluster import SETUP_APP, PgCluster, log  # noqa: E402

TARGET_P99_ADDED_US = 100.0
SETUPS = ("direct", "steered", "direct-aa")
QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}


def read_latencies(prefix):
    """Per-transaction latency in us (elapsed - schedule lag) from pgbench's --log files.

    Line format (pgbench docs, "Per-Transaction Logging"): client_id transaction_no time
    script_no time_epoch time_us [schedule_lag]; time and schedule_lag in microseconds."""
    out = []
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) < 7 or fields[2] == "skipped" or fields[2] == "failed":
                    continue
                out.append(float(fields[2]) - float(fields[6]))
        os.unlink(path)
    return sorted(out)


def run(port, args, workdir, tag):
    prefix = os.path.join(workdir, tag)
    ph.pgbench(port, ["-n", "-S", "-M", "simple", "-c", "1", "-j", "1", "-R", str(args.rate),
                      "-T", str(args.seconds), "--log", f"--log-prefix={prefix}"], cwd=workdir)
    lat = read_latencies(prefix)
    if not lat:
        raise RuntimeError("pgbench wrote no per-transaction log")
    return lat


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each pgbench run")
    ap.add_argument("--rate", type=int, default=1000, help="pgbench -R (transactions/s)")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    ap.add_argument("--quick", action="store_true", help="smoke check: 2 rounds of 3 s")
    ap.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    ap.add_argument("--allow-foreign-bpf", action="store_true",
                    help="run even while other dbw_ BPF programs are loaded (a shared machine); "
                         "they tax every setup alike and are counted per round")
    ap.add_argument("--baseline-agent", metavar="BINARY",
                    help="add the setup steered-base: steered through this other dbwarden build")
    ap.add_argument("--pgbouncer", action="store_true",
                    help="add the setup pgbouncer: through PgBouncer in session mode")
    ap.add_argument("--floor", metavar="BINARY",
                    help="add the setup floor: through the bare forwarder (bench_proxy_floor)")
    args = ap.parse_args()
    setups = (SETUPS + (("steered-base",) if args.baseline_agent else ()) +
              (("pgbouncer",) if args.pgbouncer else ()) + (("floor",) if args.floor else ()))
    hops = [k for k in setups if k not in ("direct", "direct-aa")]
    if args.quick:
        args.rounds, args.seconds = 2, 3
    rc, workdir = ph.begin("proxy_latency", args.allow_foreign_bpf)
    if rc is not None:
        return rc

    rounds, pooled = [], {k: [] for k in setups}
    load_start = ph.load_average()
    try:
        with PgCluster(extra_conf=QUIET_SERVER_CONF) as cluster:
            log(f"pgbench -i -s {args.scale}")
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)
            run(cluster.port, argparse.Namespace(**{**vars(args), "seconds": 2}), workdir,
                "warmup")
            for i in range(args.rounds):
                shift = i % len(setups)
                order = setups[shift:] + setups[:shift]
                r = {"round": i + 1, "order": "/".join(order)}
                for kind in order:
                    tag = f"{kind}-{i}"
                    if kind in ("steered", "steered-base"):
                        binary = args.agent if kind == "steered" else args.baseline_agent
                        agent = ph.BenchAgent(binary, workdir, cluster.port)
                        agent.start()
                        try:
                            agent.wait_audit_settled(timeout=10, quiet=0.5)
                            lat = run(cluster.port, args, workdir, tag)
                        finally:
                            agent.stop()
                    elif kind == "pgbouncer":
                        with ph.PgBouncer(workdir, cluster.port, pool_size=4) as bouncer:
                            lat = run(bouncer.port, args, workdir, tag)
                    elif kind == "floor":
                        with ph.FloorForwarder(args.floor, cluster.port) as floor:
                            lat = run(floor.port, args, workdir, tag)
                    else:
                        lat = run(cluster.port, args, workdir, tag)
                    pooled[kind] += lat
                    r[kind] = {q: ph.percentile(lat, v) for q, v in QUANTILES.items()}
                    r[kind]["transactions"] = len(lat)
                    time.sleep(1)
                for q in QUANTILES:
                    r[f"added_{q}"] = r["steered"][q] - r["direct"][q]
                    r[f"aa_{q}"] = r["direct-aa"][q] - r["direct"][q]
                    if args.baseline_agent:
                        r[f"base_added_{q}"] = r["steered-base"][q] - r["direct"][q]
                    for k in hops:
                        r[f"{k}_added_{q}"] = r[k][q] - r["direct"][q]
                r["load"] = ph.load_average()
                rounds.append(r)
                print(f"round {i + 1} ({r['order']:26s}) p50 direct {r['direct']['p50']:.0f} "
                      f"steered {r['steered']['p50']:.0f} us (added {r['added_p50']:+.0f}, A/A "
                      f"{r['aa_p50']:+.0f}); p99 direct {r['direct']['p99']:.0f} steered "
                      f"{r['steered']['p99']:.0f} us (added {r['added_p99']:+.0f}, A/A "
                      f"{r['aa_p99']:+.0f}); load {r['load']}"
                      + (f"; base build added p50 {r['base_added_p50']:+.0f} p99 "
                         f"{r['base_added_p99']:+.0f}" if args.baseline_agent else "")
                      + "".join(f"; {k} added p50 {r[f'{k}_added_p50']:+.0f} p99 "
                                f"{r[f'{k}_added_p99']:+.0f}"
                                for k in hops if k not in ("steered", "steered-base")),
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for k in pooled:
        pooled[k].sort()
    summary = {"bench": "proxy_latency", "rounds": len(rounds), "seconds": args.seconds,
               "rate": args.rate, "load_start": load_start,
               "target_p99_added_us": TARGET_P99_ADDED_US}
    for q, v in QUANTILES.items():
        summary[f"added_{q}_median"] = median([r[f"added_{q}"] for r in rounds])
        summary[f"added_{q}_range"] = [min(r[f"added_{q}"] for r in rounds),
                                       max(r[f"added_{q}"] for r in rounds)]
        summary[f"aa_{q}_median"] = median([r[f"aa_{q}"] for r in rounds])
        summary[f"aa_{q}_range"] = [min(r[f"aa_{q}"] for r in rounds),
                                    max(r[f"aa_{q}"] for r in rounds)]
        if args.baseline_agent:
            summary[f"base_added_{q}_median"] = median([r[f"base_added_{q}"] for r in rounds])
        for k in hops:
            summary[f"{k}_added_{q}_median"] = median([r[f"{k}_added_{q}"] for r in rounds])
            summary[f"{k}_added_{q}_range"] = [min(r[f"{k}_added_{q}"] for r in rounds),
                                               max(r[f"{k}_added_{q}"] for r in rounds)]
        for k in setups:
            summary[f"{k}_{q}_pooled"] = ph.percentile(pooled[k], v)
        summary[f"added_{q}_pooled"] = summary[f"steered_{q}_pooled"] - summary[f"direct_{q}_pooled"]
    summary["transactions"] = {k: len(v) for k, v in pooled.items()}
    summary["p99_ok"] = summary["added_p99_median"] <= TARGET_P99_ADDED_US
    s = summary
    print()
    print(f"{'metric (us)':34s} {'direct':>9s} {'steered':>9s} {'direct-aa':>9s} "
          f"{'added':>9s} {'A/A':>9s}")
    for q in QUANTILES:
        print(f"{q + ' (pooled)':34s} {s[f'direct_{q}_pooled']:9.0f} {s[f'steered_{q}_pooled']:9.0f} "
              f"{s[f'direct-aa_{q}_pooled']:9.0f} {s[f'added_{q}_pooled']:+9.0f} "
              f"{s[f'direct-aa_{q}_pooled'] - s[f'direct_{q}_pooled']:+9.0f}")
    for q in QUANTILES:
        print(f"{'added ' + q + ', median of rounds':34s} {'':9s} {'':9s} {'':9s} "
              f"{s[f'added_{q}_median']:+9.0f} {s[f'aa_{q}_median']:+9.0f}")
        print(f"{'  range':34s} {'':29s} "
              f"{'{:+.0f}..{:+.0f}'.format(*s[f'added_{q}_range']):>9s} "
              f"{'{:+.0f}..{:+.0f}'.format(*s[f'aa_{q}_range']):>9s}")
    if args.baseline_agent:
        for q in QUANTILES:
            print(f"{'baseline build: added ' + q + ', median':34s} {'':29s} "
                  f"{s[f'base_added_{q}_median']:+9.0f}")
    for k in hops:
        if k in ("steered", "steered-base"):
            continue
        for q in QUANTILES:
            print(f"{k + ': added ' + q + ', median':34s} {'':29s} "
                  f"{s[f'{k}_added_{q}_median']:+9.0f} "
                  f"({'{:+.0f}..{:+.0f}'.format(*s[f'{k}_added_{q}_range'])})")
    verdict = "PASS" if s["p99_ok"] else "MISS"
    print(f"target: p99 added <= {TARGET_P99_ADDED_US:.0f} us: {verdict} "
          f"({s['added_p99_median']:+.0f} us, median of rounds); load average {load_start} at "
          "the start: the machine is shared")
    print("RESULT " + json.dumps(nan_to_null({**summary, "runs": rounds}), sort_keys=True))
    return 1 if args.check and verdict != "PASS" else 0


if __name__ == "__main__":
    sys.exit(main())
