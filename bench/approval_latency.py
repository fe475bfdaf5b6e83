#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What the approval path costs a held statement, the human's wait left out, with 100
requests pending (issue 14's "p99 <= 5 ms with 100 pending").

A private PostgreSQL and `dbwarden run --mode enforce --enforce-observer off` (the proxy
alone) with a policy whose DELETEs on bench_appr (and on bench_hold) need an approval from
`dba: [daemon]`, and `--approvals-webhook-url` pointing at an automatic approver: this script
again, run as the OS user daemon (setpriv), serving HTTP on a free 127.0.0.1 port. On each
POST of rule bench-approve it answers 200, then at once sends `approve ID` over the agent's
approvals socket (the CLI's protocol), and reports its own CLOCK_MONOTONIC times.

1. 100 connections each send a DELETE on bench_hold: 100 requests pending (announced to the
   approver, which leaves them pending) for the whole measurement.
2. One client (psycopg2, TCP through the steered port) alternates, --iterations times each:
   a DELETE on bench_appr (held: request -> webhook notify -> approve over the socket ->
   release -> the server runs it -> the result), and the same DELETE on bench_free, which no
   rule holds (the proxy's plain path and the server's work, as a baseline).

Per held statement, all on CLOCK_MONOTONIC (one clock for every process of the host):
  total    = client send -> client result
  notify   = client send -> the approver has the webhook POST (proxy judge, broker submit,
             the webhook thread's POST)
  approver = POST received -> approve sent: the stand-in for the human's wait, EXCLUDED
  release  = approve sent -> client result (socket server, broker decide, proxy wake-up,
             the server runs the DELETE, the result back)
  path     = total - approver = notify + release: the approval path's cost, the target's
             figure (it still holds the server's execution: compare with the baseline).
Reported: p50, p90, p99, max of each over all held statements; the baseline's; and the
pending count from /metrics before and after. Needs root. Prints a summary and a final
machine-readable line prefixed with "RESULT ".
"""

import argparse
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_harness as ph  # noqa: E402
from pgbench_observe import QUIET_SERVER_CONF  # noqa: E402
from pg_cluster import PgCluster  # noqa: E402

TARGET_P99_MS = 5.0
APPROVER_USER = "daemon"
POLICY = """\
approver_groups:
  dba: [daemon]
rules:
  - name: bench-approve
    match: {operation: [DELETE], collections: [bench_appr]}
    action: require_approval
    approvers: [dba]
    timeout: 10m
  - name: bench-hold
    match: {operation: [DELETE], collections: [bench_hold]}
    action: require_approval
    approvers: [dba]
    timeout: 1h
"""


# --- the automatic approver (runs as daemon) ------------------------------------------------

def approver_main(port, sock_path):
    """Serves the webhook on 127.0.0.1:port; approves each bench-approve request at once.
    One JSON line per POST on stdout: request id, statement, rule and monotonic times."""
    out_lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            t_recv = time.monotonic()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.wfile.flush()
            line = {"id": body["request_id"], "rule": body["rule"],
                    "statement": body["statement"], "recv": t_recv}
            if body["rule"] == "bench-approve":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sock_path)
                line["sent"] = time.monotonic()
                s.sendall(f"approve\t{body['request_id']}\t\tbench\n".encode())
                reply = b""
                while chunk := s.recv(4096):
                    reply += chunk
                s.close()
                line["reply"] = time.monotonic()
                line["ok"] = reply.startswith(b"ok\n")
            with out_lock:
                sys.stdout.write(json.dumps(line) + "\n")
                sys.stdout.flush()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    server.serve_forever()


class Approver:
    """approver_main() as daemon, started and stopped by its pid; its lines collected."""

    def __init__(self, sock_path):
        self.port = ph.free_port()
        self.sock_path = sock_path
        self.lines = []
        self.proc = None

    def start(self):
        cmd = ["setpriv", f"--reuid={APPROVER_USER}", f"--regid={APPROVER_USER}",
               "--clear-groups", "/usr/bin/python3", os.path.abspath(__file__), "--approver",
               "--port", str(self.port), "--socket", self.sock_path]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the approver did not start")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()  # ours, by pid
            self.proc.wait(timeout=30)
            self.proc = None


# --- the measurement -------------------------------------------------------------------------

def quantiles(values):
    v = sorted(values)
    if not v:
        return {}
    pick = (lambda q: v[min(len(v) - 1, int(q * len(v)))])
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": v[-1],
            "n": len(v)}


def hold_requests(cluster, n, errors):
    """n connections, each blocked in a DELETE on bench_hold (its request pending) until the
    agent stops and denies it."""
    import psycopg2  # Debian python3-psycopg2, under /usr/bin/python3

    def one(k):
        try:
            c = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                                 dbname="postgres", application_name="dbw-bench-hold",
                                 connect_timeout=30)
            c.autocommit = True
            try:
                c.cursor().execute(f"DELETE FROM bench_hold WHERE id = {k}")
            except psycopg2.Error:
                pass  # denied as the agent stops
            c.close()
        except Exception as e:  # noqa: BLE001 (reported)
            errors.append(f"holder {k}: {e}")
    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    return threads


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", help="path to the dbwarden executable")
    ap.add_argument("--iterations", type=int, default=400, help="held statements measured")
    ap.add_argument("--pending", type=int, default=100, help="requests kept pending meanwhile")
    ap.add_argument("--allow-foreign-bpf", action="store_true",
                    help="run although other dbw_ BPF programs are loaded (a shared host)")
    ap.add_argument("--approver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--socket", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.approver:
        return approver_main(args.port, args.socket)
    if not args.agent:
        ap.error("--agent is required")
    rc, workdir = ph.begin("approval_latency", args.allow_foreign_bpf)
    if rc is not None:
        return rc
    import psycopg2
    os.chmod(workdir, 0o755)
    policy = os.path.join(workdir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    errors, held, base, pending_seen = [], [], [], []
    try:
        conf = dict(QUIET_SERVER_CONF, max_connections=str(args.pending + 20))
        with PgCluster(extra_conf=conf) as cluster:
            cluster.setup_sql(
                "CREATE TABLE bench_appr (id int); CREATE TABLE bench_free (id int); "
                "CREATE TABLE bench_hold (id int); "
                f"INSERT INTO bench_appr SELECT generate_series(1, {args.iterations}); "
                f"INSERT INTO bench_free SELECT generate_series(1, {args.iterations})")
            sock_path = os.path.join(workdir, "proxy", "approvals.sock")
            approver = Approver(sock_path)
            approver.start()
            agent = ph.BenchAgent(args.agent, workdir, cluster.port, policy=policy,
                                  extra_args=["--approvals-group", APPROVER_USER,
                                              "--approvals-webhook-url", approver.url])
            agent.start()
            holders = []
            try:
                holders = hold_requests(cluster, args.pending, errors)
                deadline = time.monotonic() + 60
                while sum(1 for x in approver.lines if x["rule"] == "bench-hold") < args.pending:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the held requests were not all announced in 60 s")
                    time.sleep(0.1)
                time.sleep(1.5)  # /metrics is published once a second
                pending_seen.append(agent.metric_sum("dbwarden_approvals_pending"))
                c = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                                     dbname="postgres", application_name="dbw-bench-fg")
                c.autocommit = True
                cur = c.cursor()
                for k in range(1, args.iterations + 1):
                    t0 = time.monotonic()
                    cur.execute(f"DELETE FROM bench_appr WHERE id = {k}")
                    t1 = time.monotonic()
                    held.append((k, t0, t1))
                    t0 = time.monotonic()
                    cur.execute(f"DELETE FROM bench_free WHERE id = {k}")
                    base.append((time.monotonic() - t0) * 1e3)
                c.close()
                pending_seen.append(agent.metric_sum("dbwarden_approvals_pending"))
            finally:
                agent.stop()  # denies the held requests: their clients end
                for t in holders:
                    t.join(timeout=30)
                approver.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    by_stmt = {}
    for x in approver.lines:
        if x["rule"] == "bench-approve" and x.get("ok"):
            by_stmt[x["statement"]] = x
    rows = {"total": [], "notify": [], "approver": [], "release": [], "path": []}
    for k, t0, t1 in held:
        x = by_stmt.get(f"DELETE FROM bench_appr WHERE id = {k}")
        if x is None:
            errors.append(f"no approval seen for statement {k}")
            continue
        rows["total"].append((t1 - t0) * 1e3)
        rows["notify"].append((x["recv"] - t0) * 1e3)
        rows["approver"].append((x["sent"] - x["recv"]) * 1e3)
        rows["release"].append((t1 - x["sent"]) * 1e3)
        rows["path"].append(((t1 - t0) - (x["sent"] - x["recv"])) * 1e3)
    result = {k: quantiles(v) for k, v in rows.items()}
    result["baseline_no_rule"] = quantiles(base)
    result["pending_during"] = pending_seen
    result["target_p99_ms"] = TARGET_P99_MS
    result["load"] = ph.load_average()
    print(f"{'ms per held statement':34s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'max':>8s}")
    for k, label in (("total", "total (client)"), ("notify", "  notify (send -> POST)"),
                     ("approver", "  approver (excluded)"),
                     ("release", "  release (approve -> result)"),
                     ("path", "approval path = total - approver"),
                     ("baseline_no_rule", "same DELETE, no rule (baseline)")):
        q = result[k]
        if q:
            print(f"{label:34s} {q['p50']:8.3f} {q['p90']:8.3f} {q['p99']:8.3f} {q['max']:8.3f}")
    print(f"pending requests on /metrics before/after: {pending_seen}; load {result['load']}")
    for e in errors[:10]:
        print(f"error: {e}")
    ok = bool(result["path"]) and result["path"]["p99"] <= TARGET_P99_MS
    print(f"approval path p99 {result['path'].get('p99', float('nan')):.3f} ms "
          f"(target <= {TARGET_P99_MS} ms): {'met' if ok else 'NOT met'}")
    print("RESULT " + json.dumps(result))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
