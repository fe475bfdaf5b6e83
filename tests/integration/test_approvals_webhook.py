#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Approvals webhook and metrics end to end (issue 14, items 3 and 7): each new approval
request is POSTed to a receiver on loopback, retried while it fails, and the approval path's
numbers reach /metrics.

A private PostgreSQL; `dbwarden run --mode enforce` with a policy whose DELETEs on hook_t
(timeout 60s) and hook_slow (timeout 3s) need an approval from `dba: [daemon]`, and
`--approvals-webhook-url` pointing at a Python http.server on a free 127.0.0.1 port, with a
signing secret (`--approvals-webhook-secret-file`). The receiver answers 503 to its first two
POSTs, 400 to any request of rule approve-slow, 200 otherwise.

Checks:
- a held DELETE is notified after two failed deliveries (retried after 1 s and 2 s): the
  body names the request id, rule, statement and requester, has a Slack `text`, and its
  X-Dbwarden-Signature is the HMAC-SHA-256 of "<timestamp>.<body>" under the secret;
- while it is pending /metrics shows dbwarden_approvals_pending 1 and the oldest's age;
- approved through the CLI, its result reaches psql; a second request is notified at once
  and denied; a third (hook_slow) is refused by the receiver (400: not retried) and expires;
- /metrics then: 3 requests, decisions approved/denied/expired 1 each, time to decision
  observed, webhook failures 3 (two 503s and the 400), notifications delivered 2, gave_up 1,
  nothing pending;
- the trail holds `notified` records (channel webhook, which attempt) for the first two and
  `notify_failed` for the third, and `verify-audit` passes.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
from pg_cluster import (Agent, PgCluster, free_port, log, skip_or_fail,  # noqa: E402
                        start_agent, verdict)
from test_approvals import (Cli, approval_records, feed, run_checks, start_psql,  # noqa: E402
                            stop_reporting, verify_trail)

SECRET = "webhook-secret-for-the-test-0123456789"
FAILING_FIRST = 2
POLICY = """\
approver_groups:
  dba: [daemon]
rules:
  - name: approve-deletes
    match: {operation: [DELETE], collections: [hook_t]}
    action: require_approval
    approvers: [dba]
    timeout: 60s
  - name: approve-slow
    match: {operation: [DELETE], collections: [hook_slow]}
    action: require_approval
    approvers: [dba]
    timeout: 3s
"""


