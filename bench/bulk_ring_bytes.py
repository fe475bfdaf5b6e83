#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Ring-buffer bytes per audited statement with the bulk-data bound off and on (issue 3).

One private PostgreSQL; for each setting, in the same run, a fresh agent (`off`:
--bulk-head-bytes 0 --bulk-tail-bytes 0; `on`: the defaults, 1024 + 1024) observes
(a) `pgbench -S` (small responses: the bound should change nothing) and (b) a bulk mix
(200,000-row SELECT, COPY ... TO STDOUT of 200,000 rows, a 1-row SELECT), over TCP.
Reports dbwarden_capture_ring_bytes_total / dbwarden_audit_records_total growth per
workload, the ratio on/off, and the skipped bytes. Ratios, not times: see bench/README.md.
Needs root. The last line is machine-readable JSON prefixed with "RESULT ".
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                 "integration"))
from pg_cluster import SETUP_APP, Agent, PgCluster  # noqa: E402

BULK_SQL = ("SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g;\n"
            "COPY (SELECT g, repeat('y', 100) FROM generate_series(1, 200000) g) TO STDOUT;\n"
            "SELECT 1;\n")
SETTINGS = {"off": ["--bulk-head-bytes", "0", "--bulk-tail-bytes", "0"], "on": []}


def sample(agent):
    text = agent.scrape()
    return {k: agent.metric_sum(m, text) or 0 for k, m in (
        ("ring", "dbwarden_capture_ring_bytes_total"),
        ("records", "dbwarden_audit_records_total"),
        ("skipped", "dbwarden_capture_bulk_skipped_bytes_total"))}


def measure(agent, work):
    agent.wait_audit_settled(timeout=30, quiet=2.0)
    before = sample(agent)
    work()
    agent.wait_audit_settled(timeout=120, quiet=3.0)
    after = sample(agent)
    d = {k: after[k] - before[k] for k in before}
    d["ring_per_statement"] = d["ring"] / d["records"] if d["records"] else float("nan")
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--transactions", type=int, default=5000, help="pgbench -t per client")
    ap.add_argument("--bulk-rounds", type=int, default=3)
    args = ap.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="dbw-bulkbench-")
    os.chmod(workdir, 0o755)
    results = {}
    try:
        with PgCluster(extra_conf={"log_statement": "none"}) as cluster:
            cluster.pgbench(["-i", "-q", "-s", "1"], app=SETUP_APP)

            def pgbench():
                cluster.pgbench(["-S", "-M", "simple", "-c", "4", "-t", str(args.transactions)],
                                tcp=True, app="bench")

            def bulk():
                for _ in range(args.bulk_rounds):
                    subprocess.run(["psql", "-X", "-q", "-o", "/dev/null"], input=BULK_SQL,
                                   text=True, env=cluster.client_env(tcp=True, app="bench"),
                                   check=True, stdout=subprocess.DEVNULL, timeout=600)

            for name, extra in SETTINGS.items():
                audit = os.path.join(workdir, f"audit-{name}.jsonl")
                with Agent(args.agent, audit, [cluster.port], extra_args=extra) as agent:
                    results[name] = {"pgbench_S": measure(agent, pgbench),
                                     "bulk": measure(agent, bulk)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'workload':<10} {'bound':<4} {'statements':>10} {'ring bytes':>12} "
          f"{'ring B/stmt':>12} {'skipped bytes':>14}")
    for wl in ("pgbench_S", "bulk"):
        for name in SETTINGS:
            r = results[name][wl]
            print(f"{wl:<10} {name:<4} {r['records']:>10.0f} {r['ring']:>12.0f} "
                  f"{r['ring_per_statement']:>12.1f} {r['skipped']:>14.0f}")
        ratio = (results["on"][wl]["ring_per_statement"] /
                 results["off"][wl]["ring_per_statement"])
        results[f"{wl}_ratio_on_off"] = ratio
        print(f"{wl:<10} on/off ring bytes per statement: {ratio:.3f}")
    print("RESULT " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
