#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# `dbwarden policy check` and `dbwarden policy explain`, run as a user runs
# them: the real binary, the shipped default guardrails (packaging/policy.yaml)
# and files written here. Checks exit codes and the exact lines people read:
# file:line:column errors, the matching rule and why, the client's error.
#   test_policy_cli.py --agent DBWARDEN --policy packaging/policy.yaml
import argparse
import os
import re
import subprocess
import sys
import tempfile

failures = []


def run(agent, *args):
    p = subprocess.run([agent, "policy", *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def expect(what, cond, detail=""):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)
        if detail:
            print("    " + detail.replace("\n", "\n    "))


def rule_line(path, name):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if re.match(r"\s*- name: %s\s*$" % re.escape(name), line):
                return n
    raise SystemExit("rule %s not in %s" % (name, path))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--policy", required=True)
    a = ap.parse_args()
    agent, shipped = a.agent, a.policy
    work = tempfile.mkdtemp(prefix="dbw-policy-cli-")

    def write(name, text):
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # check: the shipped file and the empty policy are valid.
    code, out, err = run(agent, "check", shipped)
    expect("check shipped guardrails: exit 0, 6 rules",
           code == 0 and out == "%s: OK, 6 rules, on_unparsed: block\n" % shipped and err == "",
           "exit %d\n%s%s" % (code, out, err))
    empty = write("empty.yaml", "rules: []\n")
    code, out, err = run(agent, "check", empty)
    expect("check `rules: []`: exit 0", code == 0 and out == "%s: OK, 0 rules, on_unparsed: allow\n"
           % empty, out + err)

    # check: a rule nothing can reach is valid, with a warning on stderr.
    shadow = write("shadow.yaml", "rules:\n  - {name: all, action: log}\n"
                   "  - {name: drops, match: {operation: DROP}, action: block}\n")
    code, out, err = run(agent, "check", shadow)
    expect("check unreachable rule: exit 0 with a located warning",
           code == 0 and out == "%s: OK, 2 rules, on_unparsed: block\n" % shadow and
           err == "%s:3:5: warning: rule `drops` is never reached: rule `all` (line 2) has no "
           "conditions and decides every statement first\n" % shadow, out + err)

    # check: every error of a bad file, each with file:line:column, exit 2.
    bad = write("bad.yaml", """rules:
  - name: ok
    action: block
    sqlstate: 4250
  - name: masker
    match: {collections: salaries}
    action: mask
  - name: ok
    match:
      client_cidr: 10.0.0.300/8
      regex: 'DROP(TABLE'
      colour: red
    action: allow
""")
    code, out, err = run(agent, "check", bad)
    want = [
        "%s:4:15: `sqlstate` must be 5 characters 0-9 A-Z (e.g. \"42501\"), got `4250`" % bad,
        "%s:5:5: a mask rule needs `columns` (schema.table.column globs), `detectors`, or both"
        % bad,
        "%s:10:20: `10.0.0.300/8` is not an IPv4 or IPv6 address or network" % bad,
        "%s:11:15: invalid regex `DROP(TABLE` at offset 0 of the pattern: missing ): DROP(TABLE"
        % bad,
        "%s:12:7: unknown match key `colour`" % bad,
    ]
    lines = err.splitlines()
    expect("check bad file: exit 2, nothing on stdout", code == 2 and out == "", "exit %d" % code)
    for w in want:
        expect("check bad file reports: " + w[len(bad):],
               any(line.startswith(w) for line in lines), err)
    expect("check bad file: one line per error", len(lines) == len(want), err)

    syntax = write("syntax.yaml", "rules:\n  - name: a\n    action: [block\n")
    code, out, err = run(agent, "check", syntax)
    expect("check YAML syntax error: exit 2 with file:line:col",
           code == 2 and re.match(re.escape(syntax) + r":\d+:\d+: YAML syntax: ", err), err)
    code, out, err = run(agent, "check", os.path.join(work, "missing.yaml"))
    expect("check missing file: exit 2", code == 2 and "cannot open: No such file" in err, err)
    for args in ([], ["frob"], ["check"], ["check", empty, empty]):
        code, out, err = run(agent, *args)
        expect("usage error %r: exit 2" % (args,), code == 2 and err != "", err)

    # explain with the shipped guardrails.
    code, out, err = run(agent, "explain", shipped, "--user", "app", "--database", "shop",
                         "--sql", "DELETE FROM accounts")
    n = rule_line(shipped, "no-delete-or-update-without-where")
    expect("explain DELETE without WHERE: exit 0", code == 0, err)
    for line in [
            "  operation:        DELETE",
            "  collections:      accounts",
            "  has_where:        false",
            'rule "no-drop-or-truncate-table" (line %d): no: operation DELETE, not DROP TABLE or '
            'TRUNCATE' % rule_line(shipped, "no-drop-or-truncate-table"),
            'rule "no-delete-or-update-without-where" (line %d): MATCH: operation DELETE is '
            'DELETE or UPDATE; has_where is false' % n,
            'decision: block by rule "no-delete-or-update-without-where"',
            "  the client gets: ERROR:  dbwarden: DELETE or UPDATE without a WHERE clause is "
            "blocked by policy (SQLSTATE 42501)"]:
        expect("explain DELETE prints: " + line.strip(), line in out.splitlines(), out)
    expect("explain stops at the deciding rule", "no-alter-table-drop" not in out, out)

    code, out, err = run(agent, "explain", shipped, "--user", "app", "--database", "shop",
                         "--sql", "DELETE FROM accounts WHERE id = 7")
    expect("explain DELETE with WHERE: allowed by no rule",
           code == 0 and out.endswith("no rule matched: allowed by default\n"
                                      "decision: allow (no rule)\n"), out + err)

    code, out, err = run(agent, "explain", shipped, "--user", "root", "--database", "shop",
                         "--dialect", "mysql", "--sql", "DROP TABLE `orders`")
    expect("explain MySQL DROP TABLE: errno and SQLSTATE",
           code == 0 and "  the client gets: ERROR 1142 (42000): dbwarden: dropping or truncating "
           "a table is blocked by policy\n" in out, out + err)

    code, out, err = run(agent, "explain", shipped, "--user", "app", "--database", "shop",
                         "--sql", "SELEC 1")
    expect("explain unparsed: blocked by on_unparsed",
           code == 0 and 'decision: block by rule "on_unparsed"' in out, out + err)

    # explain with identity keys: an allow rule for one local process comes first.
    ops = write("ops.yaml", """rules:
  - name: dba-from-cron
    match:
      user: postgres
      uid: 0
      login_uid: 1000
      executable: /usr/bin/ps*
      unit: cron-*.service
    action: allow
  - name: office-may-drop
    match: {client_cidr: 192.168.0.0/16, operation: DROP TABLE}
    action: log
  - name: no-drop
    match: {operation: DROP TABLE}
    action: block
    message: "ask the DBA"
    sqlstate: "42P01"
""")
    base = ["explain", ops, "--database", "shop", "--sql", "DROP TABLE t"]
    code, out, err = run(agent, *base, "--user", "postgres", "--uid", "0", "--login-uid", "1000",
                         "--executable", "/usr/bin/psql", "--unit", "cron-backup.service")
    expect("explain local DBA: allowed by dba-from-cron with every condition",
           code == 0 and 'rule "dba-from-cron" (line 2): MATCH: user "postgres" is postgres; '
           'uid 0 is 0; login_uid 1000 is 1000; executable "/usr/bin/psql" matches /usr/bin/ps*; '
           'unit "cron-backup.service" matches cron-*.service\n' in out
           and out.endswith('decision: allow by rule "dba-from-cron"\n'), out + err)
    code, out, err = run(agent, *base, "--user", "postgres", "--uid", "0", "--login-uid", "1001",
                         "--executable", "/usr/bin/psql", "--unit", "cron-backup.service")
    expect("explain another human behind sudo: not the DBA rule",
           'rule "dba-from-cron" (line 2): no: login_uid 1001, not 1000\n' in out
           and 'decision: block by rule "no-drop"' in out
           and "  the client gets: ERROR:  ask the DBA (SQLSTATE 42P01)\n" in out, out + err)
    code, out, err = run(agent, *base, "--user", "app", "--client-address", "192.168.4.4")
    expect("explain office client: logged",
           'rule "office-may-drop" (line 10): MATCH: operation DROP TABLE is DROP TABLE; client '
           'address 192.168.4.4 is in 192.168.0.0/16\n' in out
           and out.endswith('decision: log by rule "office-may-drop"\n'), out + err)
    code, out, err = run(agent, *base, "--user", "postgres")
    expect("explain unix-socket client without a known process: no uid match",
           'rule "dba-from-cron" (line 2): no: uid (no local peer), not 0\n' in out, out + err)

    code, out, err = run(agent, "explain", ops, "--user", "app", "--sql", "SELECT 1")
    expect("explain without --database: exit 2", code == 2 and "required" in err, err)
    code, out, err = run(agent, "explain", ops, "--user", "a", "--database", "d", "--uid", "x",
                         "--sql", "SELECT 1")
    expect("explain bad --uid: exit 2", code == 2 and "--uid needs a number" in err, err)
    code, out, err = run(agent, "explain", bad, "--user", "a", "--database", "d", "--sql", "SELECT 1")
    expect("explain with a bad file: exit 2 and its errors", code == 2 and bad + ":4:15:" in err, err)

    # Mask rules (issue 13): check counts them and names the engine; explain lists
    # each after the decision, applying or not.
    key = write("mask.key", "0123456789abcdef0123456789abcdef")
    masks = write("masks.yaml", """masking:
  hash_key_file: %s
  detectors: [{name: employee_id, regex: 'EMP-[0-9]{6}'}]
rules:
  - name: pii
    match: {user: analyst}
    action: mask
    columns: [crm.customers.email]
    detectors: [email, employee_id]
    style: hash
  - {name: no-drop, match: {operation: DROP TABLE}, action: block}
""" % key)
    code, out, err = run(agent, "check", masks)
    expect("check mask rules: exit 0, counted with their engine",
           code == 0 and re.match(re.escape(masks) +
                                  r": OK, 2 rules \(1 mask, detectors on (hyperscan|re2-set)\), "
                                  r"on_unparsed: block\ncolumn types: not checked \(give "
                                  r"--postgres or --mysql .*\)\n$", out), out + err)
    code, out, err = run(agent, "explain", masks, "--user", "analyst", "--database", "crm",
                         "--sql", "SELECT email FROM crm.customers")
    expect("explain mask rule: allowed, then the mask rule applies with what it masks",
           code == 0 and "decision: allow (no rule)" in out and
           'mask rule "pii" (line 5): APPLIES: user "analyst" is analyst' in out and
           "style hash; columns crm.customers.email (on_derived: mask, predicates: block); "
           "detectors email or employee_id over every text value" in out, out + err)
    code, out, err = run(agent, "explain", masks, "--user", "app", "--database", "crm",
                         "--sql", "SELECT 1")
    expect("explain mask rule for another user: does not apply",
           code == 0 and 'mask rule "pii" (line 5): does not apply, no: user "app"' in out,
           out + err)

    subprocess.run(["rm", "-rf", work])
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
