#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Loss is never silent, at saturation: `pgbench -S` as fast as the machine goes, with 4 and
then 16 clients, a fixed number of transactions each, against a private PostgreSQL with
log_statement=all and the real agent. Afterwards, per run (its own application_name):

- the server's csvlog is the reference: every statement it logged for the run;
- the audit log must hold no statement the server did not log, none twice;
- every logged statement missing from the audit log must be covered by a drop the agent
  counted (dbwarden_capture_dropped_total, all reasons, growth during the run): a `pgbench
  -S` statement is one Query message, so one lost record loses at most one statement, and
  missing <= dropped records; with no drop counted, nothing may be missing.

Exit codes: 0 pass, 1 fail, 77 skip (not root) unless DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import collections
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import (PgCluster, log, read_audit, short, skip_or_fail,  # noqa: E402
                        start_agent, stop_agent)

# (clients, transactions per client, ring buffer bytes). The last run gives the kernel a ring
# far smaller than the reader's wake-up mark, so that records are dropped for certain and the
# accounting of the drops is exercised, not only the lossless case.
RUNS = ((4, 5000, None), (16, 1500, None), (4, 5000, 65536))
# pgbench -S sends this statement once per transaction (plus its own setup queries).
SELECT_RE = re.compile(r"\ASELECT abalance FROM pgbench_accounts WHERE aid = \d+\Z")
DROP_METRIC = "dbwarden_capture_dropped_total"


def norm(text):
    return re.sub(r"\s+", " ", text or "").strip().rstrip(";").strip()


def drops_by_reason(agent):
    """Capture drops by reason, plus audit records the writer dropped (a full queue)."""
    out = {"audit_queue": agent.metric_sum("dbwarden_audit_dropped_total") or 0.0}
    for line in agent.scrape().splitlines():
        m = re.match(r'\A' + DROP_METRIC + r'\{reason="([^"]+)"\}\s+(\S+)', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--scale", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs")

    failures = []
    with tempfile.TemporaryDirectory(prefix="dbw-sat-") as tmp, \
            PgCluster(extra_conf={"max_connections": "40"}) as cluster:
        cluster.pgbench(["-i", "-q", "-s", str(args.scale)], app=pg_cluster.SETUP_APP)
        runs = []
        for n, (clients, per_client, ring) in enumerate(RUNS):
            audit_path = os.path.join(tmp, f"audit-{n}.jsonl")
            agent_args = ["--ringbuf-bytes", str(ring)] if ring else []
            app = f"dbw-sat-{n}-{clients}"
            agent = pg_cluster.Agent(args.agent, audit_path, [cluster.port],
                                     extra_args=agent_args)
            if (rc := start_agent(agent)) is not None:
                return rc
            try:
                d0 = drops_by_reason(agent)
                out = cluster.pgbench(["-n", "-S", "-M", "simple", "-c", str(clients), "-j",
                                       str(min(clients, 4)), "-t", str(per_client)],
                                      tcp=True, app=app)
                tps = re.search(r"tps = ([\d.]+)", out)
                entries = cluster.sync_log()
                logged = [e for e in entries if e.statement is not None and
                          e.application_name == app and SELECT_RE.match(norm(e.statement))]
                agent.wait_audit_settled(timeout=120, quiet=3.0)
                d1 = drops_by_reason(agent)
            finally:
                stopped = stop_agent(agent)
            if stopped is not None:
                return stopped
            dropped = {k: d1.get(k, 0) - d0.get(k, 0) for k in d1}
            runs.append((clients, per_client, ring, app, logged, dropped,
                         tps.group(1) if tps else "?", audit_path))
        for clients, per_client, ring, app, logged, dropped, tps, audit_path in runs:
            records, bad = read_audit(audit_path)
            failures += bad
            # Each run has its own agent and audit file, and only pgbench sends these
            # statements: no filter on application_name, which a connection whose startup
            # record was dropped would not carry.
            audited = collections.Counter(norm(r.get("db.query.text")) for r in records
                                          if SELECT_RE.match(norm(r.get("db.query.text"))))
            reference = collections.Counter(norm(e.statement) for e in logged)
            want = clients * per_client
            if sum(reference.values()) != want:
                failures.append(f"{clients} clients: the server logged "
                                f"{sum(reference.values())} statements, pgbench ran {want}")
            extra = audited - reference
            missing = reference - audited
            n_missing = sum(missing.values())
            n_dropped = int(sum(dropped.values()))
            log(f"{clients} clients, ring {ring or 'default'}, {want} transactions at {tps} tps: "
                f"logged "
                f"{sum(reference.values())}, audited {sum(audited.values())}, missing "
                f"{n_missing}, drops counted {dict((k, v) for k, v in dropped.items() if v)}")
            if extra:
                failures.append(f"{clients} clients: {sum(extra.values())} audited statements "
                                f"the server did not log (or logged fewer times), e.g. "
                                f"{short(next(iter(extra)))}")
            if n_missing and n_missing > n_dropped:
                failures.append(f"{clients} clients: {n_missing} statements missing but only "
                                f"{n_dropped} drops counted, e.g. {short(next(iter(missing)))}")
    for f in failures:
        print(f"FAIL: {f}")
    if failures:
        return 1
    print("PASS: at saturation every logged statement is audited once, or a counted drop "
          "accounts for it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
