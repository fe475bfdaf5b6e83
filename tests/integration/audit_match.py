# SPDX-License-Identifier: Apache-2.0
"""Comparing audit records with what a server logged: the parts every acceptance test shares.

A test turns its server's log into a list of expected statements (protocol-specific), groups
them and the audit records by session, aligns each group in order with align(), checks each
pair with a RecordChecker (the common fields here, its protocol's own fields in the test) and
collects the outcome in a Report. Stdlib only, like the rest of the harness.
"""

import difflib
import json
import os
import re
import subprocess
import sys

from pg_cluster import read_audit_text, short

# RFC 3339 UTC, as the audit record's "time" is written.
_TIME_RE = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")


def norm_part(text):
    """A statement without the blanks around it and its terminating ';'.

    A simple Query (PostgreSQL) or a multi-statement COM_QUERY (MySQL) carries a string of
    statements; the agent cuts it the way the server's grammar does: the ';' that ends a
    statement and the blanks between statements belong to none of them. Statements that
    arrived alone and verbatim (Parse, COM_STMT_PREPARE) are compared exactly instead.
    """
    return text.strip().rstrip(";").rstrip()


def text_difference(want, got):
    at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    return (f"db.query.text differs at char {at} (want {len(want)} chars, got {len(got)}): "
            f"want ...{want[max(0, at - 20):at + 40]!r}, got ...{got[max(0, at - 20):at + 40]!r}")


class RecordChecker:
    """Collects the differences between one audit record and what it should hold."""

    def __init__(self, rec):
        self.rec = rec
        self.problems = []

    def want(self, key, value):
        if self.rec.get(key) != value:
            self.problems.append(f"{key}: want {value!r}, got {self.rec.get(key, '<absent>')!r}")

    def text(self, want_text, loose):
        """db.query.text: after norm_part when `loose`, else to the letter."""
        got = self.rec.get("db.query.text")
        if not isinstance(got, str):
            self.problems.append(f"db.query.text: want a string, got {got!r}")
        elif loose:
            if norm_part(got) != norm_part(want_text):
                self.problems.append(text_difference(norm_part(want_text), norm_part(got)))
        elif got != want_text:
            self.problems.append(text_difference(want_text, got))

    def rows(self, rows):
        """db.response.returned_rows: absent when `rows` is None, else equal to it."""
        if rows is None:
            if self.rec.get("db.response.returned_rows") is not None:
                self.problems.append("db.response.returned_rows: want absent, got "
                                     f"{self.rec['db.response.returned_rows']!r}")
        else:
            self.want("db.response.returned_rows", rows)

    def transport(self, unix, client_address, client_port):
        if unix:
            self.want("network.transport", "unix")
        else:
            self.want("network.transport", "tcp")
            self.want("client.address", client_address)
            self.want("client.port", client_port)

    def envelope(self):
        """What every statement record carries whatever the protocol: no capture gap, a
        duration, a time, a connection id."""
        rec = self.rec
        if rec.get("dbwarden.capture_gap"):
            self.problems.append("dbwarden.capture_gap is set")
        d = rec.get("duration_us")
        if not isinstance(d, (int, float)) or d < 0:
            self.problems.append(f"duration_us: want a number >= 0, got {d!r}")
        if not _TIME_RE.match(str(rec.get("time", ""))):
            self.problems.append(f"time: want RFC 3339 UTC, got {rec.get('time')!r}")
        if rec.get("connection_id") in (None, ""):
            self.problems.append("connection_id: absent")


def align(exps, recs):
    """Aligns one session's expected statements with its records, in order, by normalised text.

    Returns (pairs, blocks): pairs of (expected, record) whose texts agree, and the stretches
    that do not, as (tag, expected slice, record slice) with difflib's tag ("replace",
    "delete", "insert"). What to make of those stretches is the caller's rule; the exact
    text rule is applied to every pair afterwards by its checker.
    """
    rec_keys = [norm_part(str(r.get("db.query.text", ""))) for r in recs]
    exp_keys = [norm_part(e.text) for e in exps]
    sm = difflib.SequenceMatcher(a=exp_keys, b=rec_keys, autojunk=False)
    pairs, blocks = [], []
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op == "equal":
            pairs.extend(zip(exps[a0:a1], recs[b0:b1]))
        else:
            blocks.append((op, exps[a0:a1], recs[b0:b1]))
    return pairs, blocks


