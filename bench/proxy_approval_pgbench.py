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
ratios steered-approval/steered and steered-aa/steered with their ranges
(bench/policy_ab_pgbench.py runs the rounds). See bench/README.md, "Approvals". Needs root.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from policy_ab_pgbench import main_for  # noqa: E402

TARGET_ADDED_US = 0.2
APPROVAL_RULE = """  - name: bench-approve-other-table
    match: {collections: [bench_other]}
    action: require_approval
    approvers: [dba]
approver_groups:
  dba: [daemon]
"""


def main():
    return main_for("proxy_approval_pgbench", "approval", APPROVAL_RULE, TARGET_ADDED_US,
                    __doc__.splitlines()[0], setup_sql="CREATE TABLE bench_other (id int)")


if __name__ == "__main__":
    sys.exit(main())
