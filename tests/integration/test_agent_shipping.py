#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The agent ships its audit records to a syslog collector as well as to the file.

A private PostgreSQL, the agent started with --syslog-address pointing at a small
collector of this test's own on 127.0.0.1 (it parses RFC 6587 octet-counted RFC 5424
frames), a few psql statements. Every statement in the audit file must arrive at the
collector once, as the same JSON record, in the same order, and the agent's metrics must
count them as sent to the "syslog" sink. (The library's behaviour across collector restarts
is tested against a real rsyslog in test_syslog_shipping.py.)

Exit 77 (skip) without root, or 1 instead when DBWARDEN_REQUIRE_KERNEL_TESTS=1.
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_cluster import (Agent, PgCluster, free_port, log, make_workdir,  # noqa: E402
                        read_audit, skip_or_fail, verdict)

FRAME_HEADER = re.compile(rb"<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) ")


class Collector:
    """Accepts connections and splits the octet-counted stream into messages."""

    def __init__(self):
        self.port = free_port()
        self.messages = []
        self.errors = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn):
        buf = b""
        conn.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            buf += data
            while True:
                sp = buf.find(b" ")
                if sp <= 0:
                    break
                try:
                    length = int(buf[:sp])
                except ValueError:
                    self.errors.append(f"bad frame length {buf[:sp][:20]!r}")
                    return
                if len(buf) < sp + 1 + length:
                    break
                self.messages.append(buf[sp + 1:sp + 1 + length])
                buf = buf[sp + 1 + length:]
        conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs")

    workdir = make_workdir("dbw-ship-")
    audit_path = os.path.join(workdir, "audit.jsonl")
    collector = Collector()
    failures = []
    statements = ["SELECT 1 AS shipped_one", "SELECT 'two' AS shipped_two",
                  "SELECT 1/0 AS shipped_three"]
    try:
        with PgCluster() as cluster:
            extra = ["--syslog-address", f"127.0.0.1:{collector.port}",
                     "--syslog-spool-dir", os.path.join(workdir, "spool")]
            with Agent(args.agent, audit_path, [cluster.port], extra_args=extra) as agent:
                for text in statements:
                    cluster.psql(["-c", text], check=False)
                agent.wait_audit_settled(expected=len(statements), timeout=30)
                deadline = time.monotonic() + 15
                sent = 0
                while time.monotonic() < deadline:
                    sent = agent.metric_sum("dbwarden_shipping_sent_total") or 0
                    if sent >= len(statements):
                        break
                    time.sleep(0.3)
                if sent < len(statements):
                    failures.append(f"dbwarden_shipping_sent_total{{sink=\"syslog\"}} is {sent}")
        collector.close()

        records, bad = read_audit(audit_path)
        failures.extend(bad)
        shipped = []
        for msg in collector.messages:
            m = FRAME_HEADER.match(msg)
            if not m:
                failures.append(f"not an RFC 5424 message: {msg[:80]!r}")
                continue
            if m.group(1) != b"110" or m.group(4) != b"dbwarden" or m.group(6) != b"audit":
                failures.append(f"unexpected header fields: {msg[:m.end()]!r}")
            shipped.append(json.loads(msg[m.end():]))
        failures.extend(collector.errors)
        for text in statements:
            in_file = [r for r in records if r.get("db.query.text") == text]
            in_syslog = [r for r in shipped if r.get("db.query.text") == text]
            if len(in_file) != 1 or len(in_syslog) != 1:
                failures.append(f"{text!r}: {len(in_file)} in the file, {len(in_syslog)} shipped")
            elif {k: v for k, v in in_file[0].items() if not k.startswith("dbwarden.")} != \
                    {k: v for k, v in in_syslog[0].items() if not k.startswith("dbwarden.")}:
                failures.append(f"{text!r}: the shipped record differs from the file's")
        order = [r["db.query.text"] for r in shipped if r.get("db.query.text") in statements]
        if order != statements:
            failures.append(f"shipped out of order: {order}")
        log(f"{len(records)} records in the file, {len(shipped)} shipped")
    finally:
        collector.close()
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
