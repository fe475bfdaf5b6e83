#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Approvals end to end (issue 14, first slice): a real psql held by the steered proxy, decided
with the real `dbwarden approvals` CLI over the agent's unix socket, run by other OS users.

A private PostgreSQL; `dbwarden run --mode enforce` (enforce_harness.EnforceAgent: private
steering and capture pins, torn down whatever happens) with a policy whose DELETEs on two tables
need an approval from the group `dba: [daemon, nobody]` (appr_t: timeout 60s; slow_t: 2s).
The approvals socket is 0660 root:daemon (--approvals-group daemon); the approvers run the CLI
as daemon or nobody with daemon as their group (setpriv).

Checks:
- held: the DELETE does not run while pending (the row is still there, psql still waits),
  other connections go on; `approve` as daemon releases it: its result reaches the client and
  the session goes on;
- deny (as nobody, with a reason): psql gets an error naming the request id and the reason,
  SQLSTATE 42501, and its next statement runs; the row stays;
- timeout: the slow_t DELETE is denied after 2 s with "expired";
- separation of duties: a request from a psql run as daemon cannot be approved by daemon
  (nor by root, who is in no approver group); nobody approves it;
- JIT: approved with --for 60s, the same statement shape from the same identity runs at once;
- withdraw: a held client killed withdraws its request;
- the audit trail holds requested/approved/denied/expired/withdrawn records with who and why,
  the approved DELETE's own record carries "approved:ID", and `verify-audit` passes.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
from enforce_harness import EnforceAgent  # noqa: E402
from pg_cluster import (PgCluster, log, read_audit, read_audit_text,  # noqa: E402
                        skip_or_fail, start_agent, stop_agent, verdict)

POLICY = """\
approver_groups:
  dba: [daemon, nobody]
rules:
  - name: approve-deletes
    match: {operation: [DELETE], collections: [appr_t]}
    action: require_approval
    approvers: [dba]
    timeout: 60s
  - name: approve-slow
    match: {operation: [DELETE], collections: [slow_t]}
    action: require_approval
    approvers: dba
    timeout: 2s
"""


class Cli:
    def __init__(self, exe, socket_path):
        self.exe = exe
        self.socket = socket_path

    def run(self, args, user=None):
        cmd = [self.exe, "approvals"] + args + ["--socket", self.socket]
        if user:
            cmd = ["setpriv", f"--reuid={user}", "--regid=daemon", "--clear-groups"] + cmd
        return subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=30)

    def pending(self):
        r = self.run(["list"])
        if r.returncode != 0:
            raise RuntimeError(f"approvals list failed: {r.stderr.strip()}")
        return [line.split("\t") for line in r.stdout.splitlines() if line.strip()]

    def wait_gone(self, rid, timeout=10):
        """True once request `rid` is no longer pending."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not any(int(r[0]) == rid for r in self.pending()):
                return True
            time.sleep(0.1)
        return False

    def wait_pending(self, rule, timeout=20):
        """The id of the one pending request of `rule`, once it is there."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            rows = [r for r in self.pending() if r[2] == rule]
            if rows:
                return int(rows[-1][0])
            time.sleep(0.1)
        raise RuntimeError(f"no pending request of rule {rule} after {timeout}s")


def start_psql(cluster, user=None):
    cmd = ["psql", "-X", "-v", "ON_ERROR_STOP=0", "-At"]
    if user:
        cmd = ["setpriv", f"--reuid={user}", "--regid=daemon", "--clear-groups"] + cmd
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=cluster.client_env(tcp=True))


def feed(p, script):
    """Sends `script`; psql goes on reading (communicate() ends its input)."""
    p.stdin.write(script)
    p.stdin.flush()


def scalar(cluster, sql):
    r = cluster.psql(["-At", "-c", sql], check=True, tcp=False)
    return r.stdout.strip()


