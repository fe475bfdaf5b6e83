#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""TLS acceptance test: sslmode=require is audited exactly like plaintext.

A private PostgreSQL with ssl=on (a self-signed certificate made here with the openssl CLI),
the real agent, the real kernel. The same psql script and the same pgbench run go once with
sslmode=disable and once with sslmode=require over TCP. Checks:
  - the TLS sessions really were TLS (pg_stat_ssl), and the plaintext ones were not;
  - both give the same audit records (text, user, database, rows, SQLSTATE), in order;
  - every statement the server logged appears exactly once in the audit log, on the backend
    that ran it, and all records of one session share one connection id;
  - a 64 KiB query (read by the server in several SSL_read calls, some of them served from
    OpenSSL's own buffer with no syscall underneath) comes out whole;
  - the server's ciphertext never reached the decoder: no decoder errors, no resyncs, no
    gaps, no connection counted as not captured, no TLS call on an unknown SSL*.
"""

import argparse
import collections
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_cluster  # noqa: E402
from pg_cluster import (SETUP_APP, PgCluster, in_workdir, log, read_audit, short,  # noqa: E402
                        skip_or_fail, start_agent, stop_agent)

BIG_QUERY_BYTES = 64 * 1024

# The fields that must not depend on the transport.
FIELDS = ("db.query.text", "db.user", "db.namespace", "db.response.returned_rows",
          "db.response.status_code")


def make_certificate(directory):
    """A self-signed certificate and key the postgres user can read (key mode 0600)."""
    crt, key = os.path.join(directory, "server.crt"), os.path.join(directory, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", crt],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pw = pwd.getpwnam(pg_cluster.PG_OS_USER)
    for path in (directory, crt, key):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(key, 0o600)
    return crt, key


def psql_script():
    big = "x" * BIG_QUERY_BYTES
    return "\n".join([
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();",
        "CREATE TEMP TABLE t (a int, b text);",
        "INSERT INTO t SELECT g, repeat('y', g % 50) FROM generate_series(1, 500) g;",
        "SELECT count(*) FROM t;",
        "SELECT a, b FROM t WHERE a <= 300;",  # a response of several TLS records
        "SELECT 1/0;",  # SQLSTATE 22012
        f"SELECT length('{big}');",  # read in pieces: SSL_read served from OpenSSL's buffer
        "UPDATE t SET b = 'z' WHERE a < 10;",
        "SELECT current_user, current_database();",
    ]) + "\n"


def run_psql(cluster, workdir, sslmode, app):
    path = os.path.join(workdir, f"script-{sslmode}.sql")
    with open(path, "w") as f:
        f.write(psql_script())
    env = cluster.client_env(tcp=True, app=app)
    env["PGSSLMODE"] = sslmode
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-f", path],
                       env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    first = r.stdout.splitlines()[0] if r.stdout else ""
    return first, r


def run_pgbench(cluster, sslmode, app, mode):
    env = cluster.client_env(tcp=True, app=app)
    env["PGSSLMODE"] = sslmode
    r = subprocess.run(["pgbench", "-n", "-S", "-c", "2", "-j", "2", "-t", "200", "-M", mode],
                       env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"pgbench ({sslmode}) failed: {r.stderr.strip()}")


def norm(text):
    """The audit record may leave out the statement's final semicolon."""
    return (text or "").rstrip().rstrip(";").rstrip()


def shape(text):
    """pgbench's statements differ only in their random key."""
    return re.sub(r"\d+", "N", text or "")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", required=True, help="path to the dbwarden executable")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if os.geteuid() != 0:
        return skip_or_fail("needs root to load BPF programs and run PostgreSQL")
    if not shutil.which("openssl"):
        return skip_or_fail("the openssl CLI is needed to make a certificate")
    return in_workdir("dbw-tls-", args.keep, lambda workdir: run(args.agent, workdir))


def run(agent_exe, workdir):
    certdir = os.path.join(workdir, "cert")
    os.mkdir(certdir, 0o755)
    crt, key = make_certificate(certdir)
    audit_path = os.path.join(workdir, "audit.jsonl")
    conf = {"ssl": "on", "ssl_cert_file": f"'{crt}'", "ssl_key_file": f"'{key}'"}
    problems = []
    with PgCluster(extra_conf=conf) as cluster:
        cluster.pgbench(["-i", "-s", "1", "-q"], app=SETUP_APP)
        agent = pg_cluster.Agent(agent_exe, audit_path, [cluster.port])
        if (rc := start_agent(agent)) is not None:
            return rc
        try:
            for sslmode, want_ssl in (("disable", "f"), ("require", "t")):
                got_ssl, r = run_psql(cluster, workdir, sslmode, f"tls-psql-{sslmode}")
                if got_ssl != want_ssl:
                    problems.append(f"psql sslmode={sslmode}: pg_stat_ssl.ssl is {got_ssl!r}, "
                                    f"want {want_ssl!r} (stderr {short(r.stderr)})")
                for mode in ("simple", "extended"):
                    run_pgbench(cluster, sslmode, f"tls-bench-{mode}-{sslmode}", mode)
            entries = cluster.sync_log()
            logged = [e for e in entries if e.statement is not None
                      and e.application_name.startswith("tls-")]
            agent.wait_audit_settled(expected=None, timeout=60, quiet=3.0)
            metrics = agent.scrape()
        finally:
            stopped = stop_agent(agent)
        if stopped is not None:
            return stopped
        stderr = agent.stderr

    records, bad = read_audit(audit_path)
    problems.extend(bad)
    ours = [r for r in records if str(r.get("db.client.application_name", "")).startswith("tls-")]

    # 1. Every statement the server logged, once, on the backend that ran it.
    want = collections.Counter((e.pid, norm(e.statement)) for e in logged)
    got = collections.Counter((r.get("process.pid"), norm(r.get("db.query.text"))) for r in ours)
    for k in sorted(set(want) | set(got), key=str):
        if want[k] != got[k]:
            problems.append(f"pid {k[0]} {short(k[1])}: server logged {want[k]}, "
                            f"audited {got[k]}")

    # 2. TLS and plaintext give the same records.
    def of(app):
        return [tuple(shape(r.get(f)) if f == "db.query.text" and "bench" in app else r.get(f)
                      for f in FIELDS)
                for r in ours if r.get("db.client.application_name") == app]

    for kind in ("psql", "bench-simple", "bench-extended"):
        plain, tls = of(f"tls-{kind}-disable"), of(f"tls-{kind}-require")
        if not plain:
            problems.append(f"{kind}: no plaintext records")
        if kind == "psql":
            # The first statement's answer is the point of the test: 'f' vs 't', same shape.
            if plain != tls:
                for i, (a, b) in enumerate(zip(plain, tls)):
                    if a != b:
                        problems.append(f"{kind} record {i}: plaintext {short(a)} "
                                        f"vs TLS {short(b)}")
                if len(plain) != len(tls):
                    problems.append(f"{kind}: {len(plain)} plaintext records, {len(tls)} TLS")
        elif collections.Counter(plain) != collections.Counter(tls):
            problems.append(f"{kind}: plaintext and TLS records differ: "
                            f"{collections.Counter(plain) - collections.Counter(tls)} vs "
                            f"{collections.Counter(tls) - collections.Counter(plain)}")

    # 3. One connection id per session; the big query whole.
    by_pid = collections.defaultdict(set)
    for r in ours:
        by_pid[r.get("process.pid")].add(r.get("connection_id"))
        if r.get("dbwarden.capture_gap"):
            problems.append(f"capture gap on {short(r.get('db.query.text'))}")
    for pid, ids in by_pid.items():
        if len(ids) != 1:
            problems.append(f"backend {pid}: connection ids {ids}")
    big = [r for r in ours if str(r.get("db.query.text", "")).startswith("SELECT length('x")]
    if len(big) != 2 or any(len(norm(r["db.query.text"])) != BIG_QUERY_BYTES
                            + len("SELECT length('')") for r in big):
        problems.append(f"big query: {[len(r.get('db.query.text', '')) for r in big]} "
                        "(want two whole copies)")

    # 4. No ciphertext decoded, nothing lost.
    for name in ("dbwarden_decoder_errors_total", "dbwarden_capture_gaps_total"):
        v = agent.metric_sum(name, metrics)
        if v:
            problems.append(f"{name} is {v}")
    tls_lines = [line for line in stderr.splitlines() if "TLS: " in line]
    if not any("TLS: hooked" in line for line in tls_lines):
        problems.append("the agent never said it hooked libssl")
    # 5. Probe placement: on this machine's libssl the per-statement calls need no
    # single-step (userspace/capture/tls_probe_sites.h); the counters reach the metrics.
    sites = [line for line in tls_lines if "TLS: probe sites in" in line]
    if not sites:
        problems.append("the agent never said where it put the libssl probes")
    for line in sites:
        if "/usr/lib/x86_64-linux-gnu/libssl.so.3" not in line:
            continue
        for fn in ("SSL_read", "SSL_write"):
            if not re.search(rf"\b{fn} entry \+\d+, returns( \+\d+)+", line):
                problems.append(f"{fn} not on emulated probe sites: {short(line)}")
    if not agent.metric_sum("dbwarden_tls_events_total", metrics):
        problems.append("dbwarden_tls_events_total is 0 or absent")
    last = next((line for line in reversed(tls_lines) if "not captured" in line), "")
    m = re.search(r"(\d+) connection\(s\) decrypted, (\d+) call\(s\) on an unknown SSL\*, "
                  r"(\d+) connection\(s\) not captured", last)
    if not m:
        problems.append(f"no TLS counters line in the agent's log: {short(last)}")
    else:
        if int(m.group(2)) or int(m.group(3)):
            problems.append(f"TLS loss counted: {last}")
        # psql, and pgbench's 2 clients plus its own connection, twice.
        if int(m.group(1)) < 7:
            problems.append(f"fewer TLS connections than made: {last}")

    log(f"{len(logged)} statements logged by the server, {len(ours)} audited; {last}")
    if problems:
        for p in problems[:60]:
            print(f"  - {p}")
        print("agent stderr (TLS lines):\n" + "\n".join(tls_lines[-20:]))
        print("FAIL")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
