#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 5, "Dashboards and rules": every dashboard query and rule expression works on real data.

1. `promtool check rules` on dashboards/prometheus/dbwarden-rules.yml, and static checks of
   dashboards/grafana/*.json (schema version, a `datasource` variable used by every panel
   and target, no undefined variable, the files match dashboards/build_dashboards.py).
2. A private PostgreSQL (PgCluster), the real agent, and a real Prometheus (Debian
   `prometheus`) scraping the agent every second as job "dbwarden" with the rules file
   loaded; all on loopback, Prometheus's TSDB in the work dir.
3. A workload: pgbench over TCP, and over the unix socket a session that keeps running
   failing statements (division by zero, a table it has no privilege on, a syntax error)
   and DDL. Beside it, for the masking and learn-mode panels, a second private PostgreSQL
   guarded by a second agent in enforce mode (scraped as a second target of the same job):
   its policy masks e-mail addresses in results and runs learn mode until a few seconds
   into the workload, then protects (action log), while a session keeps reading a table
   of e-mail addresses and, once learning has ended, runs a statement it never ran before.
4. Through Prometheus's HTTP API: every panel target of every dashboard, with the
   template variables replaced once by ".*" (All) and once by the workload's concrete
   values (the instance: the enforcing agent for panels of its metrics, ENFORCE_METRICS,
   the observing agent for the others), as an instant query (/api/v1/query) and, for graph targets, a range query; every
   template variable's label_values() query; every rule Prometheus loaded, by its own
   expression; every recording rule's recorded series. Panels, variables and recording rules
   must return at least one series; alert expressions only have to evaluate. Rules must be
   loaded with health "ok" and as many as promtool counted.

Exit codes: 0 pass, 1 fail, 77 skip (not root, or the agent lacks privilege).
DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip into a failure. Everything started here is
stopped here by pid.
"""

import argparse
import glob
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import (SETUP_APP, Agent, AgentError, PgCluster, free_port, log,  # noqa: E402
                        skip_or_fail, start_agent)

import psycopg2  # noqa: E402  (Debian python3-psycopg2, under /usr/bin/python3)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD_DIR = os.path.join(REPO, "dashboards", "grafana")
RULES_FILE = os.path.join(REPO, "dashboards", "prometheus", "dbwarden-rules.yml")
# promtool's unit tests of the alerts (they load dbwarden-rules.yml from their own folder).
RULES_TEST_FILE = os.path.join(REPO, "dashboards", "prometheus", "dbwarden-rules.test.yml")
# Alerts an issue asks for (issue 14: a request pending too long, webhook failures).
REQUIRED_ALERTS = ("DbwardenApprovalPendingTooLong", "DbwardenApprovalWebhookFailures",
                   "DbwardenApprovalNotificationsLost")
# Metrics an issue asks a panel for: each must appear in some dashboard's queries.
REQUIRED_PANEL_METRICS = ("dbwarden_approvals_pending", "dbwarden_approvals_decisions_total",
                          "dbwarden_approvals_decision_seconds_bucket",
                          "dbwarden_approvals_webhook_failures_total",
                          "dbwarden_approvals_refused_total")
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"

APP_ROLE = "dbw_dash_app"
DB = "dbw_dash"
WORKLOAD_SECONDS = 20
# Time placeholders Grafana fills in; 15s holds ~15 samples at the test's 1s scrape.
TIME_VARS = {"__rate_interval": "15s", "__interval": "5s", "__range": "1m"}
LABEL_VARS = ("instance", "db_system", "db_namespace", "db_user")
SCHEMA_VERSION_MIN = 36
# Panels on these series are checked, with a concrete instance, against the enforcing agent.
ENFORCE_METRICS = ("dbwarden_masked_values_total", "dbwarden_learn_", "learn:novel_fingerprint")
GUARDED_TABLE = "dbw_dash_contacts"
NOVEL_SQL = f"SELECT count(*) FROM {GUARDED_TABLE} WHERE note LIKE '%call%'"
LEARN_SECONDS = 6  # the enforcing agent learns this long into the workload, then protects


# --- static checks ---------------------------------------------------------------------------

def promtool_check():
    """Runs promtool check rules, and promtool test rules on the alerts' unit tests next to
    the rules file (RULES_TEST_FILE, when there); returns (problems, rule count)."""
    r = subprocess.run([PROMTOOL, "check", "rules", RULES_FILE], capture_output=True, text=True,
                       timeout=60)
    out = (r.stdout + r.stderr).strip()
    log(f"promtool check rules: {out}")
    m = re.search(r"SUCCESS: (\d+) rules found", out)
    if r.returncode != 0 or not m:
        return [f"promtool check rules failed ({r.returncode}): {out}"], 0
    problems = []
    if os.path.exists(RULES_TEST_FILE):
        t = subprocess.run([PROMTOOL, "test", "rules", os.path.basename(RULES_TEST_FILE)],
                           capture_output=True, text=True, timeout=120,
                           cwd=os.path.dirname(RULES_TEST_FILE))
        out = (t.stdout + t.stderr).strip()
        log(f"promtool test rules: {out.splitlines()[-1] if out else ''}")
        if t.returncode != 0 or "SUCCESS" not in out:
            problems.append(f"promtool test rules {RULES_TEST_FILE} failed ({t.returncode}): "
                            f"{out}")
    for alert in REQUIRED_ALERTS:
        with open(RULES_FILE) as f:
            if f"alert: {alert}\n" not in f.read():
                problems.append(f"{RULES_FILE}: no alert {alert}")
    return problems, int(m.group(1))


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def load_dashboards():
    paths = sorted(glob.glob(os.path.join(DASHBOARD_DIR, "*.json")))
    dashboards = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            dashboards[os.path.basename(path)] = json.load(f)
    return dashboards


def static_checks(dashboards):
    problems = []
    if len(dashboards) < 4:
        problems.append(f"expected 4 dashboards in {DASHBOARD_DIR}, found {len(dashboards)}")
    uids = set()
    for name, d in dashboards.items():
        if d.get("schemaVersion", 0) < SCHEMA_VERSION_MIN:
            problems.append(f"{name}: schemaVersion {d.get('schemaVersion')}")
        if d.get("uid") in uids:
            problems.append(f"{name}: duplicate uid {d.get('uid')}")
        uids.add(d.get("uid"))
        variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
        ds = variables.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            problems.append(f"{name}: no datasource variable of type datasource/prometheus")
        for v in variables.values():
            if v["type"] == "query" and v.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{name}: variable {v['name']} does not use $datasource")
        targets = 0
        for p in all_panels(d.get("panels", [])):
            if p.get("type") == "row":
                continue
            if p.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{name}: panel {p.get('title')!r} does not use $datasource")
            if not p.get("targets"):
                problems.append(f"{name}: panel {p.get('title')!r} has no query")
            for t in p.get("targets", []):
                targets += 1
                if t.get("datasource", {}).get("uid") != "${datasource}":
                    problems.append(f"{name}: a target of {p.get('title')!r} does not use "
                                    "$datasource")
                # "$1" in label_replace is PromQL's, not a variable (Grafana leaves it).
                used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", t.get("expr", "")))
                unknown = used - set(variables) - set(TIME_VARS)
                if unknown:
                    problems.append(f"{name}: {p.get('title')!r} uses undefined variables "
                                    f"{sorted(unknown)}")
        if targets == 0:
            problems.append(f"{name}: no panel queries")
    exprs = " ".join(t.get("expr", "") for d in dashboards.values()
                     for p in all_panels(d.get("panels", [])) for t in p.get("targets", []))
    for metric in REQUIRED_PANEL_METRICS:
        if not re.search(rf"\b{metric}\b", exprs):
            problems.append(f"no dashboard panel queries {metric}")
    return problems


def substitute(expr, values):
    """Replaces Grafana's $var / ${var} / [[var]] forms."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in TIME_VARS:
            return TIME_VARS[name]
        if name in values:
            return values[name]
        raise KeyError(name)
    name = r"([A-Za-z_]\w*)"
    return re.sub(rf"\$\{{{name}(?::\w+)?\}}|\${name}|\[\[{name}\]\]", repl, expr)


# --- Prometheus ------------------------------------------------------------------------------

class Prometheus:
    """A private Prometheus scraping targets as job "dbwarden", stopped by its pid; `target`
    is the first."""

    def __init__(self, workdir, targets):
        self.workdir = workdir
        self.targets = list(targets)
        self.target = self.targets[0]
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(workdir, "prometheus.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        config = os.path.join(self.workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    f"rule_files:\n  - {json.dumps(RULES_FILE)}\n"
                    "scrape_configs:\n"
                    "  - job_name: dbwarden\n"
                    "    static_configs:\n"
                    f"      - targets: [{', '.join(json.dumps(t) for t in self.targets)}]\n")
        tsdb = os.path.join(self.workdir, "tsdb")
        os.mkdir(tsdb)
        cmd = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
               f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
               "--log.level=warn"]
        log("starting " + " ".join(cmd))
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        log(f"prometheus {self.proc.pid} ready on {self.url}")
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus not ready within 60s")

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"prometheus {self.proc.pid} ignored SIGTERM for 30s; SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        self.proc = None

    def api(self, path, params=None):
        """GET /api/v1/<path>; returns (data, error string or None)."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=15) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read())
            except ValueError:
                return None, f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            return None, str(e)
        if body.get("status") != "success":
            return None, f"{body.get('errorType')}: {body.get('error')}"
        return body.get("data"), None

    def query(self, expr):
        return self.api("query", {"query": expr})

    def query_range(self, expr, seconds=30, step=5):
        end = time.time()
        return self.api("query_range", {"query": expr, "start": f"{end - seconds:.3f}",
                                        "end": f"{end:.3f}", "step": str(step)})


def series_count(data):
    if data is None:
        return 0
    if data.get("resultType") in ("vector", "matrix"):
        return len(data.get("result", []))
    return 1  # scalar or string


def has_nan(data):
    for s in (data or {}).get("result", []):
        for v in ([s["value"]] if "value" in s else s.get("values", [])):
            if v[1] in ("NaN", "+Inf", "-Inf") or not math.isfinite(float(v[1])):
                return True
    return False


# --- workload --------------------------------------------------------------------------------

def setup(cluster):
    cluster.setup_sql(f"CREATE ROLE {APP_ROLE} LOGIN")
    cluster.setup_sql(f"CREATE DATABASE {DB} OWNER {APP_ROLE}")
    cluster.pgbench(["-i", "-q", "-s", "1"], user=APP_ROLE, dbname=DB, app=SETUP_APP)
    # A table the application role may not read: its SELECTs fail with 42501.
    cluster.setup_sql("CREATE TABLE dbw_secret (x int); REVOKE ALL ON dbw_secret FROM PUBLIC",
                      dbname=DB)


def guarded_setup(cluster):
    cluster.setup_sql(f"CREATE ROLE {APP_ROLE} LOGIN")
    cluster.setup_sql(f"CREATE DATABASE {DB} OWNER {APP_ROLE}")
    cluster.setup_sql(f"CREATE TABLE {GUARDED_TABLE} (id int, note text); "
                      f"INSERT INTO {GUARDED_TABLE} SELECT g, 'call ann' || g || "
                      "'@example.com back' FROM generate_series(1, 5) g; "
                      f"ALTER TABLE {GUARDED_TABLE} OWNER TO {APP_ROLE}", dbname=DB)


def enforce_policy(workdir, until):
    """Masks e-mail addresses in every result; learns until `until` (UTC, epoch seconds),
    then logs statements never learned."""
    path = os.path.join(workdir, "policy-enforce.yaml")
    with open(path, "w") as f:
        f.write("rules:\n"
                "  - name: dash-pii\n"
                "    action: mask\n"
                "    detectors: [email]\n"
                "learn:\n"
                "  mode: learn\n"
                f"  until: \"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until))}\"\n"
                "  action: log\n")
    return path


class GuardedSession(threading.Thread):
    """Over TCP through the enforcing agent's proxy: reads the e-mail table (masked), and
    once learning has ended (`until`) a statement it never ran while learning."""

    def __init__(self, cluster, until):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.until = until
        self.stop_event = threading.Event()
        self.masked_rows = self.novel = 0
        self.error = None

    def run(self):
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=self.cluster.port, user=APP_ROLE,
                                    dbname=DB, application_name="dbw-dash-guarded",
                                    connect_timeout=10)
            conn.autocommit = True
            cur = conn.cursor()
            while not self.stop_event.is_set():
                cur.execute(f"SELECT id, note FROM {GUARDED_TABLE} ORDER BY id")
                for _, note in cur.fetchall():
                    if "@example.com" in note:
                        raise RuntimeError(f"an e-mail address left unmasked: {note!r}")
                    self.masked_rows += 1
                if time.time() > self.until + 1:
                    cur.execute(NOVEL_SQL)  # logged, not blocked
                    cur.fetchall()
                    self.novel += 1
                self.stop_event.wait(0.2)
            conn.close()
        except Exception as e:  # reported by the main thread
            self.error = e


class FailingSession(threading.Thread):
    """Over the unix socket: statements that fail in several SQLSTATE classes, and DDL."""

    STATEMENTS = ("SELECT 1/0", "SELECT * FROM dbw_secret", "SELEC 1",
                  "CREATE TABLE IF NOT EXISTS dbw_dash_ddl (x int)", "DROP TABLE dbw_dash_ddl")

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop_event = threading.Event()
        self.ran = 0
        self.error = None

    def run(self):
        try:
            conn = psycopg2.connect(host=self.cluster.socket_dir, port=self.cluster.port,
                                    user=APP_ROLE, dbname=DB, application_name="dbw-dash-fail",
                                    connect_timeout=10)
            conn.autocommit = True
            cur = conn.cursor()
            while not self.stop_event.is_set():
                for sql in self.STATEMENTS:
                    try:
                        cur.execute(sql)
                    except psycopg2.Error:
                        pass
                    self.ran += 1
                # A refused login (unknown database, SQLSTATE 3D000) for the
                # failed-logins panel.
                try:
                    psycopg2.connect(host=self.cluster.socket_dir, port=self.cluster.port,
                                     user=APP_ROLE, dbname="dbw_no_such_db",
                                     connect_timeout=10).close()
                except psycopg2.Error:
                    pass
                self.stop_event.wait(0.2)
            conn.close()
        except Exception as e:  # reported by the main thread
            self.error = e


# --- the run ---------------------------------------------------------------------------------


def wait_for(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    log(f"timed out after {timeout}s waiting for {what}")
    return False


def check_dashboards(prom, dashboards, values, tag, failures, empty, enforce_values=None):
    n = 0
    for name, d in dashboards.items():
        for p in all_panels(d.get("panels", [])):
            for t in p.get("targets", []):
                if "expr" not in t:
                    continue
                enforced = enforce_values and any(m in t["expr"] for m in ENFORCE_METRICS)
                expr = substitute(t["expr"], enforce_values if enforced else values)
                where = f"{name} / {p.get('title')!r} / {t.get('refId')} [{tag}]"
                n += 1
                data, err = prom.query(expr)
                if err:
                    failures.append(f"{where}: query failed: {err}\n    {expr}")
                    continue
                if series_count(data) == 0:
                    empty.append(f"{where}: no series\n    {expr}")
                elif has_nan(data):
                    log(f"note: {where} has NaN/Inf values")
                if not t.get("instant"):
                    data, err = prom.query_range(expr)
                    if err:
                        failures.append(f"{where}: range query failed: {err}\n    {expr}")
                    elif series_count(data) == 0:
                        empty.append(f"{where}: range query: no series\n    {expr}")
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["query"]["query"], re.S)
            if not m:
                failures.append(f"{name}: variable {v['name']}: unexpected query "
                                f"{v['query']['query']!r}")
                continue
            selector = substitute(m.group(1), values)
            data, err = prom.api("series", {"match[]": selector,
                                            "start": f"{time.time() - 120:.3f}"})
            n += 1
            if err:
                failures.append(f"{name}: variable {v['name']} [{tag}]: {err}")
            elif not {s.get(m.group(2)) for s in data} - {None}:
                empty.append(f"{name}: variable {v['name']} [{tag}]: no values for "
                             f"{m.group(2)} in {selector}")
    return n


def check_rules(prom, expected_count, failures, empty):
    data, err = prom.api("rules")
    if err:
        failures.append(f"/api/v1/rules: {err}")
        return
    rules = [r for g in data["groups"] for r in g["rules"]]
    if len(rules) != expected_count:
        failures.append(f"prometheus loaded {len(rules)} rules, promtool counted "
                        f"{expected_count}")
    for r in rules:
        where = f"{r['type']} {r.get('name')}"
        if r.get("health") != "ok":
            failures.append(f"{where}: health {r.get('health')}: {r.get('lastError')}")
        data, err = prom.query(r["query"])
        if err:
            failures.append(f"{where}: expression failed: {err}\n    {r['query']}")
            continue
        count = series_count(data)
        log(f"{where}: {count} series")
        if r["type"] == "recording":
            if count == 0:
                empty.append(f"{where}: expression returned no series\n    {r['query']}")
            recorded, err = prom.query(r["name"])
            if err or series_count(recorded) == 0:
                empty.append(f"{where}: no recorded series {r['name']} ({err or 'empty'})")


def recording_rules_evaluated(prom):
    data, err = prom.api("rules", {"type": "record"})
    if err:
        return False
    for g in data["groups"]:
        for r in g["rules"]:
            recorded, err = prom.query(r["name"])
            if err or series_count(recorded) == 0:
                return False
    return True


def run(agent_exe, workdir, dashboards, rule_count):
    failures, empty = [], []
    with PgCluster() as cluster, PgCluster() as guarded:
        setup(cluster)
        guarded_setup(guarded)
        agent = Agent(agent_exe, os.path.join(workdir, "audit.jsonl"), [cluster.port],
                      extra_args=["--audit-stdout", "true"])  # a shipping destination
        if (rc := start_agent(agent)) is not None:
            return rc
        # Its own directory: the learned set lives beside its audit log.
        enforce_dir = os.path.join(workdir, "enforce")
        os.makedirs(os.path.join(enforce_dir, "proxy"))
        until = time.time() + 60  # rewritten below, once both agents are up
        policy = enforce_policy(enforce_dir, until)
        enforcer = Agent(agent_exe, os.path.join(enforce_dir, "audit.jsonl"), [guarded.port],
                         extra_args=["--mode", "enforce", "--policy", policy, "--fail-mode",
                                     "closed", "--enforce-observer", "off",
                                     "--proxy-socket-dir", os.path.join(enforce_dir, "proxy")])
        if (rc := start_agent(enforcer)) is not None:
            agent.stop()
            return rc
        prom = Prometheus(workdir, [f"127.0.0.1:{agent.metrics_port}",
                                    f"127.0.0.1:{enforcer.metrics_port}"])
        failing = FailingSession(cluster)
        guarded_session = None
        pgbench = None
        try:
            prom.start()
            if not wait_for("both agents' targets to be up",
                            lambda: len((prom.query('up{job="dbwarden"} == 1')[0] or {})
                                        .get("result", [])) == 2, 30):
                failures.append(f"prometheus never scraped the agents: {prom.log_tail()}")
                raise RuntimeError("no scrape")
            # Learning ends a few seconds into the workload: the policy is reloaded with it.
            until = time.time() + LEARN_SECONDS
            enforce_policy(enforce_dir, until)
            enforcer.proc.send_signal(signal.SIGHUP)
            guarded_session = GuardedSession(guarded, until)
            guarded_session.start()
            failing.start()
            pgbench = subprocess.Popen(
                ["pgbench", "-n", "-T", str(WORKLOAD_SECONDS), "-c", "2", "-M", "extended"],
                env=cluster.client_env(user=APP_ROLE, dbname=DB, tcp=True, app="dbw-dash-bench"),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True)
            out, _ = pgbench.communicate(timeout=WORKLOAD_SECONDS + 60)
            if pgbench.returncode != 0:
                failures.append(f"pgbench failed: {out.strip()}")
            m = re.search(r"number of transactions actually processed: (\d+)", out)
            log(f"pgbench: {m.group(0) if m else out.strip()[-300:]}; failing session ran "
                f"{failing.ran} statements")
            # Recording groups run every 30s: wait for one evaluation with data in it.
            wait_for("every recording rule to have recorded a series",
                     lambda: recording_rules_evaluated(prom), 75)
            values_all = {v: ".*" for v in LABEL_VARS}
            values_one = {"instance": prom.target, "db_system": "postgresql",
                          "db_namespace": DB, "db_user": APP_ROLE}
            values_enforcer = dict(values_one, instance=prom.targets[1])
            n = 0
            for tag, values in (("all", values_all), ("concrete", values_one)):
                n += check_dashboards(prom, dashboards, values, tag, failures, empty,
                                      values_enforcer if tag == "concrete" else None)
            log(f"{n} dashboard queries evaluated")
            check_rules(prom, rule_count, failures, empty)
            if failing.error:
                failures.append(f"failing-statement session broke: {failing.error}")
            if guarded_session.error:
                failures.append(f"the guarded session broke: {guarded_session.error}")
            log(f"guarded session: {guarded_session.masked_rows} masked rows read, "
                f"{guarded_session.novel} novel statements after learning")
            if guarded_session.novel == 0:
                failures.append("the guarded session ran no statement after learning ended")
        except RuntimeError as e:
            if not failures:
                failures.append(str(e))
        finally:
            failing.stop_event.set()
            failing.join(timeout=30)
            if guarded_session is not None:
                guarded_session.stop_event.set()
                guarded_session.join(timeout=30)
            if pgbench is not None and pgbench.poll() is None:
                pgbench.kill()
                pgbench.wait()
            prom.stop()
            for a in (agent, enforcer):
                try:
                    a.stop()
                except AgentError as e:
                    failures.append(f"{e}\nagent stderr:\n{e.stderr}")

    for e in empty:
        print(f"EMPTY  {e}")
    for f in failures:
        print(f"FAIL   {f}")
    if failures or empty:
        print("FAIL")
        return 1
    print("PASS")
    return 0


def main():
    global DASHBOARD_DIR, RULES_FILE, RULES_TEST_FILE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    ap.add_argument("--dashboards", default=DASHBOARD_DIR, help="folder of dashboard JSON")
    ap.add_argument("--rules", default=RULES_FILE, help="Prometheus rules file")
    args = ap.parse_args()
    DASHBOARD_DIR, RULES_FILE = os.path.abspath(args.dashboards), os.path.abspath(args.rules)
    RULES_TEST_FILE = os.path.join(os.path.dirname(RULES_FILE), "dbwarden-rules.test.yml")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop servers on the way out

    problems, rule_count = promtool_check()
    dashboards = load_dashboards()
    problems += static_checks(dashboards)
    if DASHBOARD_DIR == os.path.join(REPO, "dashboards", "grafana"):
        # The committed JSON must be what its generator writes.
        r = subprocess.run([sys.executable, os.path.join(REPO, "dashboards",
                                                         "build_dashboards.py"), "--check"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            problems.append((r.stdout + r.stderr).strip())
    if problems:
        for p in problems:
            print(f"FAIL   {p}")
        print("FAIL")
        return 1
    log(f"{len(dashboards)} dashboards and {rule_count} rules pass the static checks")

    if os.geteuid() != 0:
        return skip_or_fail("needs root (CAP_BPF/CAP_SYS_ADMIN) to load BPF programs and to "
                            "run PostgreSQL as the postgres user")
    for exe in (PROMETHEUS, "pgbench"):
        if not shutil.which(exe):
            print(f"FAIL: {exe} not installed")
            return 1
    workdir = tempfile.mkdtemp(prefix="dbw-dash-")
    os.chmod(workdir, 0o755)
    rc = 1
    try:
        rc = run(args.agent, workdir, dashboards, rule_count)
        return rc
    finally:
        if rc in (0, pg_cluster.EXIT_SKIP) and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}")


if __name__ == "__main__":
    sys.exit(main())
