#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""pgbench -S through the enforcing proxy with a require_approval rule on other tables vs no
such rule: added proxy CPU per statement, TPS ratio and the A/A spread (issue 14: statements
that need no approval are not slowed, <= 0.2 us added proxy CPU per statement).

A private PostgreSQL loaded with `pgbench -i`; rounds of `pgbench -S -M simple` over
127.0.0.1 TCP, the order rotating every round, each through `dbwarden run --mode enforce
--enforce-observer off` (the proxy alone):
- steered: the shipped default guardrails;
- steered-approval: the same policy plus an approver group and one rule holding every
  statement on bench_other (`match: {collections: [bench_other]}`, action require_approval)
  for approval; pgbench never touches bench_other, so every statement is judged against the
  rule and passes without a request;
- steered-aa: steered again, for the spread of two identical setups.
Reported: medians of the proxy thread's CPU per statement in each setup, the difference
steered-approval - steered (target <= 0.2 us) beside steered-aa - steered, and the TPS
ratios steered-approval/steered and steered-aa/steered with their ranges. Runs
proxy_pgbench.py's agent runner (agent CPU by thread from /proc). See bench/README.md,
"Approvals". Needs root.
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

TARGET_ADDED_US = 0.2
SETUPS = ("steered", "steered-approval", "steered-aa")
APPROVAL_RULE = """  - name: bench-approve-other-table
    match: {collections: [bench_other]}
    action: require_approval
    approvers: [dba]
approver_groups:
  dba: [daemon]
"""


def write_approval_policy(workdir):
    with open(ph.SHIPPED_POLICY) as f:
        shipped = f.read()
    path = os.path.join(workdir, "policy-approval.yaml")
    with open(path, "w") as f:
        f.write(shipped.rstrip("\n") + "\n" + APPROVAL_RULE)
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
    rc, workdir = ph.begin("proxy_approval_pgbench", args.allow_foreign_bpf)
    if rc is not None:
        return rc
    rounds = []
    try:
        approval_policy = write_approval_policy(workdir)
        runners = {
            "steered": lambda c: agent_run(c, args, workdir, "off"),
            "steered-approval": lambda c: agent_run(c, args, workdir, "off",
                                                    policy=approval_policy),
            "steered-aa": lambda c: agent_run(c, args, workdir, "off"),
        }
        with PgCluster(extra_conf=dict(QUIET_SERVER_CONF, max_connections="100")) as cluster:
            cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=SETUP_APP)
            cluster.setup_sql("CREATE TABLE bench_other (id int)")
            run_pgbench(cluster.port, argparse.Namespace(**{**vars(args), "seconds": 3}))
            for i in range(args.rounds):
                order = SETUPS[i % 3:] + SETUPS[:i % 3]
                r = {}
                for kind in order:
                    r[kind] = runners[kind](cluster)
                    time.sleep(1)
                base = r["steered"]
                for kind, tag in (("steered-approval", "approval"), ("steered-aa", "aa")):
                    r[f"{tag}_tps_ratio"] = r[kind]["tps"] / base["tps"]
                    r[f"{tag}_added_us"] = r[kind]["proxy_us_per_stmt"] - base["proxy_us_per_stmt"]
                rounds.append(r)
                print(f"round {i + 1:2d} ({'/'.join(order):44s}) steered {base['tps']:7.0f} "
                      f"(proxy {base['proxy_us_per_stmt']:.2f} us/stmt), approval rule "
                      f"{r['steered-approval']['tps']:7.0f} ({r['approval_tps_ratio']:.3f}, "
                      f"proxy {r['steered-approval']['proxy_us_per_stmt']:.2f}), A/A "
                      f"{r['steered-aa']['tps']:7.0f} ({r['aa_tps_ratio']:.3f}, proxy "
                      f"{r['steered-aa']['proxy_us_per_stmt']:.2f}); load {ph.load_average()}",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    keys = ("approval_tps_ratio", "aa_tps_ratio", "approval_added_us", "aa_added_us")
    med = {k: median([r[k] for r in rounds]) for k in keys}
    for k in keys:
        med[k + "_range"] = [min(r[k] for r in rounds), max(r[k] for r in rounds)]
    for kind in SETUPS:
        med[f"{kind}_proxy_us_per_stmt"] = median([r[kind]["proxy_us_per_stmt"] for r in rounds])
        med[f"{kind}_tps"] = median([r[kind]["tps"] for r in rounds])
    print(f"medians over {len(rounds)} rounds: proxy CPU per statement steered "
          f"{med['steered_proxy_us_per_stmt']:.3f} us, with the approval rule "
          f"{med['steered-approval_proxy_us_per_stmt']:.3f} us (added "
          f"{med['approval_added_us']:+.3f} us, target <= {TARGET_ADDED_US}), A/A "
          f"{med['steered-aa_proxy_us_per_stmt']:.3f} us ({med['aa_added_us']:+.3f}); TPS "
          f"approval/steered {med['approval_tps_ratio']:.3f} "
          f"(range {med['approval_tps_ratio_range'][0]:.3f}-"
          f"{med['approval_tps_ratio_range'][1]:.3f}), A/A {med['aa_tps_ratio']:.3f} "
          f"(range {med['aa_tps_ratio_range'][0]:.3f}-{med['aa_tps_ratio_range'][1]:.3f})")
    print("RESULT " + repr(med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
