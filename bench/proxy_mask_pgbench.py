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
steered-mask/steered and steered-aa/steered (bench/policy_ab_pgbench.py runs the rounds).
See bench/README.md, "Masking". Needs root.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from policy_ab_pgbench import main_for  # noqa: E402

TARGET_ADDED_US = 0.3
MASK_RULE = """  - name: bench-untouched-column
    action: mask
    columns: ["public.bench_untouched.secret"]
    style: full
"""


def main():
    return main_for("proxy_mask_pgbench", "mask", MASK_RULE, TARGET_ADDED_US,
                    __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
