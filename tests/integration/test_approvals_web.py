#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Approvals over HTTP (issue 14, items 3 and the acceptance list): the agent's JSON API and
its web inbox, over TLS (or plain HTTP with --plain), driven by a real client (http.client,
verifying the certificate) and a real headless browser (Debian chromium + chromium-driver
through python3-selenium), while real psql clients are held by the steered proxy.

A private PostgreSQL; `dbwarden run --mode enforce` with a policy whose DELETEs on appr_t
need one approval from the group `dba: [daemon, nobody]`; tokens made with the real
`dbwarden approvals token add` for daemon, nobody and operator (in no approver group).

Checks:
- API negatives, each refused AND a "refused" approval record in the trail: no token, a
  wrong token, an approver outside the rule's group, a cross-site request (foreign Origin),
  a replayed decision, self-approval (a psql run as daemon, daemon's token), a browser
  session's request replayed after logout;
- API deny with a reason: the held psql gets the error naming it, its session goes on;
  API approve: the held psql's statement runs and its result arrives;
- the inbox: served with a strict Content-Security-Policy; log in with a token (the session
  cookie HttpOnly, SameSite=Strict, and Secure and __Host- under TLS); the pending request
  appears by itself (polling) with its statement, requester and blast radius (the rows the
  DELETE would touch, as EXPLAIN on the client's session estimates them);
  Approve clicked -> the held psql completes; Deny without a reason is refused in the page,
  with one -> the client gets the error; the history lists the decisions;
- the trail: approved/denied records with channel api / web and the approver's name;
  `verify-audit` passes.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
from enforce_harness import EnforceAgent  # noqa: E402
from pg_cluster import PgCluster, free_port, log, skip_or_fail, start_agent, verdict  # noqa: E402
from test_approvals import (approval_records, feed, run_checks, scalar,  # noqa: E402
                            start_psql, stop_reporting, verify_trail)

POLICY = """\
approver_groups:
  dba: [daemon, nobody]
rules:
  - name: approve-deletes
    match: {operation: [DELETE], collections: [appr_t]}
    action: require_approval
    approvers: [dba]
    timeout: 120s
"""


class Api:
    """The agent's approvals API over HTTPS, the certificate verified (cafile), or over plain
    HTTP (cafile None: the default, loopback)."""

    def __init__(self, port, cafile):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=cafile) if cafile else None
        self.tls = cafile is not None
        self.origin = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        self.cookie = "__Host-dbw_session" if self.tls else "dbw_session"

    def call(self, method, path, token=None, body=None, headers=None):
        if self.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                               timeout=30)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read().decode()
        conn.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return r.status, parsed, r.getheaders()

    def wait_pending(self, token, statement_prefix, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, body, _ = self.call("GET", "/api/requests", token)
            if status != 200:
                raise RuntimeError(f"GET /api/requests: {status} {body}")
            rows = [r for r in body if r["statement"].startswith(statement_prefix)]
            if rows:
                return rows[-1]
            time.sleep(0.1)
        raise RuntimeError(f"no pending request for {statement_prefix!r} after {timeout}s")


def make_cert(workdir):
    cert, key = os.path.join(workdir, "web.crt"), os.path.join(workdir, "web.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def add_token(agent_exe, tokens_file, name):
    r = subprocess.run([agent_exe, "approvals", "token", "add", name, "--tokens", tokens_file],
                       text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return r.stdout.strip()


def check_api(cluster, api, tok, workdir, failures, ids):
    """API negatives, deny and approve, each against a real held psql."""
    p = start_psql(cluster)
    feed(p, "DELETE FROM appr_t WHERE id = 1;\nSELECT 'after-deny';\n")
    req = api.wait_pending(tok["nobody"], "DELETE FROM appr_t WHERE id = 1")
    rid = req["id"]
    ids["api_deny"] = rid
    path = f"/api/requests/{rid}"
    expect = [
        ("no token", api.call("GET", "/api/requests"), 401),
        ("wrong token", api.call("GET", "/api/requests", "dbwa_" + "0" * 64), 401),
        ("outside the group", api.call("POST", path + "/approve", tok["operator"], {}), 403),
        ("cross-site", api.call("POST", path + "/approve", tok["nobody"], {},
                                {"Origin": "https://evil.example"}), 403),
        ("deny without reason", api.call("POST", path + "/deny", tok["nobody"], {}), 403),
    ]
    for what, (status, body, _), want in expect:
        if status != want:
            failures.append(f"api: {what}: HTTP {status} {body}, expected {want}")
    if p.poll() is not None:
        failures.append("api: a refused request released the client")
    status, body, _ = api.call("POST", path + "/deny", tok["nobody"], {"reason": "api says no"})
    if status != 200 or body.get("state") != "denied":
        failures.append(f"api: deny: HTTP {status} {body}")
    status, body, _ = api.call("POST", path + "/approve", tok["nobody"], {"reason": "again"})
    if status != 409:
        failures.append(f"api: a replayed decision: HTTP {status} {body}, expected 409")
    out, err = p.communicate(timeout=30)
    if f"approval request {rid} denied: api says no" not in err or "after-deny" not in out:
        failures.append(f"api: the denied client's error or session: {out!r} {err!r}")
    if scalar(cluster, "SELECT count(*) FROM appr_t WHERE id = 1") != "1":
        failures.append("api: the denied DELETE ran")

    # Self-approval: a psql run as daemon, daemon's own token.
    p = start_psql(cluster, user="daemon")
    feed(p, "DELETE FROM appr_t WHERE id = 2 RETURNING 'deleted-' || id;\n")
    req = api.wait_pending(tok["nobody"], "DELETE FROM appr_t WHERE id = 2")
    rid = req["id"]
    ids["api_self"] = rid
    if req["who"].get("user") != "daemon":
        failures.append(f"api: the requester's user is not shown as daemon: {req['who']}")
    status, body, _ = api.call("POST", f"/api/requests/{rid}/approve", tok["daemon"], {})
    if status != 403 or "nobody decides their own request" not in str(body):
        failures.append(f"api: self-approval: HTTP {status} {body}")
    status, body, _ = api.call("POST", f"/api/requests/{rid}/approve", tok["nobody"],
                               {"reason": "ticket 9"})
    if status != 200 or body.get("state") != "approved":
        failures.append(f"api: approve: HTTP {status} {body}")
    out, err = p.communicate(timeout=30)
    if "deleted-2" not in out:
        failures.append(f"api: the approved DELETE's result did not arrive: {out!r} {err!r}")


def check_session_replay(cluster, api, tok, workdir, failures, ids):
    """A browser session's approve, replayed after logout, with its cookie and CSRF token."""
    p = start_psql(cluster)
    feed(p, "DELETE FROM appr_t WHERE id = 7;\n")
    rid = api.wait_pending(tok["nobody"], "DELETE FROM appr_t WHERE id = 7")["id"]
    ids["replay"] = rid
    web = {"Origin": api.origin}
    status, body, headers = api.call("POST", "/api/login", body={"token": tok["nobody"]},
                                     headers=web)
    cookie = next((v for k, v in headers if k.lower() == "set-cookie"), "")
    if status != 200 or "HttpOnly" not in cookie or "SameSite=Strict" not in cookie or \
            ("Secure" in cookie) != api.tls or not cookie.startswith(api.cookie + "="):
        failures.append(f"session: login: HTTP {status}, cookie {cookie!r}")
        p.kill()
        p.communicate()
        return
    session = {"Cookie": cookie.split(";")[0], "X-CSRF-Token": body["csrf"], **web}
    status, _, _ = api.call("POST", "/api/logout", body={}, headers=session)
    if status != 200:
        failures.append(f"session: logout: HTTP {status}")
    status, body, _ = api.call("POST", f"/api/requests/{rid}/approve", body={}, headers=session)
    if status != 401:
        failures.append(f"session: a replay after logout: HTTP {status} {body}, expected 401")
    api.call("POST", f"/api/requests/{rid}/deny", tok["daemon"], {"reason": "cleanup"})
    p.communicate(timeout=30)


def browser(workdir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--ignore-certificate-errors", f"--user-data-dir={workdir}/chromium",
              "--disable-gpu", "--window-size=1280,2000"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"),
                            options=opts)


def wait_for(predicate, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # noqa: BLE001 (the page is still changing)
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def check_inbox(cluster, api, tok, workdir, failures, ids):
    from selenium.webdriver.common.by import By
    status, _, headers = api.call("GET", "/")
    csp = next((v for k, v in headers if k.lower() == "content-security-policy"), "")
    if status != 200 or not csp.startswith("default-src 'self'") or "unsafe-inline" in csp:
        failures.append(f"inbox: HTTP {status}, CSP {csp!r}")
    driver = browser(workdir)
    try:
        driver.get(api.origin + "/")
        wait_for(lambda: driver.find_element(By.ID, "token").is_displayed(), "the login form")
        driver.find_element(By.ID, "token").send_keys(tok["nobody"])
        driver.find_element(By.ID, "login").click()
        wait_for(lambda: driver.find_element(By.ID, "me").text == "nobody", "the login")
        cookies = {c["name"]: c for c in driver.get_cookies()}
        c = cookies.get(api.cookie)
        if not c or not c.get("httpOnly") or c.get("secure") != api.tls or \
                c.get("sameSite") != "Strict":
            failures.append(f"inbox: session cookie {c}")

        # Approve by clicking: the request appears by itself, the held psql completes.
        p = start_psql(cluster)
        feed(p, "DELETE FROM appr_t WHERE id = 3 RETURNING 'deleted-' || id;\n")
        req = api.wait_pending(tok["nobody"], "DELETE FROM appr_t WHERE id = 3")
        rid = req["id"]
        ids["web_approve"] = rid
        card = wait_for(lambda: driver.find_element(
            By.CSS_SELECTOR, f"article.request[data-id='{rid}']"), f"request {rid} in the inbox")
        text = card.text
        driver.save_screenshot(os.path.join(workdir, "pending.png"))
        for want in ("DELETE FROM appr_t WHERE id = 3", "approve-deletes", "postgres@postgres",
                     "DELETE"):
            if want not in text:
                failures.append(f"inbox: request {rid} does not show {want!r}: {text!r}")
        # A DELETE: its blast radius, EXPLAINed on the client's idle session, is in the
        # request and on its card.
        blast = req.get("blast_radius") or {}
        if not isinstance(blast.get("rows"), int) or \
                blast.get("via") != "explain on the client's session":
            failures.append(f"inbox: the DELETE's request carries no blast radius: {req}")
        else:
            shown = card.find_element(By.CSS_SELECTOR, ".blast").text
            if f"{blast['rows']} row(s) estimated" not in shown:
                failures.append(f"inbox: request {rid}'s blast radius {blast} is not on the "
                                f"page: {shown!r}")
        card.find_element(By.CSS_SELECTOR, "input.reason").send_keys("checked in the inbox")
        card.find_element(By.CSS_SELECTOR, "button.approve").click()
        out, err = p.communicate(timeout=30)
        if "deleted-3" not in out:
            failures.append(f"inbox: approve: the held client did not complete: {out!r} {err!r}")

        # Deny: refused in the page without a reason; with one, the client gets it.
        p = start_psql(cluster)
        feed(p, "DELETE FROM appr_t WHERE id = 4;\nSELECT 'after-web-deny';\n")
        rid = api.wait_pending(tok["nobody"], "DELETE FROM appr_t WHERE id = 4")["id"]
        ids["web_deny"] = rid
        card = wait_for(lambda: driver.find_element(
            By.CSS_SELECTOR, f"article.request[data-id='{rid}']"), f"request {rid} in the inbox")
        card.find_element(By.CSS_SELECTOR, "button.deny").click()
        msg = wait_for(lambda: card.find_element(By.CSS_SELECTOR, ".result").text,
                       "the page's answer to a deny without reason")
        if "needs a reason" not in msg or p.poll() is not None:
            failures.append(f"inbox: a deny without a reason: {msg!r}")
        card.find_element(By.CSS_SELECTOR, "input.reason").send_keys("too wide, narrow it")
        card.find_element(By.CSS_SELECTOR, "button.deny").click()
        out, err = p.communicate(timeout=30)
        if f"approval request {rid} denied: too wide, narrow it" not in err or \
                "after-web-deny" not in out:
            failures.append(f"inbox: deny: {out!r} {err!r}")
        # The history shows both decisions, the card is gone.
        wait_for(lambda: driver.find_element(
            By.CSS_SELECTOR, f"#history tr.denied[data-id='{rid}']"), "the deny in the history")
        wait_for(lambda: driver.find_element(
            By.CSS_SELECTOR, f"#history tr.approved[data-id='{ids['web_approve']}']"),
            "the approve in the history")
        wait_for(lambda: not driver.find_elements(
            By.CSS_SELECTOR, f"article.request[data-id='{rid}']"), "the decided card to go")
        driver.save_screenshot(os.path.join(workdir, "inbox.png"))
    finally:
        driver.quit()


def check_trail(args, audit, ids, failures):
    events = approval_records(audit)
    refused = [e for e in events if e.get("dbwarden.approval.event") == "refused"]

    def has(kind, rid=None, reason_part="", **fields):
        for e in events:
            if e.get("dbwarden.approval.event") != kind:
                continue
            if rid is not None and e.get("dbwarden.approval.request_id") != rid:
                continue
            if reason_part not in e.get("dbwarden.approval.reason", ""):
                continue
            if all(e.get(k) == v for k, v in fields.items()):
                return
        failures.append(f"trail: no {kind} record (request {rid}, reason ~{reason_part!r}, "
                        f"{fields}); refused records: {refused}")

    has("refused", reason_part="no token", **{"dbwarden.approval.channel": "api"})
    has("refused", reason_part="wrong token")
    has("refused", ids["api_deny"], "not an approver", **{"dbwarden.approval.by": "operator"})
    has("refused", reason_part="cross-site request (Origin https://evil.example)")
    has("refused", ids["api_deny"], "is already denied", **{"dbwarden.approval.by": "nobody"})
    has("refused", ids["api_self"], "nobody decides their own request",
        **{"dbwarden.approval.by": "daemon"})
    has("refused", ids["replay"], "the session has ended")
    has("denied", ids["api_deny"], "api says no",
        **{"dbwarden.approval.by": "nobody", "dbwarden.approval.channel": "api"})
    has("approved", ids["api_self"], "ticket 9",
        **{"dbwarden.approval.by": "nobody", "dbwarden.approval.channel": "api"})
    has("approved", ids["web_approve"], "checked in the inbox",
        **{"dbwarden.approval.by": "nobody", "dbwarden.approval.channel": "web"})
    has("denied", ids["web_deny"], "too wide, narrow it",
        **{"dbwarden.approval.by": "nobody", "dbwarden.approval.channel": "web"})
    records = verify_trail(args.agent, audit, failures)
    executed = [r for r in records
                if r.get("db.query.text", "").startswith("DELETE FROM appr_t WHERE id = 3")]
    want = f"approved:{ids['web_approve']}"
    if not executed or executed[0].get("dbwarden.policy.action") != want:
        failures.append(f"trail: the inbox-approved DELETE's record: {executed}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--plain", action="store_true",
                    help="plain HTTP (the default of approvals-listen) instead of HTTPS")
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers, other OS users)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return skip_or_fail("python3-selenium is not installed (scripts/install-deps.sh)")
    workdir = pg_cluster.make_workdir("dbw-approvals-web-")
    policy = os.path.join(workdir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    cert, key = make_cert(workdir)
    tls_args = [] if args.plain else ["--approvals-tls-cert-file", cert,
                                      "--approvals-tls-key-file", key]
    tokens_file = os.path.join(workdir, "approval-tokens")
    tok = {name: add_token(args.agent, tokens_file, name)
           for name in ("daemon", "nobody", "operator")}
    port = free_port()
    failures = []
    ids = {}
    with PgCluster() as cluster:
        cluster.setup_sql("CREATE TABLE appr_t (id int); "
                          "INSERT INTO appr_t SELECT generate_series(1, 9)")
        audit = os.path.join(workdir, "audit.jsonl")
        agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy,
                             extra_args=["--approvals-tokens", tokens_file,
                                         "--approvals-listen", f"127.0.0.1:{port}"]
                             + tls_args)
        os.chmod(os.path.join(workdir, "proxy"), 0o755)
        rc = start_agent(agent)
        if rc is not None:
            return rc
        api = Api(port, None if args.plain else cert)
        try:
            # Each check notes the request ids it made in `ids` itself.
            run_checks([(name, lambda check=check: check(cluster, api, tok, workdir, failures, ids))
                        for name, check in (("api", check_api), ("session", check_session_replay),
                                            ("inbox", check_inbox))],
                       failures)
            agent.wait_audit_settled(timeout=30, quiet=1.5)
        finally:
            stop_reporting(agent, failures)
            agent.teardown()
        if all(k in ids for k in ("api_deny", "api_self", "replay", "web_approve", "web_deny")):
            check_trail(args, audit, ids, failures)
        else:
            failures.append(f"not every step ran: {ids}")
        log(f"approval ids: {ids}")
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
