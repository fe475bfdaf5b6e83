#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Learn mode end to end (issue 13, item 5): real PostgreSQL and MariaDB, psql, psycopg2, the
mariadb CLI and pymysql, real steering.

1. `dbwarden run --mode enforce` with a policy whose `learn:` section is in mode learn: two
   identities (database users etl and ops, both through psql) run their workloads through
   the steered proxy, over the unix socket and TCP. A statement a rule blocks is not learned.
2. The agent stops; `dbwarden policy learned list` shows both identities with their
   fingerprints and counts.
3. The policy switches to mode protect and the agent starts again (the learned set must
   survive the restart): etl's learned statements run with other literals; a statement etl
   never ran (but ops did) is blocked with rule learn:novel_fingerprint, and the same
   statement from ops runs; etl's learned statement from another program (psycopg2) is
   another identity and blocked too. MariaDB likewise: the CLI learned a SELECT, pymysql a
   DELETE, as the same database user; the CLI's DELETE is blocked, pymysql's runs. The
   audit records carry the decision.
4. `dbwarden policy explain --state-dir` agrees; the learn metrics count the set.
5. `dbwarden policy learned prune` of ops while the agent runs: ops's statement is novel
   within seconds.

Exit codes: 0 pass, 1 fail, 77 skip (not root). DBWARDEN_REQUIRE_KERNEL_TESTS=1 turns a skip
into a failure.
"""

import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pg_cluster  # noqa: E402
from mariadb_server import APP_PASSWORD, APP_USER, TEST_DB, MariaDB  # noqa: E402
from enforce_harness import EnforceAgent  # noqa: E402
from pg_cluster import (PgCluster, log, read_audit, skip_or_fail, start_agent,  # noqa: E402
                        stop_agent, verdict)

import psycopg2  # noqa: E402
import pymysql  # noqa: E402

NOVEL = "learn:novel_fingerprint"

ETL_WORKLOAD = [
    "SELECT count(*) FROM learn_t WHERE id = 1",
    "INSERT INTO learn_t VALUES (10, 'etl')",
]
OPS_WORKLOAD = [
    "DELETE FROM learn_t WHERE id = 10",
    "SELECT count(*) FROM learn_t WHERE id = 2",
]


def write_policy(workdir, mode):
    path = os.path.join(workdir, "policy.yaml")
    with open(path + ".tmp", "w") as f:
        f.write("rules:\n"
                "  - name: no-drop\n"
                "    match: {operation: DROP TABLE}\n"
                "    action: block\n"
                "learn:\n"
                f"  mode: {mode}\n"
                f"  match: {{user: [etl, ops, {APP_USER}]}}\n"
                "  action: block\n")
    os.rename(path + ".tmp", path)
    return path


def my_cli(server, sql):
    """The mariadb CLI over TCP; returns (ok, stderr)."""
    r = server.cli(sql, tcp=True)
    return r.returncode == 0 and "ERROR" not in r.stderr, r.stderr


def my_pymysql(server, sql):
    """pymysql (another program) over TCP; returns (ok, error text)."""
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user=APP_USER,
                           password=APP_PASSWORD, database=TEST_DB, connect_timeout=10,
                           autocommit=True)
    try:
        conn.cursor().execute(sql)
        return True, ""
    except pymysql.MySQLError as e:
        return False, str(e)
    finally:
        conn.close()


def psql(cluster, user, sql, tcp):
    """One statement as its own psql run; returns (ok, stdout, stderr)."""
    r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       env=cluster.client_env(user=user, tcp=tcp), text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return r.returncode == 0, r.stdout, r.stderr


def learned(agent_exe, workdir, *args):
    return subprocess.run([agent_exe, "policy", "learned", "--state-dir", workdir] + list(args),
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def learn_phase(args, cluster, server, workdir, failures):
    policy = write_policy(workdir, "learn")
    agent = EnforceAgent(args.agent, os.path.join(workdir, "audit-learn.jsonl"), [cluster.port],
                         workdir, policy, mysql_port=server.port)
    rc = start_agent(agent)
    if rc is not None:
        return rc
    try:
        for tcp in (False, True):
            for sql in ETL_WORKLOAD:
                ok, _, err = psql(cluster, "etl", sql, tcp)
                if not ok:
                    failures.append(f"learn: etl {sql!r} tcp={tcp} failed: {err.strip()[:200]}")
            for sql in OPS_WORKLOAD:
                ok, _, err = psql(cluster, "ops", sql, tcp)
                if not ok:
                    failures.append(f"learn: ops {sql!r} tcp={tcp} failed: {err.strip()[:200]}")
        # MariaDB: the same user from the CLI and from pymysql are two identities.
        for ok, err in (my_cli(server, "SELECT COUNT(*) FROM learn_m WHERE id = 1"),
                        my_pymysql(server, "DELETE FROM learn_m WHERE id = 10")):
            if not ok:
                failures.append(f"learn: mariadb workload failed: {err.strip()[:200]}")
        # A rule's block wins and is not learned.
        ok, _, err = psql(cluster, "etl", "DROP TABLE learn_t", False)
        if ok or "no-drop" not in err:
            failures.append(f"learn: DROP TABLE not blocked by its rule: {err.strip()[:200]}")
        agent.wait_audit_settled(timeout=30, quiet=1.5)
    finally:
        if stop_agent(agent) is not None:
            failures.append("learn: the agent did not stop cleanly")
        agent.teardown()
        if failures:
            print("agent stderr:\n" + agent.stderr)
    return None


def check_list(args, workdir, failures):
    r = learned(args.agent, workdir, "list")
    log("policy learned list:\n" + r.stdout)
    if r.returncode != 0:
        failures.append(f"policy learned list failed: {r.stderr.strip()}")
        return {}
    ids = {}
    for m in re.finditer(r"^identity --user (\S+) --program (\S+) --login-uid (\S+) "
                         r"\((\d+) fingerprints?\)$", r.stdout, re.M):
        ids[m.group(1)] = (m.group(2), m.group(3), int(m.group(4)))
    # etl: SELECT and INSERT; ops: DELETE and SELECT (DROP TABLE was blocked: not learned).
    for user in ("etl", "ops"):
        if user not in ids:
            failures.append(f"policy learned list: no identity for {user}: {r.stdout[:500]}")
        elif ids[user][2] != 2:
            failures.append(f"policy learned list: {user} has {ids[user][2]} fingerprints, want 2")
        elif "psql" not in ids[user][0]:
            failures.append(f"policy learned list: {user}'s program is {ids[user][0]}, not psql")
    if not re.search(r"count 2 ", r.stdout):
        failures.append("policy learned list: no fingerprint counted twice (unix + TCP)")
    return ids


def check_explain(args, workdir, policy, ids, sql, failures):
    """`policy explain --state-dir` says what learn mode decides for each identity."""
    for user, want in (("etl", 'decision: block by rule "learn:novel_fingerprint"'),
                       ("ops", "was learned for this identity")):
        if user not in ids:
            continue
        cmd = [args.agent, "policy", "explain", policy, "--user", user, "--database", "postgres",
               "--executable", ids[user][0], "--state-dir", workdir, "--sql", sql]
        if ids[user][1] != "-":
            cmd += ["--login-uid", ids[user][1]]
        r = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        if r.returncode != 0 or want not in r.stdout:
            failures.append(f"policy explain for {user}: want {want!r} in: {r.stdout[-600:]} "
                            f"{r.stderr.strip()}")


def protect_phase(args, cluster, server, workdir, ids, failures):
    policy = write_policy(workdir, "protect")
    audit = os.path.join(workdir, "audit-protect.jsonl")
    agent = EnforceAgent(args.agent, audit, [cluster.port], workdir, policy,
                         mysql_port=server.port)
    rc = start_agent(agent)
    if rc is not None:
        return rc
    novel_sql = "DELETE FROM learn_t WHERE id = 11"
    try:
        for tcp in (False, True):
            # Learned shapes, other literals: they run.
            for sql in ("SELECT count(*) FROM learn_t WHERE id = 42",
                        "INSERT INTO learn_t VALUES (11, 'again')"):
                ok, _, err = psql(cluster, "etl", sql, tcp)
                if not ok:
                    failures.append(f"protect: learned {sql!r} from etl tcp={tcp} failed: "
                                    f"{err.strip()[:200]}")
            # Never run by etl: blocked; ops learned it: it runs.
            ok, _, err = psql(cluster, "etl", novel_sql, tcp)
            if ok or NOVEL not in err:
                failures.append(f"protect: novel {novel_sql!r} from etl tcp={tcp} not blocked "
                                f"as {NOVEL}: {err.strip()[:200]}")
            ok, _, err = psql(cluster, "ops", novel_sql, tcp)
            if not ok:
                failures.append(f"protect: {novel_sql!r} from ops (learned) tcp={tcp} failed: "
                                f"{err.strip()[:200]}")
        # Another program as etl: another identity, nothing learned for it.
        try:
            conn = psycopg2.connect(host=cluster.socket_dir, port=cluster.port, user="etl",
                                    dbname="postgres", connect_timeout=10)
            conn.autocommit = True
            try:
                conn.cursor().execute("SELECT count(*) FROM learn_t WHERE id = 1")
                failures.append("protect: etl's learned SELECT from psycopg2 (another program) "
                                "ran")
            except psycopg2.Error as e:
                if NOVEL not in str(e):
                    failures.append(f"protect: psycopg2 got another error: {e}")
            conn.close()
        except psycopg2.Error as e:
            failures.append(f"protect: psycopg2 could not connect: {e}")

        # MariaDB: the CLI never ran a DELETE; pymysql did.
        ok, err = my_cli(server, "SELECT COUNT(*) FROM learn_m WHERE id = 5")
        if not ok:
            failures.append(f"protect: mariadb CLI's learned SELECT failed: {err.strip()[:200]}")
        ok, err = my_cli(server, "DELETE FROM learn_m WHERE id = 11")
        if ok or NOVEL not in err:
            failures.append(f"protect: mariadb CLI's novel DELETE not blocked as {NOVEL}: "
                            f"{err.strip()[:200]}")
        ok, err = my_pymysql(server, "DELETE FROM learn_m WHERE id = 11")
        if not ok:
            failures.append(f"protect: pymysql's learned DELETE failed: {err.strip()[:200]}")
        time.sleep(1.5)  # metrics are published once a second
        metrics = agent.scrape()
        # psql as etl and ops, the mariadb CLI and pymysql as the app user.
        m = re.search(r'^dbwarden_learn_learned\{kind="identities"\} (\S+)$', metrics, re.M)
        if not m or float(m.group(1)) != 4:
            failures.append(f"metrics: dbwarden_learn_learned identities is "
                            f"{m.group(1) if m else 'missing'}, want 4")
        if 'rule="learn:novel_fingerprint"' not in metrics:
            failures.append("metrics: no decision counted for learn:novel_fingerprint")
        check_explain(args, workdir, policy, ids, novel_sql, failures)
        # Prune ops while the agent runs: its DELETE is novel now.
        if "ops" in ids:
            program, login_uid, _ = ids["ops"]
            r = learned(args.agent, workdir, "prune", "--user", "ops", "--program", program,
                        "--login-uid", login_uid)
            if r.returncode != 0 or "pruned 2 fingerprints" not in r.stdout:
                failures.append(f"prune: {r.stdout.strip()} {r.stderr.strip()}")
            deadline = time.monotonic() + 10
            blocked = False
            while time.monotonic() < deadline and not blocked:
                ok, _, err = psql(cluster, "ops", "DELETE FROM learn_t WHERE id = 12", False)
                blocked = not ok and NOVEL in err
                if not blocked:
                    time.sleep(0.5)
            if not blocked:
                failures.append("prune: ops's DELETE still runs 10 s after its identity was "
                                "pruned")
        agent.wait_audit_settled(timeout=30, quiet=1.5)
    finally:
        if stop_agent(agent) is not None:
            failures.append("protect: the agent did not stop cleanly")
        agent.teardown()
        if failures:
            print("agent stderr:\n" + agent.stderr)
    records, bad = read_audit(audit)
    failures.extend(bad)
    novel = [r for r in records if r.get("db.query.text") == novel_sql]
    by_rule = sorted((r.get("db.user"), r.get("dbwarden.policy.rule", ""),
                      r.get("dbwarden.policy.action")) for r in novel)
    want = sorted([("etl", NOVEL, "block")] * 2 + [("ops", "", "allow")] * 2)
    if by_rule != want:
        failures.append(f"audit: records of {novel_sql!r}: {by_rule}, want {want}")
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (BPF steering, private servers)")
    workdir = pg_cluster.make_workdir("dbw-learn-")
    failures = []
    with PgCluster() as cluster, MariaDB() as server:
        server.setup_sql(f"CREATE TABLE {TEST_DB}.learn_m (id int, v text); "
                         f"INSERT INTO {TEST_DB}.learn_m VALUES (1, 'a'), (10, 'b')")
        cluster.setup_sql("CREATE TABLE learn_t (id int, v text); "
                          "INSERT INTO learn_t VALUES (1, 'a'), (2, 'b'); "
                          "CREATE ROLE etl LOGIN; CREATE ROLE ops LOGIN; "
                          "GRANT ALL ON learn_t TO etl, ops")
        rc = learn_phase(args, cluster, server, workdir, failures)
        if rc is not None:
            return rc
        if not os.path.exists(os.path.join(workdir, "learned.log")):
            failures.append("no learned.log in the state directory after the learn phase")
        ids = check_list(args, workdir, failures)
        rc = protect_phase(args, cluster, server, workdir, ids, failures)
        if rc is not None:
            return rc
    return verdict(failures, workdir)


if __name__ == "__main__":
    sys.exit(main())
