#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""How fast `dbwarden audit cat` and `dbwarden verify-audit` read a framed trail.

Issue 16's read target: >= 500 MB/s of uncompressed JSON per core for both. The trail is
written by the agent's own writer (tests/integration/audit_log_writer, framed `zst`,
a checkpoint every 100,000 records as the agent's default), or given with --trail DIR (a
trail an agent wrote). Each round runs both commands as separate processes; CPU is the
process's user + system time (os.wait4), so MB/s per core = JSON bytes / CPU seconds. The
JSON bytes are what `audit cat` prints, counted once. `audit cat` writes to /dev/null, and
again into a pipe that this script drains (what a log shipper does; the pipe's copy is
in the command's system time). The floor beside them: zstd's own tool decompressing the
same files (`zstd -dc`, the seals are skippable frames) to /dev/null.

See bench/README.md. Prints one line per round and a final JSON line prefixed "RESULT ".
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_MB_S = 500.0


def timed(cmd, stdout):
    """Wall seconds, CPU seconds (user + system) and exit status of `cmd`."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    return wall, ru.ru_utime + ru.ru_stime, p.returncode, err


def cat_through_pipe(agent, trail):
    """`audit cat` into a pipe, as a log shipper reads it: bytes and lines printed, and the
    command's own wall and CPU seconds (the reader's are not counted)."""
    t0 = time.monotonic()
    p = subprocess.Popen([agent, "audit", "cat", trail], stdout=subprocess.PIPE)
    total = lines = 0
    while True:
        chunk = p.stdout.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
        lines += chunk.count(b"\n")
    _, status, ru = os.wait4(p.pid, 0)
    p.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("audit cat failed")
    return total, lines, time.monotonic() - t0, ru.ru_utime + ru.ru_stime


def disk_bytes(trail):
    if os.path.isfile(trail):
        return os.path.getsize(trail)
    return sum(os.path.getsize(os.path.join(trail, n)) for n in os.listdir(trail))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--writer", help="path to audit_log_writer (writes the trail)")
    ap.add_argument("--trail", help="an existing trail (file or directory) instead")
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not args.writer and not args.trail:
        ap.error("--writer or --trail")

    workdir = tempfile.mkdtemp(prefix="dbw-audit-read-")
    try:
        trail = args.trail
        if not trail:
            trail = os.path.join(workdir, "trail")
            os.mkdir(trail)
            subprocess.run([args.writer, "--format", "zst", "--checkpoint-records", "100000",
                            os.path.join(trail, "audit.jsonl.zst"), str(args.records)],
                           check=True)
        size, lines, _, _ = cat_through_pipe(args.agent, trail)
        on_disk = disk_bytes(trail)
        print(f"trail: {lines} records, {size / 1e6:.1f} MB of JSON ({size / lines:.0f} B a "
              f"record), {on_disk / 1e6:.1f} MB on disk (x{size / on_disk:.1f})", flush=True)
        # The floor: zstd's own tool decompressing the same files (seals are skippable frames).
        files = [trail] if os.path.isfile(trail) else sorted(
            os.path.join(trail, n) for n in os.listdir(trail) if n.endswith(".zst"))
        zstd_cmd = ["zstd", "-q", "-d", "-c"] + files if shutil.which("zstd") else None
        rounds = []
        with open(os.devnull, "wb") as null:
            for r in range(args.rounds):
                row = {"round": r + 1}
                for name, cmd in (("cat", [args.agent, "audit", "cat", trail]),
                                  ("verify", [args.agent, "verify-audit", trail]),
                                  ("zstd", zstd_cmd)):
                    if cmd is None:
                        continue
                    wall, cpu, rc, err = timed(cmd, null)
                    if rc != 0:
                        raise RuntimeError(f"{' '.join(cmd)} exited {rc}: {err.strip()}")
                    row[name] = {"wall_s": wall, "cpu_s": cpu, "mb_s_per_core": size / cpu / 1e6,
                                 "mb_s_wall": size / wall / 1e6}
                _, _, wall, cpu = cat_through_pipe(args.agent, trail)
                row["cat_pipe"] = {"wall_s": wall, "cpu_s": cpu, "mb_s_per_core": size / cpu / 1e6,
                                   "mb_s_wall": size / wall / 1e6}
                rounds.append(row)
                print(f"round {r + 1}: audit cat {row['cat']['mb_s_per_core']:7.0f} MB/s per core "
                      f"({row['cat']['cpu_s']:.3f} s CPU, {row['cat']['wall_s']:.3f} s wall), "
                      f"verify-audit {row['verify']['mb_s_per_core']:7.0f} MB/s per core "
                      f"({row['verify']['cpu_s']:.3f} s CPU, {row['verify']['wall_s']:.3f} s wall), "
                      f"audit cat into a pipe {row['cat_pipe']['mb_s_per_core']:7.0f} MB/s per core"
                      + (f", zstd -dc {row['zstd']['mb_s_per_core']:7.0f} MB/s per core"
                         if "zstd" in row else ""),
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {"bench": "audit_read", "records": lines, "json_bytes": size, "disk_bytes": on_disk,
               "target_mb_s_per_core": TARGET_MB_S}
    for name in ("cat", "verify", "cat_pipe", "zstd"):
        v = [r[name]["mb_s_per_core"] for r in rounds if name in r]
        if not v:
            continue
        summary[f"{name}_mb_s_per_core_median"] = statistics.median(v)
        summary[f"{name}_mb_s_per_core_range"] = [min(v), max(v)]
        summary[f"{name}_ok"] = statistics.median(v) >= TARGET_MB_S
    print(f"median: audit cat {summary['cat_mb_s_per_core_median']:.0f} MB/s per core, "
          f"verify-audit {summary['verify_mb_s_per_core_median']:.0f} MB/s per core, "
          f"audit cat into a pipe {summary['cat_pipe_mb_s_per_core_median']:.0f} MB/s per core, "
          f"zstd -dc (the floor) {summary.get('zstd_mb_s_per_core_median', float('nan')):.0f} "
          "MB/s per core "
          f"(target >= {TARGET_MB_S:.0f})")
    print("RESULT " + json.dumps({**summary, "rounds": rounds}, sort_keys=True))
    ok = summary["cat_ok"] and summary["verify_ok"] and summary["cat_pipe_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