class Receiver:
    """A webhook receiver on 127.0.0.1 (http.server, its own thread): answers 503 to the
    first FAILING_FIRST POSTs, 400 to rule approve-slow, 200 otherwise; keeps every POST."""

    def __init__(self):
        self.posts = []  # (monotonic time, status, headers dict, body bytes)
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    if len(receiver.posts) < FAILING_FIRST:
                        status = 503
                    else:
                        try:
                            rule = json.loads(body).get("rule")
                        except ValueError:
                            rule = None
                        status = 400 if rule == "approve-slow" else 200
                    receiver.posts.append((time.monotonic(), status, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def delivered(self, rid):
        """The body (parsed) and headers of the POST of request `rid` answered 200, or None."""
        with self.lock:
            for _, status, headers, body in self.posts:
                if status == 200 and json.loads(body).get("request_id") == rid:
                    return json.loads(body), headers, body
        return None

    def statuses(self, rid):
        with self.lock:
            return [s for _, s, _, b in self.posts if json.loads(b).get("request_id") == rid]

    def times(self, rid):
        with self.lock:
            return [t for t, _, _, b in self.posts if json.loads(b).get("request_id") == rid]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def metric(text, name, **labels):
    """The value of the sample `name` whose labels include `labels`, or None."""
    for line in text.splitlines():
        m = re.match(r"\A([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def wait_until(what, predicate, timeout, failures):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    failures.append(f"timed out after {timeout}s waiting for {what}")
    return None


def check_notified_and_approved(agent, cli, receiver, failures):
    cluster_psql = start_psql(agent.cluster)
    sent = time.monotonic()
    feed(cluster_psql, "DELETE FROM hook_t WHERE id = 1 RETURNING 'deleted-' || id;\n")
    rid = cli.wait_pending("approve-deletes")
    got = wait_until("the first request's delivery", lambda: receiver.delivered(rid), 30,
                     failures)
    if got is None:
        cluster_psql.kill()
        cluster_psql.communicate()
        return rid
    body, headers, raw = got
    statuses = receiver.statuses(rid)
    if statuses != [503] * FAILING_FIRST + [200]:
        failures.append(f"notify: expected two 503s then 200, the receiver answered {statuses}")
    times = receiver.times(rid)
    if times[-1] - times[0] < 2.5:  # retried after 1 s and 2 s
        failures.append(f"notify: the last retry came {times[-1] - times[0]:.2f}s after the "
                        "first try, expected 1 s + 2 s")
    want = {"event": "approval_requested", "request_id": rid, "rule": "approve-deletes",
            "operation": "DELETE", "approvals_needed": 1, "approvers": ["daemon"],
            "timeout_seconds": 60}
    for k, v in want.items():
        if body.get(k) != v:
            failures.append(f"notify: body {k} = {body.get(k)!r}, expected {v!r}")
    if "DELETE FROM hook_t WHERE id = 1" not in body.get("statement", ""):
        failures.append(f"notify: the body lacks the statement: {body.get('statement')!r}")
    if body.get("requester", {}).get("db_user") != "postgres":
        failures.append(f"notify: requester {body.get('requester')!r}")
    if f"approval request {rid} on" not in body.get("text", "") or \
            "DELETE FROM hook_t" not in body.get("text", ""):
        failures.append(f"notify: Slack text lacks the request: {body.get('text')!r}")
    # A DELETE: its blast radius (EXPLAIN on the client's session), in the body and the text.
    blast = body.get("blast_radius", {})
    if not isinstance(blast.get("rows"), int) or \
            blast.get("via") != "explain on the client's session" or \
            f"Blast radius: about {blast.get('rows')} row" not in body.get("text", ""):
        failures.append(f"notify: no blast radius in the body and text: {blast!r} "
                        f"{body.get('text')!r}")
    ts = headers.get("X-Dbwarden-Timestamp", "")
    want_sig = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + raw,
                                    hashlib.sha256).hexdigest()
    if not ts or not hmac.compare_digest(headers.get("X-Dbwarden-Signature", ""), want_sig):
        failures.append(f"notify: bad signature {headers.get('X-Dbwarden-Signature')!r} "
                        f"(timestamp {ts!r})")

    # Pending, as /metrics tells it (published once a second).
    text = wait_until("dbwarden_approvals_pending 1 on /metrics",
                      lambda: (lambda t: t if metric(t, "dbwarden_approvals_pending") == 1
                               else None)(agent.scrape()), 10, failures)
    if text is not None:
        age = metric(text, "dbwarden_approvals_oldest_pending_seconds")
        if age is None or not 0 < age <= time.monotonic() - sent + 1:
            failures.append(f"metrics: oldest pending request's age {age}")

    r = cli.run(["approve", str(rid), "--reason", "webhook seen"], user="daemon")
    if r.returncode != 0:
        failures.append(f"approve refused: {r.stderr.strip()}")
    out, err = cluster_psql.communicate(timeout=30)
    if "deleted-1" not in out:
        failures.append(f"approve: the result did not reach psql: {out!r} {err!r}")
    return rid


def check_notified_and_denied(agent, cli, receiver, failures):
    p = start_psql(agent.cluster)
    feed(p, "DELETE FROM hook_t WHERE id = 2;\nSELECT 'after-deny';\n")
    rid = cli.wait_pending("approve-deletes")
    if wait_until("the second request's delivery", lambda: receiver.delivered(rid), 20,
                  failures) and receiver.statuses(rid) != [200]:
        failures.append(f"deny: the second request took {receiver.statuses(rid)}")
    r = cli.run(["deny", str(rid), "--reason", "not now"], user="daemon")
    if r.returncode != 0:
        failures.append(f"deny refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    if f"approval request {rid} denied: not now" not in err or "after-deny" not in out:
        failures.append(f"deny: psql saw {out!r} {err!r}")
    return rid


def check_refused_and_expired(agent, cli, receiver, failures):
    p = start_psql(agent.cluster)
    feed(p, "DELETE FROM hook_slow;\n")
    rid = cli.wait_pending("approve-slow")
    out, err = p.communicate(timeout=30)
    if f"approval request {rid} expired" not in err:
        failures.append(f"expire: psql saw {out!r} {err!r}")
    if receiver.statuses(rid) != [400]:
        failures.append(f"expire: a 400 must not be retried; the receiver saw "
                        f"{receiver.statuses(rid)}")
    return rid


def check_metrics(agent, failures):
    want = [(("dbwarden_approvals_requests_total",), 3),
            (("dbwarden_approvals_pending",), 0),
            (("dbwarden_approvals_decisions_total", {"outcome": "approved"}), 1),
            (("dbwarden_approvals_decisions_total", {"outcome": "denied"}), 1),
            (("dbwarden_approvals_decisions_total", {"outcome": "expired"}), 1),
            (("dbwarden_approvals_decisions_total", {"outcome": "withdrawn"}), 0),
            (("dbwarden_approvals_decision_seconds_count", {"outcome": "approved"}), 1),
            (("dbwarden_approvals_decision_seconds_count", {"outcome": "expired"}), 1),
            (("dbwarden_approvals_webhook_failures_total",), 3),
            (("dbwarden_approvals_webhook_notifications_total", {"outcome": "delivered"}), 2),
            (("dbwarden_approvals_webhook_notifications_total", {"outcome": "gave_up"}), 1),
            (("dbwarden_approvals_webhook_notifications_total", {"outcome": "dropped"}), 0),
            (("dbwarden_approvals_webhook_queue",), 0)]

    def values():
        text = agent.scrape()
        return text, [metric(text, k[0], **(k[1] if len(k) > 1 else {})) for k, _ in want]
    deadline = time.monotonic() + 10
    while True:
        text, got = values()
        if all(g == v for g, (_, v) in zip(got, want)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for g, (k, v) in zip(got, want):
        if g != v:
            failures.append(f"metrics: {k[0]}{k[1] if len(k) > 1 else ''} = {g}, expected {v}")
    # The approval came after the notification's two retries: at least 3 s.
    s = metric(text, "dbwarden_approvals_decision_seconds_sum", outcome="approved")
    if s is None or s < 2.5:
        failures.append(f"metrics: time to the approval {s}, expected >= 3 s")
    s = metric(text, "dbwarden_approvals_decision_seconds_sum", outcome="expired")
    if s is None or not 2.9 <= s < 10:
        failures.append(f"metrics: time to expiry {s}, expected the rule's 3 s")


def check_trail(args, audit, ids, failures):
    events = approval_records(audit)

    def find(kind, rid):
        return [e for e in events if e.get("dbwarden.approval.event") == kind and
                e.get("dbwarden.approval.request_id") == rid]
    for name, reason in (("approve", f"HTTP 200 on attempt {FAILING_FIRST + 1}"),
                         ("deny", "HTTP 200 on attempt 1")):
        got = find("notified", ids[name])
        if len(got) != 1 or got[0].get("dbwarden.approval.channel") != "webhook" or \
                got[0].get("dbwarden.approval.reason") != reason or \
                got[0].get("db.user") != "postgres":
            failures.append(f"trail: notified record of request {ids[name]}: {got}")
    got = find("notify_failed", ids["expire"])
    if len(got) != 1 or "HTTP 400 on attempt 1" not in got[0].get("dbwarden.approval.reason", ""):
        failures.append(f"trail: notify_failed record of request {ids['expire']}: {got}")
    if find("notified", ids["expire"]):
        failures.append("trail: the refused notification was recorded as notified")
    verify_trail(args.agent, audit, failures)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers, other OS users)")
    workdir = pg_cluster.make_workdir("dbw-appr-hook-")
    proxy_dir = os.path.join(workdir, "proxy")
    os.makedirs(proxy_dir, exist_ok=True)
    os.chmod(proxy_dir, 0o755)
    policy = os.path.join(workdir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    secret = os.path.join(workdir, "webhook.key")
    with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(SECRET + "\n")
    failures = []
    ids = {}
    with PgCluster() as cluster, Receiver() as receiver:
        cluster.setup_sql("CREATE TABLE hook_t (id int); INSERT INTO hook_t VALUES (1), (2); "
                          "CREATE TABLE hook_slow (id int); INSERT INTO hook_slow VALUES (1)")
        audit = os.path.join(workdir, "audit.jsonl")
        agent = Agent(args.agent, audit, [cluster.port],
                      extra_args=["--mode", "enforce", "--policy", policy,
                                  "--proxy-socket-dir", proxy_dir, "--approvals-group", "daemon",
                                  "--approvals-webhook-url", receiver.url,
                                  "--approvals-webhook-secret-file", secret])
        agent.cluster = cluster
        rc = start_agent(agent)
        if rc is not None:
            return rc
        cli = Cli(args.agent, os.path.join(proxy_dir, "approvals.sock"))
        try:
            ids.update(run_checks(
                [(name, lambda check=check: check(agent, cli, receiver, failures))
                 for name, check in (("approve", check_notified_and_approved),
                                     ("deny", check_notified_and_denied),
                                     ("expire", check_refused_and_expired))],
                failures))
            if len(ids) == 3:
                check_metrics(agent, failures)
            agent.wait_audit_settled(timeout=30, quiet=1.5)
        finally:
            stop_reporting(agent, failures)
        if len(ids) == 3:
            check_trail(args, audit, ids, failures)
        log(f"approval ids: {ids}; receiver saw {len(receiver.posts)} POSTs")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
