#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Shipping to a real rsyslog: the collector restarts mid-stream and nothing is lost.

Starts a private rsyslogd (its own config, work directory and output file in a
temporary directory; imtcp on a free loopback port, octet-counted framing as
rsyslog accepts by default) and drives the real SyslogShipper with
shipping_harness:

1. N records at a steady rate; after a third has arrived, rsyslog is stopped
   (SIGTERM to its pid) and started again on the same port a second later.
   Every record must be in rsyslog's output, in seq order, repeats only as
   many as the shipper says it resent (at-least-once around the restart), and
   the shipper's stats must account for every record.
2. With rsyslog down, a harness run spools its records and exits; the next
   run, with rsyslog up, sends those first and then its own, in order.

rsyslog needs no root on a high port; nothing is skipped. Only processes this
script started are stopped, by pid.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rsyslog:
    def __init__(self, tmp, port):
        self.tmp = tmp
        self.port = port
        self.out = os.path.join(tmp, "received.log")
        self.conf = os.path.join(tmp, "rsyslog.conf")
        self.pidfile = os.path.join(tmp, "rsyslogd.pid")
        os.makedirs(os.path.join(tmp, "work"), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(f"""
global(workDirectory="{tmp}/work" maxMessageSize="64k")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imtcp" port="{port}" address="127.0.0.1")
action(type="omfile" file="{self.out}" template="raw")
""")
        self.proc = None
        self.starts = 0

    def start(self):
        log = open(os.path.join(self.tmp, f"rsyslogd.{self.starts}.log"), "w")
        self.starts += 1
        self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", self.conf, "-i", self.pidfile],
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsyslogd exited with {self.proc.returncode}; see {log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rsyslogd did not listen on port %d" % self.port)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def records(self):
        """(seq, raw message) for each received audit record, in file order."""
        out = []
        if not os.path.exists(self.out):
            return out
        with open(self.out, errors="replace") as f:
            for line in f:
                brace = line.find("{")
                if brace < 0 or "db.query.text" not in line:
                    continue  # rsyslog's own messages
                rec = json.loads(line[brace:])
                out.append((int(rec["db.query.text"].split()[1]), line.rstrip("\n")))
        return out


def check_order(seqs, first, n):
    """seqs must deliver first..first+n-1 in order; a stretch may repeat. Returns repeats."""
    want = first
    repeats = 0
    for s in seqs:
        if s == want:
            want += 1
        elif first <= s < want:
            repeats += 1
        else:
            raise AssertionError(f"seq {s} arrived while expecting {want}")
    if want != first + n:
        raise AssertionError(f"records {want}..{first + n - 1} never arrived")
    return repeats


def spool_files(d):
    return [f for f in os.listdir(d) if f.endswith(".log")] if os.path.isdir(d) else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--harness", required=True)
    ap.add_argument("--records", type=int, default=3000)
    args = ap.parse_args()
    if not os.path.exists(RSYSLOGD):
        print("rsyslogd not found: apt-get install rsyslog", file=sys.stderr)
        return 1

    tmp = tempfile.mkdtemp(prefix="dbw-syslog-")
    port = free_port()
    rs = Rsyslog(tmp, port)
    harness = None
    ok = False
    try:
        rs.start()
        address = f"127.0.0.1:{port}"
        spool = os.path.join(tmp, "spool")
        n = args.records

        # 1. Restart mid-stream.
        harness = subprocess.Popen([args.harness, address, spool, "0", str(n), "1000", "60000"],
                                   stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while len(rs.records()) < n // 3:
            if time.time() > deadline or harness.poll() is not None:
                raise AssertionError("rsyslog did not receive a third of the records in time")
            time.sleep(0.02)
        before = len(rs.records())
        rs.stop()
        time.sleep(1.0)  # the shipper reconnects with backoff and spools meanwhile
        rs.start()
        out, _ = harness.communicate(timeout=120)
        stats = json.loads(out)
        print("restart run:", json.dumps(stats))
        assert harness.returncode == 0, f"harness failed: {out}"
        harness = None
        rs.stop()  # flushes rsyslog's queue and output file
        recs = rs.records()
        seqs = [s for s, _ in recs]
        repeats = check_order(seqs, 0, n)
        print(f"received {len(seqs)} records ({before} before the restart), "
              f"{repeats} repeated, shipper resent {stats['resent']}")
        assert repeats <= stats["resent"], "more repeats than the shipper resent"
        assert stats["accepted"] == n and stats["sent"] == n, stats
        assert stats["dropped"] == 0 and stats["queue_records"] == 0, stats
        assert stats["spool_records"] == 0 and not spool_files(spool), stats
        assert stats["reconnects"] >= 1 and stats["send_errors"] + stats["connect_errors"] >= 1
        raw = recs[0][1]
        assert raw.startswith("<110>1 ") and " dbwarden " in raw and " audit - {" in raw, raw

        # 2. Collector down for a whole run: the next run sends the spool first.
        h = subprocess.run([args.harness, address, spool, str(n), "500", "0", "500"],
                           stdout=subprocess.PIPE, text=True, timeout=60)
        down = json.loads(h.stdout)
        print("collector-down run:", json.dumps(down))
        assert h.returncode == 1 and down["sent"] == 0 and down["dropped"] == 0, down
        assert spool_files(spool), "nothing spooled while the collector was down"
        rs.start()
        h = subprocess.run([args.harness, address, spool, str(n + 500), "500", "0", "60000"],
                           stdout=subprocess.PIPE, text=True, timeout=120)
        up = json.loads(h.stdout)
        print("resume run:", json.dumps(up))
        assert h.returncode == 0 and up["sent"] == 1000 and up["dropped"] == 0, up
        rs.stop()
        seqs = [s for s, _ in rs.records()]
        tail = seqs[len(recs):]
        assert check_order(tail, n, 1000) == 0
        assert not spool_files(spool)
        ok = True
        print("ok")
    finally:
        if harness is not None and harness.poll() is None:
            os.kill(harness.pid, signal.SIGKILL)
            harness.wait()
        rs.stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp} for inspection", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