class Report:
    """Outcome of a comparison. `where` names an expected statement's session in the listing
    (e.g. "pid 123 app"), `where_record` an unmatched record's."""

    def __init__(self, where, where_record):
        self.where = where
        self.where_record = where_record
        self.missing = []      # expected statements with no record
        self.extra = []        # records with no logged statement
        self.mismatched = []   # (expected, record, [problems])
        self.other = []        # other failed checks
        self.matched = 0

    def ok(self):
        return not (self.missing or self.extra or self.mismatched or self.other)

    def check_pairs(self, pairs, check):
        """check(expected, record) -> [problems] for each pair; counts or records the result."""
        for e, r in pairs:
            problems = check(e, r)
            if problems:
                self.mismatched.append((e, r, problems))
            else:
                self.matched += 1

    def verdict(self, agent_stderr=None):
        """Prints the report, then PASS or FAIL (with the agent's stderr when given); returns
        the test's exit code."""
        self.print()
        if not self.ok():
            if agent_stderr is not None:
                print(f"agent stderr:\n{agent_stderr}")
            print("FAIL")
            return 1
        print("PASS")
        return 0

    def print(self, out=sys.stdout, limit=40):
        print(f"matched {self.matched} statements; missing {len(self.missing)}, "
              f"extra {len(self.extra)}, mismatched {len(self.mismatched)}, "
              f"other failures {len(self.other)}", file=out)
        for e in self.missing[:limit]:
            print(f"  MISSING  {self.where(e)}: {short(e.text)}", file=out)
        for r in self.extra[:limit]:
            print(f"  EXTRA    {self.where_record(r)}: {short(r.get('db.query.text'))} "
                  f"{short(json.dumps(r, ensure_ascii=False), 300)}", file=out)
        for e, r, problems in self.mismatched[:limit]:
            print(f"  MISMATCH {self.where(e)}: {short(e.text)}", file=out)
            for p in problems:
                print(f"           {short(p, 300)}", file=out)
        for o in self.other:
            print(f"  FAIL     {o}", file=out)
        for what, items in (("missing", self.missing), ("extra", self.extra),
                            ("mismatched", self.mismatched)):
            if len(items) > limit:
                print(f"  ... and {len(items) - limit} more {what}", file=out)


# --- checks on the whole run ---------------------------------------------------------------------

def password_leaks(password, audit_path, texts):
    """Where a password the workload logged in with shows up: the audit file, or any of
    `texts` (a dict, e.g. {"the agent's stderr": ..., "the metrics": ...})."""
    leaks = []
    audit_bytes = b""
    if os.path.exists(audit_path):
        audit_bytes = read_audit_text(audit_path).encode()
    if password.encode() in audit_bytes:
        leaks.append("the password appears in the audit file")
    for where, text in texts.items():
        if password in text:
            leaks.append(f"the password appears in {where}")
    return leaks


def verify_audit_problems(agent_exe, audit_path):
    """The trail the agent left must verify (`dbwarden verify-audit`: hash chain, checkpoints
    and state file); returns what went wrong, if anything."""
    verify = subprocess.run([agent_exe, "verify-audit", audit_path], capture_output=True,
                            text=True, timeout=120)
    if verify.returncode != 0:
        return [f"verify-audit failed ({verify.returncode}): "
                f"{(verify.stdout + verify.stderr).strip()}"]
    return []


def audited_total_problems(audited, expected_count):
    """dbwarden_audit_records_total (None: never readable) must reach the expected count."""
    if audited is not None and int(audited) < expected_count:
        return [f"dbwarden_audit_records_total is {audited}, "
                f"{expected_count} statements expected"]
    return []
