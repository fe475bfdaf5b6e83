#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""pgbench -S -c 8 direct, steered through the enforcing proxy, and through PgBouncer.

Issue 12's throughput check. A private PostgreSQL (statement logging off) is loaded with
`pgbench -i`; then rounds of four `pgbench -S -M simple -c 8` runs over 127.0.0.1 TCP:
- direct: no agent, pgbench to the server's port;
- steered: `dbwarden run --mode enforce --enforce-observer off` (the issue's "observer off
  in every case": no syscall capture, the proxy alone) with the shipped default guardrails
  (packaging/policy.yaml), pgbench to the same port, which steering hands to the proxy;
- pgbouncer: a private PgBouncer (session mode, same host) in front of the server;
- steered-obs: enforce mode as it runs by default, the observer's capture beside the proxy
  (`--enforce-observer on`): steered/steered-obs is what switching the observer off buys;
- direct-aa: direct again, for the A/A spread (how far two identical setups differ here);
- steered-base (with --baseline-agent BINARY): steered again through another build of the
  agent (the one before a change), so that a change's effect is read within one run, against
  rounds taken in the same conditions, rather than across runs on a shared machine;
- floor (with --floor BINARY, bench/proxy_floor.cc): a bare user-space forwarder of the
  proxy's shape (one thread, epoll, a socket pair per client) with no decoding, no policy
  and no records: what any proxy built this way reaches on this host, and its CPU.
The order rotates every round so that slow drift cancels; medians over rounds are reported,
with the ratios steered/direct, pgbouncer/direct, steered/pgbouncer, steered-obs/direct,
steered/steered-obs and direct-aa/direct.

For agent runs: the agent's utime+stime over the run (and its drain) per transaction, by
thread (proxy, main = audit pipeline (+ observer), audit writer); and the BPF run time of
the capture programs (dbw_sock_send, dbw_sock_recv and the other dbw_* programs: none with
the observer off) and of steering
(dbw_steer_*) per transaction, from kernel.bpf_stats_enabled. For PgBouncer runs, its utime+stime per transaction.

See bench/README.md, "Enforcement proxy". Needs root. Prints one line per round, a summary
table and a final machine-readable line prefixed with "RESULT ".
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_harness as ph  # noqa: E402
from pgbench_observe import (QUIET_SERVER_CONF, BpfStats, dbwarden_programs, median,  # noqa: E402
                             nan_to_null, task_cpu_seconds)
from pg_cluster import SETUP_APP, PgCluster, log, proc_cpu_seconds  # noqa: E402

TARGET_STEERED_RATIO = 0.80  # of direct
SETUPS = ("direct", "steered", "pgbouncer", "steered-obs", "direct-aa")
AGENT_METRICS = ("dbwarden_audit_records_total", "dbwarden_policy_decisions_total",
                 "dbwarden_capture_events_total", "dbwarden_capture_ring_bytes_total",
                 "dbwarden_proxy_connections_total")


def run_pgbench(port, args):
    out = ph.pgbench(port, ["-n", "-S", "-M", "simple", "-c", str(args.clients), "-j",
                            str(args.jobs), "-T", str(args.seconds)])
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    tx = re.search(r"number of transactions actually processed: (\d+)", out)
    if not tps or not tx:
        raise RuntimeError(f"cannot read pgbench output:\n{out}")
    return float(tps.group(1)), int(tx.group(1))


def bpf_programs():
    """{id: (name, run_time_ns, run_cnt)} of every loaded dbw_ program."""
    return {p["id"]: (str(p.get("name", "")), int(p.get("run_time_ns", 0)),
                      int(p.get("run_cnt", 0))) for p in dbwarden_programs()}


def bpf_by_role(ours):
    """{"capture"|"steering": [run_time_ns, run_cnt]} summed over the programs `ours` (ids)
    still loaded."""
    out = {"capture": [0, 0], "steering": [0, 0]}
    for pid_, (name, ns, cnt) in bpf_programs().items():
        if pid_ not in ours:
            continue
        role = "steering" if name.startswith("dbw_steer") else "capture"
        out[role][0] += ns
        out[role][1] += cnt
    return out


def foreign_programs(ours=()):
    """How many dbw_ programs other than `ours` are loaded: another engineer's test agent
    taxes every setup of the round, the direct ones too. Counted per run, reported."""
    return len([i for i in bpf_programs() if i not in ours])


def metrics(agent):
    text = agent.scrape()
    return {m: agent.metric_sum(m, text) or 0.0 for m in AGENT_METRICS}


def direct_run(cluster, args, workdir):
    foreign = foreign_programs()
    tps, tx = run_pgbench(cluster.port, args)
    return {"tps": tps, "transactions": tx, "foreign_bpf_programs": foreign}


def pgbouncer_run(cluster, args, workdir):
    with ph.PgBouncer(workdir, cluster.port, pool_size=args.clients + 4) as bouncer:
        foreign = foreign_programs()
        cpu0 = proc_cpu_seconds(bouncer.pid)
        tps, tx = run_pgbench(bouncer.port, args)
        cpu = proc_cpu_seconds(bouncer.pid) - cpu0
    return {"tps": tps, "transactions": tx, "pgbouncer_us_per_stmt": cpu * 1e6 / tx,
            "foreign_bpf_programs": foreign}


def agent_run(cluster, args, workdir, observer, perf_file=None, binary=None, policy=None):
    agent = ph.BenchAgent(binary or args.agent, workdir, cluster.port, observer=observer,
                          policy=policy or ph.SHIPPED_POLICY)
    before = set(bpf_programs())
    agent.start()
    # The agent's programs: those loaded while it started (bpftool here names no holder pids
    # for pinned programs, so they are told apart by when they appeared).
    ours = set(bpf_programs()) - before
    perf = None
    try:
        agent.wait_audit_settled(timeout=10, quiet=0.5)  # let start-up work finish
        foreign = foreign_programs(ours)
        m0 = metrics(agent)
        bpf0 = bpf_by_role(ours)
        cpu0 = proc_cpu_seconds(agent.pid)
        th0 = task_cpu_seconds(agent.pid)
        if perf_file:
            perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(agent.pid),
                                     "-o", perf_file, "--", "sleep", str(args.seconds)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tps, tx = run_pgbench(cluster.port, args)
        # The main thread may still be writing the run's records: that CPU counts too.
        agent.wait_audit_settled(expected=m0["dbwarden_audit_records_total"] + tx, timeout=30,
                                 quiet=1.0)
        m1 = metrics(agent)
        bpf1 = bpf_by_role(ours)
        cpu = proc_cpu_seconds(agent.pid) - cpu0
        threads = ph.thread_groups(agent.pid, th0, task_cpu_seconds(agent.pid))
    finally:
        if perf is not None:
            perf.wait()
        agent.stop()
    d = {k: m1[k] - m0[k] for k in AGENT_METRICS}
    per = (lambda v: v / tx) if tx else (lambda v: float("nan"))
    bpf = {r: (bpf1[r][0] - bpf0[r][0], bpf1[r][1] - bpf0[r][1]) for r in bpf1}
    if bpf["capture"][1] > 0 and bpf["capture"][0] == 0:
        log("warning: BPF programs ran but run_time_ns did not grow: statistics are off")
    return {
        "tps": tps, "transactions": tx, "foreign_bpf_programs": foreign,
        "bpf_programs": len(ours),
        "agent_us_per_stmt": per(cpu * 1e6),
        **{f"{k}_us_per_stmt": per(v * 1e6) for k, v in threads.items()},
        "capture_bpf_us_per_stmt": per(bpf["capture"][0] / 1e3),
        "capture_bpf_runs_per_stmt": per(bpf["capture"][1]),
        "steering_bpf_us_per_stmt": per(bpf["steering"][0] / 1e3),
        "records_per_stmt": per(d["dbwarden_audit_records_total"]),
        "decisions_per_stmt": per(d["dbwarden_policy_decisions_total"]),
        "capture_events_per_stmt": per(d["dbwarden_capture_events_total"]),
        "ring_bytes_per_stmt": per(d["dbwarden_capture_ring_bytes_total"]),
        "proxy_connections": d["dbwarden_proxy_connections_total"],
    }


def floor_run(cluster, args, workdir):
    with ph.FloorForwarder(args.floor, cluster.port) as floor:
        foreign = foreign_programs()
        cpu0 = proc_cpu_seconds(floor.pid)
        tps, tx = run_pgbench(floor.port, args)
        cpu = proc_cpu_seconds(floor.pid) - cpu0
    return {"tps": tps, "transactions": tx, "floor_us_per_stmt": cpu * 1e6 / tx,
            "foreign_bpf_programs": foreign}


def steered_run(cluster, args, workdir, perf_file=None):
    return agent_run(cluster, args, workdir, "off", perf_file)


def steered_base_run(cluster, args, workdir):
    # An older build may not know --enforce-observer: it runs as it did (observer on).
    return agent_run(cluster, args, workdir, args.baseline_observer, binary=args.baseline_agent)


def steered_obs_run(cluster, args, workdir):
    return agent_run(cluster, args, workdir, "on")


RUNNERS = {"direct": direct_run, "direct-aa": direct_run, "steered": steered_run,
           "pgbouncer": pgbouncer_run, "steered-obs": steered_obs_run, "floor": floor_run,
           "steered-base": steered_base_run}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=int, default=15, help="duration of each pgbench run")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=None, help="pgbench -j (default: --clients)")
    ap.add_argument("--quick", action="store_true", help="smoke check: 2 rounds of 4 s")
    ap.add_argument("--no-bpf-stats", action="store_true",
                    help="leave BPF run-time statistics off (no BPF figures; stats cost a little)")
    ap.add_argument("--perf", metavar="FILE",
                    help="perf record -g the agent during the first steered run into FILE")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--allow-foreign-bpf", action="store_true",
                    help="run even while other dbw_ BPF programs are loaded (a shared machine); "
                         "they tax every setup alike and are counted per round")
    ap.add_argument("--floor", metavar="BINARY",
                    help="add the bare forwarder setup (bench_proxy_floor, bench/proxy_floor.cc)")
    ap.add_argument("--baseline-agent", metavar="BINARY",
                    help="add the setup steered-base: steered through this other dbwarden build")
    ap.add_argument("--baseline-observer", choices=("on", "off"), default=None,
                    help="--enforce-observer for the baseline build (default: not passed)")
    args = ap.parse_args()
    setups = (SETUPS + (("floor",) if args.floor else ()) +
              (("steered-base",) if args.baseline_agent else ()))
    if args.quick:
        args.rounds, args.seconds = 2, 4
    args.jobs = args.jobs or args.clients
    rc, workdir = ph.begin("proxy_pgbench", args.allow_foreign_bpf)
    if rc is not None:
        return rc

    rounds = []
    load_start = ph.load_average()
    stats = None if args.no_bpf_stats else BpfStats()
    try:
        if stats:
            stats.__enter__()
        conf = dict(QUIET_SERVER_CONF, max_connections="100")
        with PgCluster(extra_conf=conf) as cluster:
            log(f"pgbench -i -s {args.scale}")
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)
            log("warm-up run")
            run_pgbench(cluster.port, argparse.Namespace(**{**vars(args), "seconds": 3}))
            perf_file = args.perf
            for i in range(args.rounds):
                shift = i % len(setups)
                order = setups[shift:] + setups[:shift]
                r = {"round": i + 1, "order": "/".join(order)}
                for kind in order:
                    if kind == "steered" and perf_file:
                        r[kind] = steered_run(cluster, args, workdir, perf_file)
                        perf_file = None
                    else:
                        r[kind] = RUNNERS[kind](cluster, args, workdir)
                    time.sleep(1)
                d = r["direct"]["tps"]
                r["steered_ratio"] = r["steered"]["tps"] / d
                r["pgbouncer_ratio"] = r["pgbouncer"]["tps"] / d
                r["steered_vs_pgbouncer"] = r["steered"]["tps"] / r["pgbouncer"]["tps"]
                r["aa_ratio"] = r["direct-aa"]["tps"] / d
                r["steered_obs_ratio"] = r["steered-obs"]["tps"] / d
                r["steered_vs_steered_obs"] = r["steered"]["tps"] / r["steered-obs"]["tps"]
                r["load"] = ph.load_average()
                if args.baseline_agent:
                    r["steered_vs_base"] = r["steered"]["tps"] / r["steered-base"]["tps"]
                    r["base_ratio"] = r["steered-base"]["tps"] / d
                if args.floor:
                    r["floor_ratio"] = r["floor"]["tps"] / d
                    r["steered_vs_floor"] = r["steered"]["tps"] / r["floor"]["tps"]
                r["foreign_bpf_programs"] = max(r[k]["foreign_bpf_programs"] for k in setups)
                rounds.append(r)
                s = r["steered"]
                print(f"round {i + 1:2d} ({r['order']:36s}) direct {d:7.0f}, steered "
                      f"{s['tps']:7.0f} ({r['steered_ratio']:.3f}), pgbouncer "
                      f"{r['pgbouncer']['tps']:7.0f} ({r['pgbouncer_ratio']:.3f}), observer on "
                      f"{r['steered-obs']['tps']:7.0f} ({r['steered_obs_ratio']:.3f}), A/A "
                      f"{r['aa_ratio']:.3f}; agent {s['agent_us_per_stmt']:.2f} us/stmt "
                      f"(proxy {s['proxy_us_per_stmt']:.2f}), capture BPF "
                      f"{s['capture_bpf_us_per_stmt']:.2f} us/stmt, pgbouncer "
                      f"{r['pgbouncer']['pgbouncer_us_per_stmt']:.2f} us/stmt; load {r['load']}"
                      + (f"; base build {r['steered-base']['tps']:7.0f} (proxy "
                         f"{r['steered-base']['proxy_us_per_stmt']:.2f} us/stmt)"
                         if args.baseline_agent else "")
                      + (f"; floor {r['floor']['tps']:7.0f} "
                         f"({r['floor']['floor_us_per_stmt']:.2f} us/stmt)" if args.floor else "")
                      + (f"; {r['foreign_bpf_programs']} foreign dbw_ BPF programs loaded"
                         if r["foreign_bpf_programs"] else ""),
                      flush=True)
    finally:
        if stats:
            stats.__exit__(None, None, None)
        shutil.rmtree(workdir, ignore_errors=True)

    st = [r["steered"] for r in rounds]

    def med(key, rows=st):
        return median([x[key] for x in rows])
    aa = [r["aa_ratio"] for r in rounds]
    summary = {
        "bench": "proxy_pgbench", "rounds": len(rounds), "seconds": args.seconds,
        "clients": args.clients, "jobs": args.jobs, "scale": args.scale,
        "bpf_stats": not args.no_bpf_stats, "load_start": load_start,
        **{f"{k}_tps_median": median([r[k]["tps"] for r in rounds]) for k in setups},
        "steered_ratio_median": median([r["steered_ratio"] for r in rounds]),
        "steered_ratio_range": [min(r["steered_ratio"] for r in rounds),
                                max(r["steered_ratio"] for r in rounds)],
        "pgbouncer_ratio_median": median([r["pgbouncer_ratio"] for r in rounds]),
        "pgbouncer_ratio_range": [min(r["pgbouncer_ratio"] for r in rounds),
                                  max(r["pgbouncer_ratio"] for r in rounds)],
        "steered_vs_pgbouncer_median": median([r["steered_vs_pgbouncer"] for r in rounds]),
        "steered_obs_ratio_median": median([r["steered_obs_ratio"] for r in rounds]),
        "steered_obs_ratio_range": [min(r["steered_obs_ratio"] for r in rounds),
                                    max(r["steered_obs_ratio"] for r in rounds)],
        "steered_vs_steered_obs_median": median([r["steered_vs_steered_obs"] for r in rounds]),
        "steered_obs_agent_us_per_stmt_median": med("agent_us_per_stmt",
                                                    [r["steered-obs"] for r in rounds]),
        "steered_obs_proxy_us_per_stmt_median": med("proxy_us_per_stmt",
                                                    [r["steered-obs"] for r in rounds]),
        "steered_obs_capture_bpf_us_per_stmt_median": med("capture_bpf_us_per_stmt",
                                                          [r["steered-obs"] for r in rounds]),
        "aa_ratio_median": median(aa), "aa_ratio_range": [min(aa), max(aa)],
        "aa_abs_deviation_median": median([abs(1 - a) for a in aa]),
        **{f"{k}_median": med(k) for k in st[0] if k.endswith("_per_stmt")},
        "pgbouncer_us_per_stmt_median": med("pgbouncer_us_per_stmt",
                                            [r["pgbouncer"] for r in rounds]),
        "rounds_with_foreign_bpf": sum(1 for r in rounds if r["foreign_bpf_programs"]),
        "target_steered_ratio": TARGET_STEERED_RATIO,
    }
    if args.floor:
        summary["floor_ratio_median"] = median([r["floor_ratio"] for r in rounds])
        summary["floor_ratio_range"] = [min(r["floor_ratio"] for r in rounds),
                                        max(r["floor_ratio"] for r in rounds)]
        summary["steered_vs_floor_median"] = median([r["steered_vs_floor"] for r in rounds])
        summary["floor_us_per_stmt_median"] = med("floor_us_per_stmt",
                                                  [r["floor"] for r in rounds])
    if args.baseline_agent:
        base = [r["steered-base"] for r in rounds]
        summary["base_ratio_median"] = median([r["base_ratio"] for r in rounds])
        summary["steered_vs_base_median"] = median([r["steered_vs_base"] for r in rounds])
        summary["steered_vs_base_range"] = [min(r["steered_vs_base"] for r in rounds),
                                            max(r["steered_vs_base"] for r in rounds)]
        summary["base_proxy_us_per_stmt_median"] = med("proxy_us_per_stmt", base)
        summary["base_agent_us_per_stmt_median"] = med("agent_us_per_stmt", base)
    summary["ratio_ok"] = summary["steered_ratio_median"] >= TARGET_STEERED_RATIO
    summary["pgbouncer_ok"] = summary["steered_vs_pgbouncer_median"] >= 1.0
    s = summary
    print()
    print(f"{'metric':44s} {'value':>16s} {'target':>10s}")
    rows = [
        ("direct TPS (median)", f"{s['direct_tps_median']:.0f}", ""),
        ("steered TPS (median)", f"{s['steered_tps_median']:.0f}", ""),
        ("pgbouncer TPS (median)", f"{s['pgbouncer_tps_median']:.0f}", ""),
        ("steered / direct (median)", f"{s['steered_ratio_median']:.3f}",
         f">= {TARGET_STEERED_RATIO}"),
        ("  range", "{:.3f}-{:.3f}".format(*s["steered_ratio_range"]), ""),
        ("pgbouncer / direct (median)", f"{s['pgbouncer_ratio_median']:.3f}", ""),
        ("  range", "{:.3f}-{:.3f}".format(*s["pgbouncer_ratio_range"]), ""),
        ("steered / pgbouncer (median of rounds)", f"{s['steered_vs_pgbouncer_median']:.3f}",
         ">= 1.0"),
        ("observer on: steered-obs / direct (median)", f"{s['steered_obs_ratio_median']:.3f}",
         ""),
        ("  range", "{:.3f}-{:.3f}".format(*s["steered_obs_ratio_range"]), ""),
        ("steered / steered-obs (median)", f"{s['steered_vs_steered_obs_median']:.3f}", ""),
        *([("bare forwarder (floor) / direct (median)", f"{s['floor_ratio_median']:.3f}", ""),
           ("  range", "{:.3f}-{:.3f}".format(*s["floor_ratio_range"]), ""),
           ("steered / bare forwarder (median)", f"{s['steered_vs_floor_median']:.3f}", ""),
           ("bare forwarder CPU us per statement", f"{s['floor_us_per_stmt_median']:.2f}", "")]
          if args.floor else []),
        *([("baseline build steered / direct (median)", f"{s['base_ratio_median']:.3f}", ""),
           ("steered / baseline build steered (median)", f"{s['steered_vs_base_median']:.3f}",
            ""),
           ("  range", "{:.3f}-{:.3f}".format(*s["steered_vs_base_range"]), ""),
           ("baseline build: proxy thread us per stmt",
            f"{s['base_proxy_us_per_stmt_median']:.2f}", ""),
           ("baseline build: agent CPU us per stmt",
            f"{s['base_agent_us_per_stmt_median']:.2f}", "")]
          if args.baseline_agent else []),
        ("A/A direct / direct (median)", f"{s['aa_ratio_median']:.3f}", ""),
        ("  range", "{:.3f}-{:.3f}".format(*s["aa_ratio_range"]), ""),
        ("  median |1 - A/A|", f"{s['aa_abs_deviation_median']:.3f}", ""),
        ("agent CPU us per statement", f"{s['agent_us_per_stmt_median']:.2f}", ""),
        ("  proxy thread", f"{s['proxy_us_per_stmt_median']:.2f}", ""),
        ("  main thread (audit pipeline)", f"{s['main_us_per_stmt_median']:.2f}", ""),
        ("  audit writer threads", f"{s['audit_us_per_stmt_median']:.2f}", ""),
        ("  other threads", f"{s['other_us_per_stmt_median']:.2f}", ""),
        ("capture BPF us per statement (none: off)", f"{s['capture_bpf_us_per_stmt_median']:.2f}",
         ""),
        ("capture BPF runs per statement", f"{s['capture_bpf_runs_per_stmt_median']:.1f}", ""),
        ("capture events per statement", f"{s['capture_events_per_stmt_median']:.2f}", ""),
        ("steering BPF us per statement", f"{s['steering_bpf_us_per_stmt_median']:.3f}", ""),
        ("audit records per statement", f"{s['records_per_stmt_median']:.4f}", "1.0"),
        ("pgbouncer CPU us per statement", f"{s['pgbouncer_us_per_stmt_median']:.2f}", ""),
        ("observer on: agent CPU us per stmt",
         f"{s['steered_obs_agent_us_per_stmt_median']:.2f}", ""),
        ("observer on: proxy thread us per stmt",
         f"{s['steered_obs_proxy_us_per_stmt_median']:.2f}", ""),
        ("observer on: capture BPF us per stmt",
         f"{s['steered_obs_capture_bpf_us_per_stmt_median']:.2f}", ""),
    ]
    for name, value, target in rows:
        print(f"{name:44s} {value:>16s} {target:>10s}")
    verdict = "PASS" if s["ratio_ok"] and s["pgbouncer_ok"] else "MISS"
    print(f"targets: {verdict} (steered/direct {'ok' if s['ratio_ok'] else 'missed'}, "
          f"steered vs pgbouncer {'ok' if s['pgbouncer_ok'] else 'missed'}); "
          f"load average {load_start} at the start: the machine is shared; "
          f"{s['rounds_with_foreign_bpf']} round(s) ran with another agent's dbw_ programs loaded")
    print("RESULT " + json.dumps(nan_to_null({**summary, "runs": rounds}), sort_keys=True))
    return 1 if args.check and verdict != "PASS" else 0


if __name__ == "__main__":
    sys.exit(main())
