#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Result masking through the enforcing proxy: MB/s of result per core of proxy-thread CPU.

Issue 13's throughput target (>= 500 MB/s per core) measured end to end: a private
PostgreSQL holds a table of 100,000 rows x 10 text columns of 20-60 bytes (prose-like filler:
words, numbers, dates; 1 % of the values hold one detectable item, in turn a card that passes
Luhn, an IBAN that passes mod-97, an e-mail, a token (AWS key id, sk_live_ secret, JWT), an
E.164 phone number and a US SSN). A real client, `psql -A -t -o /dev/null` over 127.0.0.1 TCP,
fetches the whole table (`SELECT * FROM bench_mask`) in each setup, the order rotating every
round:
- direct: no agent (the client's own speed: wall-clock MB/s only);
- steered: `dbwarden run --mode enforce --enforce-observer off` with the shipped guardrails
  and no mask rule (the results stream through untouched);
- steered-mask: the same plus one mask rule naming all six built-in detectors (no `match`:
  every statement): every text value of the result is scanned, items found are masked;
- steered-mask-aa: steered-mask again, the A/A spread of the figure;
- steered-mask-base (--baseline-agent BINARY): steered-mask through another build (the one
  before a change), read within the same rounds.
Per agent run: the proxy thread's ("dbw-proxy") utime+stime from /proc/PID/task/TID/stat over
the fetches (and its sum_exec_runtime from .../schedstat, ns, as a finer reading), the MB of
result values (sum of octet_length of every value, read once from the server) per second of
that CPU, and the masked values the agent counted (dbwarden_masked_values_total) against the
planted items. Medians over rounds. See bench/README.md, "proxy_mask_throughput.py". Needs
root. Prints a line per round, a summary and a final line prefixed "RESULT ".
"""

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_harness as ph  # noqa: E402
from pgbench_observe import QUIET_SERVER_CONF, median, task_cpu_seconds  # noqa: E402
from pg_cluster import SETUP_APP, PgCluster, log  # noqa: E402

import psycopg2  # noqa: E402  (Debian python3-psycopg2, under /usr/bin/python3)

TARGET_MB_PER_CORE = 500.0
SETUPS = ("direct", "steered", "steered-mask", "steered-mask-aa")
TABLE = "bench_mask"
COLUMNS = 10
MASK_RULE = """  - name: bench-content
    action: mask
    detectors: [email, payment_card, iban, phone, us_ssn, token]
    style: full
"""

WORDS = ("the", "order", "was", "shipped", "to", "customer", "after", "review", "by", "team",
         "invoice", "pending", "approved", "delivery", "address", "changed", "note", "from",
         "support", "ticket", "closed", "reopened", "refund", "issued", "payment", "received",
         "account", "manager", "called", "back", "about", "contract", "renewal", "quarter",
         "report", "draft", "final", "meeting", "moved", "Monday", "Berlin", "Paris", "London",
         "warehouse", "stock", "level", "low", "high", "item", "returned", "damaged", "box",
         "Q3", "x-ray", "C++", "@team", "re-run", "ok", "see", "attached", "per", "call")
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def luhn_complete(prefix):
    """`prefix` plus the Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix + str((10 - total % 10) % 10)


def iban(rng):
    """A German IBAN (DE, 18-digit BBAN) with valid mod-97 check digits."""
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # "DE00" moved to the end, D=13, E=14
    return f"DE{check:02d}{bban}"


def planted_item(rng, k):
    kind = k % 8
    if kind == 0:
        return luhn_complete("4" + "".join(rng.choice("0123456789") for _ in range(14)))
    if kind == 1:
        card = luhn_complete("5" + "".join(rng.choice("0123456789") for _ in range(14)))
        return " ".join(card[i:i + 4] for i in range(0, 16, 4))
    if kind == 2:
        return iban(rng)
    if kind == 3:
        return f"{''.join(rng.choice('abcdefghij') for _ in range(6))}.{k}@example.com"
    if kind == 4:
        return "AKIA" + "".join(rng.choice(B32) for _ in range(16))
    if kind == 5:
        return "sk_live_" + "".join(rng.choice(ALNUM) for _ in range(24))
    if kind == 6:
        return f"+4930{rng.randrange(10**7, 10**8)}"
    return f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"


def filler_token(rng):
    r = rng.random()
    if r < 0.1:
        return str(rng.randrange(1, 10 ** rng.randrange(1, 7)))
    if r < 0.15:
        return f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    return rng.choice(WORDS)


def value(rng, item=None):
    target = rng.randrange(20, 61)
    parts = [] if item is None else [item]
    length = len(item) if item else -1  # the first token has no space before it
    while length < target:
        t = filler_token(rng)
        if item is not None and length + 1 + len(t) > 60:
            break  # a planted value is never cut: it would cut the item
        if item is not None and rng.random() < 0.5:
            parts.insert(0, t)
        else:
            parts.append(t)
        length += len(t) + 1
    text = " ".join(parts)
    if item is None:
        text = text[:target]  # a cut word is still prose
        if text.endswith(" "):
            text = text[:-1] + "."
    return text


def table_copy_text(rows, seed):
    """COPY text for `rows` rows of COLUMNS values; (text, [(row, column, item)])."""
    rng = random.Random(seed)
    n = rows * COLUMNS
    planted = set(rng.sample(range(n), n // 100))
    out = io.StringIO()
    items = []
    for r in range(rows):
        vals = []
        for c in range(COLUMNS):
            i = r * COLUMNS + c
            if i in planted:
                item = planted_item(rng, len(items))
                vals.append(value(rng, item))
                items.append((r, c, item))
            else:
                vals.append(value(rng))
        out.write("\t".join(vals) + "\n")
    return out.getvalue(), items


def write_table(path, rows, seed):
    """The table as COPY text at `path` and its planted items at `path`.planted (row, column,
    item; tab-separated), for bench_mask_relay_rows: the relay fed the same bytes."""
    text, items = table_copy_text(rows, seed)
    with open(path, "w") as f:
        f.write(text)
    with open(path + ".planted", "w") as f:
        f.writelines(f"{r}\t{c}\t{item}\n" for r, c, item in items)
    print(f"{path}: {rows} rows, {len(items)} planted items")


def load_table(cluster, rows, seed):
    text, items = table_copy_text(rows, seed)
    planted = len(items)
    conn = psycopg2.connect(host=cluster.socket_dir, port=cluster.port, user="postgres",
                            dbname="postgres", application_name=SETUP_APP)
    conn.autocommit = True
    cur = conn.cursor()
    cols = ", ".join(f"c{i} text" for i in range(1, COLUMNS + 1))
    cur.execute(f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} ({cols})")
    cur.copy_expert(f"COPY {TABLE} FROM STDIN", io.StringIO(text))
    cur.execute(f"VACUUM ANALYZE {TABLE}")
    total = " + ".join(f"octet_length(c{i})" for i in range(1, COLUMNS + 1))
    cur.execute(f"SELECT count(*), sum({total}) FROM {TABLE}")
    count, payload = cur.fetchone()
    conn.close()
    return int(count), int(payload), planted


def fetch(port):
    """One fetch of the whole table by psql over TCP; wall seconds."""
    t0 = time.monotonic()
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-o",
                        os.devnull, "-c", f"SELECT * FROM {TABLE}"],
                       env=ph.cluster_env("127.0.0.1", port), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"psql fetch failed: {r.stderr.strip()[-1000:]}")
    return time.monotonic() - t0


def schedstat_ns(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        return int(f.read().split()[0])


def proxy_tid(pid):
    for tid, (name, _) in task_cpu_seconds(pid).items():
        if name == "dbw-proxy":
            return tid
    raise RuntimeError("the agent has no dbw-proxy thread")


def direct_run(cluster, args, workdir, payload):
    wall = sum(fetch(cluster.port) for _ in range(args.fetches))
    return {"wall_mb_s": payload * args.fetches / wall / 1e6}


def agent_run(cluster, args, workdir, payload, policy, binary=None, perf_file=None):
    agent = ph.BenchAgent(binary or args.agent, workdir, cluster.port, policy=policy)
    agent.start()
    perf = None
    try:
        agent.wait_audit_settled(timeout=10, quiet=0.5)
        tid = proxy_tid(agent.pid)
        masked0 = agent.metric_sum("dbwarden_masked_values_total") or 0.0
        th0 = task_cpu_seconds(agent.pid)
        ns0 = schedstat_ns(agent.pid, tid)
        if perf_file:
            perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-t", str(tid), "-o",
                                     perf_file], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        wall = sum(fetch(cluster.port) for _ in range(args.fetches))
        th1 = task_cpu_seconds(agent.pid)
        ns1 = schedstat_ns(agent.pid, tid)
        if perf is not None:
            perf.send_signal(2)  # SIGINT: perf writes its file and exits
            perf.wait(timeout=60)
            perf = None
        agent.wait_audit_settled(timeout=10, quiet=0.5)
        masked = (agent.metric_sum("dbwarden_masked_values_total") or 0.0) - masked0
    finally:
        if perf is not None:
            perf.kill()
            perf.wait()
        agent.stop()
    cpu = th1[tid][1] - th0[tid][1]
    mb = payload * args.fetches / 1e6
    return {
        "wall_mb_s": mb / wall,
        "proxy_cpu_s": cpu,
        "proxy_mb_per_core_s": mb / cpu if cpu > 0 else float("inf"),
        "proxy_sched_cpu_s": (ns1 - ns0) / 1e9,
        "proxy_mb_per_core_s_sched": mb / ((ns1 - ns0) / 1e9) if ns1 > ns0 else float("inf"),
        "masked_values": masked,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", help="path to the dbwarden executable (required but with "
                    "--write-table)")
    ap.add_argument("--baseline-agent", help="a further setup, steered-mask-base, through "
                    "this build (the one before a change)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fetches", type=int, default=3, help="fetches of the table per run")
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--perf", metavar="FILE",
                    help="perf record -g of the proxy thread during the first steered-mask run")
    ap.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    ap.add_argument("--allow-foreign-bpf", action="store_true",
                    help="run although other dbw_ BPF programs are loaded (a shared host)")
    ap.add_argument("--write-table", metavar="FILE",
                    help="only write the table (COPY text) to FILE and its planted items to "
                    "FILE.planted, for bench_mask_relay_rows, and exit (no root needed)")
    args = ap.parse_args()
    if args.write_table:
        write_table(args.write_table, args.rows, args.seed)
        return 0
    if not args.agent:
        ap.error("--agent is required")
    rc, workdir = ph.begin("proxy_mask_throughput", args.allow_foreign_bpf)
    if rc is not None:
        return rc
    setups = SETUPS + (("steered-mask-base",) if args.baseline_agent else ())
    rounds = []
    try:
        with open(ph.SHIPPED_POLICY) as f:
            shipped = f.read()
        mask_policy = os.path.join(workdir, "policy-mask.yaml")
        with open(mask_policy, "w") as f:
            f.write(shipped.rstrip("\n") + "\n" + MASK_RULE)
        with PgCluster(extra_conf=dict(QUIET_SERVER_CONF)) as cluster:
            rows, payload, planted = load_table(cluster, args.rows, args.seed)
            log(f"{TABLE}: {rows} rows x {COLUMNS} text columns, {payload / 1e6:.1f} MB of "
                f"values, {planted} planted items; {args.fetches} fetches per run")
            fetch(cluster.port)  # warm the server's cache
            perf_file = args.perf
            runners = {
                "direct": lambda: direct_run(cluster, args, workdir, payload),
                "steered": lambda: agent_run(cluster, args, workdir, payload, ph.SHIPPED_POLICY),
                "steered-mask": lambda: agent_run(cluster, args, workdir, payload, mask_policy,
                                                  perf_file=perf_file),
                "steered-mask-aa": lambda: agent_run(cluster, args, workdir, payload,
                                                     mask_policy),
                "steered-mask-base": lambda: agent_run(cluster, args, workdir, payload,
                                                       mask_policy, binary=args.baseline_agent),
            }
            for i in range(args.rounds):
                order = setups[i % len(setups):] + setups[:i % len(setups)]
                r = {"load": ph.load_average()}
                for kind in order:
                    r[kind] = runners[kind]()
                    if kind == "steered-mask":
                        perf_file = None
                rounds.append(r)
                parts = [f"direct {r['direct']['wall_mb_s']:.0f} MB/s wall"]
                for kind in setups[1:]:
                    x = r[kind]
                    parts.append(f"{kind} {x['proxy_mb_per_core_s']:.0f} MB/s/core "
                                 f"(sched {x['proxy_mb_per_core_s_sched']:.0f}, wall "
                                 f"{x['wall_mb_s']:.0f}, masked {x['masked_values']:.0f})")
                print(f"round {i + 1:2d} load {r['load']}: " + "; ".join(parts), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    med = {"planted_per_fetch": planted, "payload_mb": payload / 1e6,
           "direct_wall_mb_s": median([r["direct"]["wall_mb_s"] for r in rounds]),
           "loads": [r["load"] for r in rounds]}
    for kind in setups[1:]:
        for key in ("proxy_mb_per_core_s", "proxy_mb_per_core_s_sched", "wall_mb_s",
                    "masked_values"):
            med[f"{kind}_{key}"] = median([r[kind][key] for r in rounds])
    mask = med["steered-mask_proxy_mb_per_core_s"]
    plain = med["steered_proxy_mb_per_core_s"]
    # CPU per MB added by masking, from the two medians.
    med["mask_added_ns_per_byte"] = (1 / mask - 1 / plain) * 1e3
    med["aa_ratio"] = median([r["steered-mask-aa"]["proxy_mb_per_core_s"] /
                              r["steered-mask"]["proxy_mb_per_core_s"] for r in rounds])
    print(f"medians over {len(rounds)} rounds ({payload / 1e6:.1f} MB x {args.fetches} fetches "
          f"per run, {planted} planted items per fetch): proxy thread MB/s per core: steered "
          f"{plain:.0f}, steered-mask {mask:.0f} (target >= {TARGET_MB_PER_CORE:.0f}), A/A "
          f"{med['steered-mask-aa_proxy_mb_per_core_s']:.0f} (ratio {med['aa_ratio']:.3f})"
          + (f", base {med['steered-mask-base_proxy_mb_per_core_s']:.0f}"
             if args.baseline_agent else "") +
          f"; masking adds {med['mask_added_ns_per_byte']:.2f} ns/byte; wall MB/s direct "
          f"{med['direct_wall_mb_s']:.0f}, steered {med['steered_wall_mb_s']:.0f}, "
          f"steered-mask {med['steered-mask_wall_mb_s']:.0f}; masked values per run "
          f"{med['steered-mask_masked_values']:.0f} (planted {planted * args.fetches})")
    print("RESULT " + repr(med))
    if args.check and mask < TARGET_MB_PER_CORE:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
