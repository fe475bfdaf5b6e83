#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`dbwarden policy check FILE --postgres ... / --mysql ...` (issue 13, item 3): the mask
rules' styles against the types of the columns they name, read from a live private
PostgreSQL and MariaDB as the invoking OS user over the unix socket (peer / unix_socket
authentication, no stored password).

Checks: a text style (partial) on a date column and `null` on a NOT NULL column are errors at
the rule's line:column naming the column and its type (exit 2); a glob naming no column is a
warning; a policy that fits exits 0 and says how many columns were read and named; a server
that asks for a password is a clear error; without a connection `check` says, in one line,
that the types were not checked (exit 0).

Exit codes: 0 pass, 1 fail, 77 skip (not root).
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pg_cluster  # noqa: E402
from pg_cluster import PgCluster, log, skip_or_fail, verdict  # noqa: E402
from mariadb_server import TEST_DB, MariaDB  # noqa: E402

PG_SETUP = """
CREATE TABLE people (id int NOT NULL, name text NOT NULL, ssn varchar(11), born date, note text);
CREATE ROLE pwuser LOGIN PASSWORD 'not-used';
CREATE ROLE root LOGIN;
"""

BAD = """rules:
  - name: born-partial
    action: mask
    columns: ["public.people.born"]
    style: partial
  - name: name-null
    action: mask
    columns: ["public.people.name"]
    style: null
  - name: nothing-there
    action: mask
    columns: ["public.nosuch.*"]
  - name: ssn-partial
    action: mask
    columns: ["*.people.ssn"]
    style: partial
"""

GOOD = """rules:
  - name: ssn-partial
    action: mask
    columns: ["*.people.ssn", "*.people.note"]
    style: partial
  - name: born-full
    action: mask
    columns: ["*.people.born", "*.people.id"]
"""


def rule_at(path, name):
    """line:column of `- name: NAME` in the file, as the loader reports a rule."""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            m = re.match(r"(\s*)- name: " + re.escape(name) + r"\s*$", line)
            if m:
                return f"{i}:{len(m.group(1)) + 3}"
    raise AssertionError(name)


def check(agent, args):
    cmd = [agent, "policy", "check"] + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    log(f"$ {' '.join(cmd)} -> {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def run(args, workdir, failures):
    def write(name, text):
        path = os.path.join(workdir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    bad, good = write("bad.yaml", BAD), write("good.yaml", GOOD)
    r = check(args.agent, [good])
    if r.returncode != 0 or "column types: not checked" not in r.stdout:
        failures.append(f"without a connection: exit {r.returncode}, {r.stdout!r}")

    # The invoking OS user (root) reaches its own role by peer authentication; the harness
    # keeps its trust rule for the postgres role.
    with PgCluster(hba_rules=[("local", "password", "pwuser"),
                              ("local", "peer", "root")]) as cluster:
        cluster.setup_sql(PG_SETUP)
        target = f"host={cluster.socket_dir} port={cluster.port} dbname=postgres"
        r = check(args.agent, [bad, "--postgres", target])
        want = [
            f"{bad}:{rule_at(bad, 'born-partial')}: mask rule \"born-partial\": style `partial` "
            "cannot apply to public.people.born of type date",
            f"{bad}:{rule_at(bad, 'name-null')}: mask rule \"name-null\": style `null` cannot "
            "apply to public.people.name of type text NOT NULL",
            f"{bad}:{rule_at(bad, 'nothing-there')}: mask rule \"nothing-there\": warning: "
            "`public.nosuch.*` names no column",
        ]
        if r.returncode != 2:
            failures.append(f"postgres, bad policy: exit {r.returncode}, expected 2")
        for w in want:
            if w not in r.stderr:
                failures.append(f"postgres, bad policy: missing {w!r} in {r.stderr!r}")
        if "ssn-partial" in r.stderr:
            failures.append(f"postgres: partial on varchar(11) was refused: {r.stderr!r}")
        r = check(args.agent, [good, "--postgres", target])
        if r.returncode != 0 or not re.search(r"column types \(--postgres .*\): \d+ columns "
                                              r"read, 4 named by mask rules, 0 errors", r.stdout):
            failures.append(f"postgres, good policy: exit {r.returncode}, {r.stdout!r}")
        # A role the server wants a password for: a clear error, exit 2.
        r = check(args.agent, [good, "--postgres", target + " user=pwuser"])
        if r.returncode != 2 or "asks for a password" not in r.stderr:
            failures.append(f"postgres, password role: exit {r.returncode}, {r.stderr!r}")

    with MariaDB() as server:
        server.setup_sql(f"CREATE TABLE {TEST_DB}.people (id INT NOT NULL, name TEXT NOT NULL, "
                         "ssn VARCHAR(11), born DATE, note TEXT)")
        my_bad = write("my_bad.yaml", BAD.replace("public.", f"{TEST_DB}."))
        r = check(args.agent, [my_bad, "--mysql", server.socket_path])  # root: unix_socket
        want = [
            f"mask rule \"born-partial\": style `partial` cannot apply to {TEST_DB}.people.born "
            "of type date",
            f"mask rule \"name-null\": style `null` cannot apply to {TEST_DB}.people.name of "
            "type text NOT NULL",
            f"mask rule \"nothing-there\": warning: `{TEST_DB}.nosuch.*` names no column",
        ]
        if r.returncode != 2:
            failures.append(f"mariadb, bad policy: exit {r.returncode}, expected 2")
        for w in want:
            if w not in r.stderr:
                failures.append(f"mariadb, bad policy: missing {w!r} in {r.stderr!r}")
        r = check(args.agent, [good, "--mysql", server.socket_path])
        if r.returncode != 0 or "named by mask rules, 0 errors" not in r.stdout:
            failures.append(f"mariadb, good policy: exit {r.returncode}, {r.stdout!r}")
    return verdict(failures, workdir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root (private servers)")
    return pg_cluster.in_workdir("dbw-policy-types-", False,
                                 lambda workdir: run(args, workdir, []))


if __name__ == "__main__":
    sys.exit(main())
