# SPDX-License-Identifier: Apache-2.0
"""What one more policy rule costs statements it does not apply to: pgbench -S through the
enforcing proxy with the shipped guardrails, with the guardrails plus that rule, and with the
guardrails again (A/A). Shared by proxy_mask_pgbench.py (a mask rule on an untouched table)
and proxy_approval_pgbench.py (an approval rule on another table).

A private PostgreSQL loaded with `pgbench -i`; rounds of `pgbench -S -M simple` over
127.0.0.1 TCP, the order rotating every round, each through `dbwarden run --mode enforce
--enforce-observer off` (proxy_pgbench.py's agent runner: agent CPU by thread from /proc).
Reported: medians of the proxy thread's CPU per statement per setup, the per-round
difference to steered (with the rule, and A/A) and the TPS ratios, with their ranges.
"""

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_harness as ph  # noqa: E402
from pgbench_observe import QUIET_SERVER_CONF, median  # noqa: E402
from pg_cluster import SETUP_APP, PgCluster  # noqa: E402
from proxy_pgbench import agent_run, run_pgbench  # noqa: E402


def main_for(name, tag, rule, target_us, description, setup_sql=None):
    """The benchmark's main(): the guardrails plus `rule` (YAML appended to
    packaging/policy.yaml: more list items of `rules:`, then other top-level keys) is setup
    steered-<tag>. `setup_sql` runs once after pgbench -i."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each pgbench run")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--allow-foreign-bpf", action="store_true",
                    help="run although other dbw_ BPF programs are loaded (a shared host)")
    args = ap.parse_args()
    args.jobs = args.clients
    rc, workdir = ph.begin(name, args.allow_foreign_bpf)
    if rc is not None:
        return rc
    variant = f"steered-{tag}"
    setups = ("steered", variant, "steered-aa")
    rounds = []
    try:
        with open(ph.SHIPPED_POLICY) as f:
            shipped = f.read()
        policy = os.path.join(workdir, f"policy-{tag}.yaml")
        with open(policy, "w") as f:
            f.write(shipped.rstrip("\n") + "\n" + rule)
        runners = {
            "steered": lambda c: agent_run(c, args, workdir, "off"),
            variant: lambda c: agent_run(c, args, workdir, "off", policy=policy),
            "steered-aa": lambda c: agent_run(c, args, workdir, "off"),
        }
        with PgCluster(extra_conf=dict(QUIET_SERVER_CONF, max_connections="100")) as cluster:
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)
            if setup_sql:
                cluster.setup_sql(setup_sql)
            run_pgbench(cluster.port, argparse.Namespace(**{**vars(args), "seconds": 3}))
            for i in range(args.rounds):
                order = setups[i % 3:] + setups[:i % 3]
                r = {}
                for kind in order:
                    r[kind] = runners[kind](cluster)
                    time.sleep(1)
                base = r["steered"]
                for kind, t in ((variant, tag), ("steered-aa", "aa")):
                    r[f"{t}_tps_ratio"] = r[kind]["tps"] / base["tps"]
                    r[f"{t}_added_us"] = r[kind]["proxy_us_per_stmt"] - base["proxy_us_per_stmt"]
                rounds.append(r)
                print(f"round {i + 1:2d} ({'/'.join(order):44s}) steered {base['tps']:7.0f} "
                      f"(proxy {base['proxy_us_per_stmt']:.2f} us/stmt), {tag} "
                      f"{r[variant]['tps']:7.0f} ({r[f'{tag}_tps_ratio']:.3f}, "
                      f"proxy {r[variant]['proxy_us_per_stmt']:.2f}), A/A "
                      f"{r['steered-aa']['tps']:7.0f} ({r['aa_tps_ratio']:.3f}, proxy "
                      f"{r['steered-aa']['proxy_us_per_stmt']:.2f}); load {ph.load_average()}",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    keys = (f"{tag}_tps_ratio", "aa_tps_ratio", f"{tag}_added_us", "aa_added_us")
    med = {k: median([r[k] for r in rounds]) for k in keys}
    for k in keys:
        med[k + "_range"] = [min(r[k] for r in rounds), max(r[k] for r in rounds)]
    for kind in setups:
        med[f"{kind}_proxy_us_per_stmt"] = median([r[kind]["proxy_us_per_stmt"] for r in rounds])
        med[f"{kind}_tps"] = median([r[kind]["tps"] for r in rounds])
    rng = (lambda k: "{:.3f}-{:.3f}".format(*med[k + "_range"]))
    print(f"medians over {len(rounds)} rounds: proxy CPU per statement steered "
          f"{med['steered_proxy_us_per_stmt']:.3f} us, with the {tag} rule "
          f"{med[f'{variant}_proxy_us_per_stmt']:.3f} us (added "
          f"{med[f'{tag}_added_us']:+.3f} us, range {rng(f'{tag}_added_us')}, target <= "
          f"{target_us}), A/A {med['steered-aa_proxy_us_per_stmt']:.3f} us "
          f"({med['aa_added_us']:+.3f}, range {rng('aa_added_us')}); TPS {tag}/steered "
          f"{med[f'{tag}_tps_ratio']:.3f} (range {rng(f'{tag}_tps_ratio')}), A/A "
          f"{med['aa_tps_ratio']:.3f} (range {rng('aa_tps_ratio')})")
    print("RESULT " + repr(med))
    return 0