def check_approve(cluster, cli, failures):
    p = start_psql(cluster)
    feed(p, "DELETE FROM appr_t WHERE id = 1 RETURNING 'deleted-' || id;\nSELECT 'after-approve';\n")
    rid = cli.wait_pending("approve-deletes")
    time.sleep(0.5)
    if p.poll() is not None:
        failures.append(f"approve: psql did not wait: {p.communicate()}")
        return None
    if scalar(cluster, "SELECT count(*) FROM appr_t WHERE id = 1") != "1":
        failures.append("approve: the held DELETE ran before its approval")
    # Other connections go on while one waits.
    r = cluster.psql(["-At", "-c", "SELECT 'other-connection'"], check=False, tcp=True)
    if "other-connection" not in r.stdout:
        failures.append(f"approve: another connection was held too: {r.stderr.strip()}")
    show = cli.run(["show", str(rid)])
    if "DELETE FROM appr_t WHERE id = 1" not in show.stdout or "approve-deletes" not in show.stdout:
        failures.append(f"approve: show {rid} lacks the statement or rule: {show.stdout!r}")
    r = cli.run(["approve", str(rid), "--reason", "ticket 42"], user="daemon")
    if r.returncode != 0:
        failures.append(f"approve: daemon's approve refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    if "deleted-1" not in out or "after-approve" not in out:
        failures.append(f"approve: result did not reach the client: {out!r} {err!r}")
    if scalar(cluster, "SELECT count(*) FROM appr_t WHERE id = 1") != "0":
        failures.append("approve: the approved DELETE did not run")
    return rid


def check_deny(cluster, cli, failures):
    p = start_psql(cluster)
    feed(p, "DELETE FROM appr_t WHERE id = 2;\nSELECT 'after-deny';\n")
    rid = cli.wait_pending("approve-deletes")
    r = cli.run(["deny", str(rid)], user="nobody")
    if r.returncode != 2:
        failures.append(f"deny: without --reason accepted: {r.returncode} {r.stderr.strip()}")
    r = cli.run(["deny", str(rid), "--reason", "not in business hours"], user="nobody")
    if r.returncode != 0:
        failures.append(f"deny: nobody's deny refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    want = f"approval request {rid} denied: not in business hours"
    if want not in err:
        failures.append(f"deny: the client's error does not say {want!r}: {err!r}")
    if "after-deny" not in out:
        failures.append(f"deny: the session did not go on: {out!r}")
    if scalar(cluster, "SELECT count(*) FROM appr_t WHERE id = 2") != "1":
        failures.append("deny: the denied DELETE ran")
    # The SQLSTATE, as a driver sees it.
    p = start_psql(cluster)
    feed(p, "\\set VERBOSITY verbose\nDELETE FROM appr_t WHERE id = 2;\n")
    rid2 = cli.wait_pending("approve-deletes")
    cli.run(["deny", str(rid2), "--reason", "again no"], user="nobody")
    out, err = p.communicate(timeout=30)
    if "42501" not in err:
        failures.append(f"deny: SQLSTATE 42501 not reported: {err!r}")
    return rid


def check_timeout(cluster, cli, failures):
    p = start_psql(cluster)
    started = time.time()
    feed(p, "DELETE FROM slow_t;\nSELECT 'after-timeout';\n")
    rid = cli.wait_pending("approve-slow")
    out, err = p.communicate(timeout=30)
    waited = time.time() - started
    if f"approval request {rid} expired" not in err:
        failures.append(f"timeout: no expiry error: {err!r}")
    if "after-timeout" not in out:
        failures.append(f"timeout: the session did not go on: {out!r}")
    if waited < 1.5:
        failures.append(f"timeout: answered after {waited:.1f}s, before the rule's 2s")
    if scalar(cluster, "SELECT count(*) FROM slow_t") != "1":
        failures.append("timeout: the expired DELETE ran")
    return rid


def check_self_approval(cluster, cli, failures):
    p = start_psql(cluster, user="daemon")
    feed(p, "DELETE FROM appr_t WHERE id = 3 RETURNING 'deleted-' || id;\n")
    rid = cli.wait_pending("approve-deletes")
    r = cli.run(["approve", str(rid)], user="daemon")
    if r.returncode != 1 or "nobody decides their own request" not in r.stderr:
        failures.append(f"self-approval: daemon approved its own request: {r.returncode} "
                        f"{r.stdout!r} {r.stderr!r}")
    r = cli.run(["approve", str(rid)])  # root: in no approver group
    if r.returncode != 1 or "is not an approver" not in r.stderr:
        failures.append(f"self-approval: root (no group) approved: {r.returncode} {r.stderr!r}")
    if p.poll() is not None:
        failures.append("self-approval: the request was decided by a refused approver")
    r = cli.run(["approve", str(rid), "--reason", "checked"], user="nobody")
    if r.returncode != 0:
        failures.append(f"self-approval: nobody's approve refused: {r.stderr.strip()}")
    out, err = p.communicate(timeout=30)
    if "deleted-3" not in out:
        failures.append(f"self-approval: the approved DELETE's result is missing: {out!r} {err!r}")
    return rid


def check_jit(cluster, cli, failures):
    p = start_psql(cluster)
    feed(p, "DELETE FROM appr_t WHERE id = 4 RETURNING 'deleted-' || id;\n")
    rid = cli.wait_pending("approve-deletes")
    r = cli.run(["approve", str(rid), "--for", "60s", "--reason", "cleanup window"],
                user="daemon")
    if r.returncode != 0:
        failures.append(f"jit: approve --for refused: {r.stderr.strip()}")
    out, _ = p.communicate(timeout=30)
    if "deleted-4" not in out:
        failures.append(f"jit: the approved DELETE's result is missing: {out!r}")
    # The same shape from the same identity: no request, runs at once.
    p = start_psql(cluster)
    feed(p, "DELETE FROM appr_t WHERE id = 5 RETURNING 'deleted-' || id;\n")
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        failures.append("jit: the granted statement was held")
    if "deleted-5" not in out:
        failures.append(f"jit: the granted statement did not run: {out!r} {err!r}")


def check_withdraw(cluster, cli, failures):
    p = start_psql(cluster)
    p.stdin.write("DELETE FROM appr_t WHERE id = 6;\n")
    p.stdin.flush()
    rid = cli.wait_pending("approve-deletes")
    p.kill()
    p.communicate()
    if not cli.wait_gone(rid):
        failures.append(f"withdraw: request {rid} still pending after its client went away")
    return rid


def check_trail(args, audit, ids, failures):
    events = approval_records(audit)

    def has(kind, rid, **fields):
        find_record(events, kind, rid, failures, **fields)
    has("requested", ids["approve"], **{"db.query.text":
        "DELETE FROM appr_t WHERE id = 1 RETURNING 'deleted-' || id"})
    has("approved", ids["approve"], **{"dbwarden.approval.by": "daemon",
                                       "dbwarden.approval.reason": "ticket 42",
                                       "dbwarden.approval.channel": "cli"})
    has("denied", ids["deny"], **{"dbwarden.approval.by": "nobody",
                                  "dbwarden.approval.reason": "not in business hours"})
    has("expired", ids["timeout"])
    has("withdrawn", ids["withdraw"])
    has("approved", ids["self"], **{"dbwarden.approval.by": "nobody"})
    records = verify_trail(args.agent, audit, failures)
    executed = [r for r in records
                if r.get("db.query.text", "").startswith("DELETE FROM appr_t WHERE id = 1")]
    if not executed or executed[0].get("dbwarden.policy.action") != f"approved:{ids['approve']}":
        failures.append(f"trail: the executed DELETE's record lacks approved:{ids['approve']}: "
                        f"{executed}")
    granted = [r for r in records
               if r.get("db.query.text", "").startswith("DELETE FROM appr_t WHERE id = 5")]
    if not granted or granted[0].get("dbwarden.policy.action") != "granted":
        failures.append(f"trail: the JIT-granted DELETE's record is not 'granted': {granted}")


def approvals_workdir(prefix, policy_text):
    """A fresh work directory with the proxy's socket directory (readable by the approvers)
    and the policy file: (workdir, proxy_dir, policy path)."""
    workdir = pg_cluster.make_workdir(prefix)
    proxy_dir = os.path.join(workdir, "proxy")
    os.makedirs(proxy_dir, exist_ok=True)
    os.chmod(proxy_dir, 0o755)
    policy = os.path.join(workdir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(policy_text)
    return workdir, proxy_dir, policy


def enforcing_agent(agent_exe, workdir, policy, cluster, server=None, **kw):
    """Starts the approvals tests' enforcing agent: on the cluster's port (and the MariaDB
    `server`'s, whose directory approvers must reach), the trail in `workdir`/audit.jsonl,
    the approvals socket 0660 root:daemon. Returns (agent, Cli on its socket), or (None, the
    exit code the test ends with) when it did not start."""
    if server is not None:
        os.chmod(server.base, 0o755)
    extra = ["--approvals-group", "daemon"] + kw.pop("extra_args", [])
    agent = EnforceAgent(agent_exe, os.path.join(workdir, "audit.jsonl"), [cluster.port],
                         workdir, policy, mysql_port=server.port if server else None,
                         extra_args=extra, **kw)
    rc = start_agent(agent)
    if rc is not None:
        return None, rc
    return agent, Cli(agent_exe, os.path.join(workdir, "proxy", "approvals.sock"))


def approval_records(audit):
    """The trail's approval records, in order."""
    return [json.loads(line) for line in read_audit_text(audit).splitlines()
            if '"dbwarden.record_type":"approval"' in line]


def find_record(events, kind, rid, failures, **fields):
    """The first of `events` (approval records) of `kind` for request `rid` with `fields`;
    a failure, and None, when there is none."""
    for e in events:
        if e.get("dbwarden.approval.event") == kind and \
           e.get("dbwarden.approval.request_id") == rid and \
           all(e.get(k) == v for k, v in fields.items()):
            return e
    failures.append(f"trail: no {kind} record for request {rid} with {fields}")
    return None


def verify_trail(agent_exe, audit, failures):
    """What every approvals test asks of its whole trail: every record reads, and
    `dbwarden verify-audit` passes. Returns the records."""
    records, bad = read_audit(audit)
    failures += bad
    v = subprocess.run([agent_exe, "verify-audit", audit], text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if v.returncode != 0:
        failures.append(f"trail: verify-audit failed: {v.stdout.strip()}")
    return records


def run_checks(cases, failures):
    """Runs each (name, call) in turn and returns {name: what it returned}; a call that
    raises is a failure named after its case (reported, never swallowed), and the next
    case still runs."""
    results = {}
    for name, call in cases:
        try:
            results[name] = call()
        except Exception as e:  # noqa: BLE001 (reported, never swallowed)
            failures.append(f"{name}: {type(e).__name__}: {e}")
    return results


def stop_reporting(agent, failures):
    """Stops the enforcing agent: a stop that fails is a failure, and when anything failed
    the agent's stderr is printed."""
    if stop_agent(agent) is not None:
        failures.append("the enforcing agent did not stop cleanly")
    if failures:
        print("agent stderr:\n" + agent.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers, other OS users)")
    workdir, _, policy = approvals_workdir("dbw-approvals-", POLICY)
    failures = []
    with PgCluster() as cluster:
        cluster.setup_sql("CREATE TABLE appr_t (id int); "
                          "INSERT INTO appr_t SELECT generate_series(1, 9); "
                          "CREATE TABLE slow_t (id int); INSERT INTO slow_t VALUES (1)")
        agent, cli = enforcing_agent(args.agent, workdir, policy, cluster)
        if agent is None:
            return cli
        audit = agent.audit_file
        ids = {}
        try:
            st = os.stat(cli.socket)
            if st.st_mode & 0o777 != 0o660 or st.st_gid != 1:
                failures.append(f"socket: mode {oct(st.st_mode & 0o777)} gid {st.st_gid}, "
                                "expected 0660 root:daemon")
            ids.update(run_checks(
                [(name, lambda check=check: check(cluster, cli, failures))
                 for name, check in (("approve", check_approve), ("deny", check_deny),
                                     ("timeout", check_timeout), ("self", check_self_approval),
                                     ("jit", check_jit), ("withdraw", check_withdraw))],
                failures))
            agent.wait_audit_settled(timeout=30, quiet=1.5)
        finally:
            stop_reporting(agent, failures)
            agent.teardown()
        if len(ids) == 6:
            check_trail(args, audit, ids, failures)
        log(f"approval ids: {ids}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
