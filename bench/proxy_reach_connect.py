#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""pgbench -C -S (a new connection per transaction) through the enforcing proxy with a
`columns` mask rule: the reach set shared between connections vs asked by each one.

While the policy has `columns` rules, each PostgreSQL scope's reach set (README, "Transaction
blocks: the reach set") must be known for masking inside transactions; it costs ~10 ms of
server time to ask. A build that asks once per connection pays that on every connect; a
build that shares it (proxy/pg_catalog.h, "Sharing it") pays it once per start and 30 s.

A private PostgreSQL loaded with `pgbench -i`; rounds of `pgbench -n -C -S -M simple` over
127.0.0.1 TCP, the order rotating every round, each through `dbwarden run --mode enforce
--enforce-observer off` with the shipped guardrails plus one mask rule whose `columns` name a
table pgbench never reads (so every difference is the reach lookup):
- share: this build (--agent);
- base: another build (--baseline-agent, the one before the change), same policy;
- norule: this build with the shipped guardrails alone (no `columns` rule: no reach set to
  ask for at all), the ceiling;
- share-aa: share again, for the spread of two identical setups.
Reported per round and as medians: connections (transactions) per second, the proxy
thread's CPU per connection, and for this build the reach-set counters
(dbwarden_proxy_pg_reach_sets_total: hit, miss, wait) per run; the ratios share/base,
share/norule and share-aa/share. See bench/README.md, "Reach set shared". Needs root.
"""

import argparse
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_harness as ph  # noqa: E402
from pgbench_observe import QUIET_SERVER_CONF, median, task_cpu_seconds  # noqa: E402
from pg_cluster import SETUP_APP, PgCluster  # noqa: E402

MASK_RULE = """  - name: bench-untouched-column
    action: mask
    columns: ["public.bench_untouched.secret"]
    style: full
"""
SETUPS = ("share", "base", "norule", "share-aa")
REACH = "dbwarden_proxy_pg_reach_sets_total"


def connect_pgbench(port, args):
    out = ph.pgbench(port, ["-n", "-C", "-S", "-M", "simple", "-c", str(args.clients), "-j",
                            str(args.clients), "-T", str(args.seconds)])
    tps = re.search(r"tps = ([0-9.]+)", out)
    tx = re.search(r"number of transactions actually processed: (\d+)", out)
    if not tps or not tx:
        raise RuntimeError(f"cannot read pgbench output:\n{out}")
    return float(tps.group(1)), int(tx.group(1))


def reach_counts(agent):
    text = agent.scrape()
    out = {}
    for result in ("hit", "miss", "wait"):
        m = re.search(rf'^{REACH}\{{result="{result}"\}} ([0-9.e+]+)$', text, re.M)
        out[result] = float(m.group(1)) if m else float("nan")  # a build without them
    return out


def run(cluster, args, workdir, binary, policy):
    agent = ph.BenchAgent(binary, workdir, cluster.port, observer="off", policy=policy)
    try:
        agent.start()
    except Exception as e:
        print(f"{binary} did not start: {e}\n{getattr(e, 'stderr', '')[-2000:]}", file=sys.stderr)
        raise
    try:
        agent.wait_audit_settled(timeout=10, quiet=0.5)
        r0 = reach_counts(agent)
        th0 = task_cpu_seconds(agent.pid)
        tps, tx = connect_pgbench(cluster.port, args)
        threads = ph.thread_groups(agent.pid, th0, task_cpu_seconds(agent.pid))
        r1 = reach_counts(agent)
    finally:
        agent.stop()
    return {"tps": tps, "transactions": tx,
            "proxy_us_per_conn": threads.get("proxy", float("nan")) * 1e6 / max(tx, 1),
            **{k: r1[k] - r0[k] for k in r1}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--baseline-agent", required=True,
                    help="the build to compare with (before the change)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each pgbench run")
    ap.add_argument("--scale", type=int, default=1, help="pgbench -i scale factor")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--allow-foreign-bpf", action="store_true",
                    help="run although other dbw_ BPF programs are loaded (a shared host)")
    args = ap.parse_args()
    rc, workdir = ph.begin("proxy_reach_connect", args.allow_foreign_bpf)
    if rc is not None:
        return rc
    rounds = []
    try:
        with open(ph.SHIPPED_POLICY) as f:
            shipped = f.read()
        policy = os.path.join(workdir, "policy-columns.yaml")
        with open(policy, "w") as f:
            f.write(shipped.rstrip("\n") + "\n" + MASK_RULE)
        runners = {
            "share": lambda c: run(c, args, workdir, args.agent, policy),
            "base": lambda c: run(c, args, workdir, args.baseline_agent, policy),
            "norule": lambda c: run(c, args, workdir, args.agent, ph.SHIPPED_POLICY),
            "share-aa": lambda c: run(c, args, workdir, args.agent, policy),
        }
        with PgCluster(extra_conf=dict(QUIET_SERVER_CONF, max_connections="100")) as cluster:
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)
            cluster.setup_sql("CREATE TABLE bench_untouched (secret text)")
            for i in range(args.rounds):
                order = SETUPS[i % len(SETUPS):] + SETUPS[:i % len(SETUPS)]
                r = {}
                for kind in order:
                    r[kind] = runners[kind](cluster)
                    time.sleep(1)
                r["share_vs_base"] = r["share"]["tps"] / r["base"]["tps"]
                r["share_vs_norule"] = r["share"]["tps"] / r["norule"]["tps"]
                r["aa"] = r["share-aa"]["tps"] / r["share"]["tps"]
                rounds.append(r)
                s = r["share"]
                print(f"round {i + 1} ({'/'.join(order)}): share {s['tps']:.0f} conn/s "
                      f"(proxy {s['proxy_us_per_conn']:.0f} us/conn; reach hit {s['hit']:.0f}, "
                      f"miss {s['miss']:.0f}, wait {s['wait']:.0f}), base "
                      f"{r['base']['tps']:.0f} (proxy {r['base']['proxy_us_per_conn']:.0f}), "
                      f"norule {r['norule']['tps']:.0f}, A/A {r['share-aa']['tps']:.0f}; "
                      f"share/base {r['share_vs_base']:.3f}, share/norule "
                      f"{r['share_vs_norule']:.3f}, A/A {r['aa']:.3f}; load {ph.load_average()}",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    med = {k: median([r[k] for r in rounds]) for k in ("share_vs_base", "share_vs_norule", "aa")}
    for k in SETUPS:
        med[f"{k}_tps"] = median([r[k]["tps"] for r in rounds])
        med[f"{k}_proxy_us_per_conn"] = median([r[k]["proxy_us_per_conn"] for r in rounds])
    for k in ("share_vs_base", "aa"):
        med[k + "_range"] = [min(r[k] for r in rounds), max(r[k] for r in rounds)]
    print(f"medians over {len(rounds)} rounds: connections/s share {med['share_tps']:.0f}, base "
          f"{med['base_tps']:.0f}, norule {med['norule_tps']:.0f}, A/A {med['share-aa_tps']:.0f}; "
          f"share/base {med['share_vs_base']:.3f} (range {med['share_vs_base_range'][0]:.3f}-"
          f"{med['share_vs_base_range'][1]:.3f}), share/norule {med['share_vs_norule']:.3f}, "
          f"A/A {med['aa']:.3f} (range {med['aa_range'][0]:.3f}-{med['aa_range'][1]:.3f})")
    print("RESULT " + repr(med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
