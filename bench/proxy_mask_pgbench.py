#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""pgbench -S through the enforcing proxy with one column mask rule on an untouched table vs
no mask rule: added proxy CPU per statement, TPS ratio and the A/A spread (issue 13).

A private PostgreSQL loaded with `pgbench -i`; rounds of `pgbench -S -M simple` over
127.0.0.1 TCP, the order rotating every round:
- steered: `dbwarden run --mode enforce` with the shipped default guardrails;
- steered-mask: the same policy plus one mask rule (no `match`: it applies to every
  statement) whose `columns` name a table pgbench never reads; the judge drops it per
  statement, and the results stream through untouched;
- steered-aa: steered again, for the spread of two identical setups.
Reported: medians of the proxy thread's CPU per statement in each setup, the difference
steered-mask - steered (target <= 0.3 us) beside steered-aa - steered, and the TPS ratios
steered-mask/steered and steered-aa/steered. Runs proxy_pgbench.py's agent runner (agent
CPU by thread from /proc). See bench/README.md, "Masking". Needs root.
"""

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_harness as ph  # noqa: E402
from pgbench_observe import QUIET_SERVER_CONF, median  # noqa: E402
from pg_cluster import SETUP_APP, PgCluster, log  # noqa: E402
from proxy_pgbench import agent_run, run_pgbench  # noqa: E402

TARGET_ADDED_US = 0.3
SETUPS = ("steered", "steered-mask", "steered-aa")
MASK_RULE = """  - name: bench-untouched-column
    action: mask
    columns: ["public.bench_untouched.secret"]
    style: full
"""


def write_mask_policy(workdir):
    with open(ph.SHIPPED_POLICY) as f:
        shipped = f.read()
    path = os.path.join(workdir, "policy-mask.yaml")
    with open(path, "w") as f:
        f.write(shipped.rstrip("\n") + "\n" + MASK_RULE)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each pgbench run")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--allow-foreign-bpf", action="store_true",
                    help="run although other dbw_ BPF programs are loaded (a shared host)")
    args = ap.parse_args()
    args.jobs = args.clients
    rc, workdir = ph.begin("proxy_mask_pgbench", args.allow_foreign_bpf)
    if rc is not None:
        return rc
    rounds = []
    try:
        mask_policy = write_mask_policy(workdir)
        runners = {
            "steered": lambda c: agent_run(c, args, workdir, "off"),
            "steered-mask": lambda c: agent_run(c, args, workdir, "off", policy=mask_policy),
            "steered-aa": lambda c: agent_run(c, args, workdir, "off"),
        }
        with PgCluster(extra_conf=dict(QUIET_SERVER_CONF, max_connections="100")) as cluster:
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)
            run_pgbench(cluster.port, argparse.Namespace(**{**vars(args), "seconds": 3}))
            for i in range(args.rounds):
                order = SETUPS[i % 3:] + SETUPS[:i % 3]
                r = {kind: None for kind in order}
                for kind in order:
                    r[kind] = runners[kind](cluster)
                    time.sleep(1)
                base = r["steered"]
                r["mask_tps_ratio"] = r["steered-mask"]["tps"] / base["tps"]
                r["aa_tps_ratio"] = r["steered-aa"]["tps"] / base["tps"]
                r["mask_added_us"] = (r["steered-mask"]["proxy_us_per_stmt"] -
                                      base["proxy_us_per_stmt"])
                r["aa_added_us"] = (r["steered-aa"]["proxy_us_per_stmt"] -
                                    base["proxy_us_per_stmt"])
                rounds.append(r)
                print(f"round {i + 1:2d} ({'/'.join(order):36s}) steered {base['tps']:7.0f} "
                      f"(proxy {base['proxy_us_per_stmt']:.2f} us/stmt), mask "
                      f"{r['steered-mask']['tps']:7.0f} ({r['mask_tps_ratio']:.3f}, proxy "
                      f"{r['steered-mask']['proxy_us_per_stmt']:.2f}), A/A "
                      f"{r['steered-aa']['tps']:7.0f} ({r['aa_tps_ratio']:.3f}, proxy "
                      f"{r['steered-aa']['proxy_us_per_stmt']:.2f}); load {ph.load_average()}",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    med = {k: median([r[k] for r in rounds]) for k in
           ("mask_tps_ratio", "aa_tps_ratio", "mask_added_us", "aa_added_us")}
    for kind in SETUPS:
        med[f"{kind}_proxy_us_per_stmt"] = median([r[kind]["proxy_us_per_stmt"] for r in rounds])
    print(f"medians over {len(rounds)} rounds: proxy CPU per statement steered "
          f"{med['steered_proxy_us_per_stmt']:.3f} us, with the mask rule "
          f"{med['steered-mask_proxy_us_per_stmt']:.3f} us (added {med['mask_added_us']:+.3f} "
          f"us, target <= {TARGET_ADDED_US}), A/A {med['steered-aa_proxy_us_per_stmt']:.3f} us "
          f"({med['aa_added_us']:+.3f}); TPS mask/steered {med['mask_tps_ratio']:.3f}, "
          f"A/A {med['aa_tps_ratio']:.3f}")
    print("RESULT " + repr(med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
