#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# The Debian package, end to end, on the real system:
#   test_package.sh BUILD_DIR
# builds the dbwarden target, `cpack -G DEB`, checks the package's contents and
# control data, rates the unit with `systemd-analyze security --offline=yes`,
# `dpkg -i`, `systemd-analyze verify` on the installed unit, then starts the
# installed binary with the unit's own ExecStart command line and config, under
# the unit's capability bounding set and NoNewPrivileges (setpriv), traced with
# strace to check every system call it makes against the unit's
# SystemCallFilter, against a private PostgreSQL. A statement from a client run
# as another user must be audited with that client's executable. Then
# `dpkg -r` while the agent runs: the agent must be gone and so must the binary;
# `dpkg --purge` removes the state directory and keeps the audit log directory.
#
# Root only (it installs into the real system); exits 77 (skip) without root
# unless DBWARDEN_REQUIRE_KERNEL_TESTS=1. Everything is removed again, also on
# failure. Refuses to run (skip) when a dbwarden package is already present.
set -u

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
unit_name=dbwarden.service
installed_unit=/lib/systemd/system/$unit_name
wants_link=/etc/systemd/system/multi-user.target.wants/$unit_name
max_exposure=4.0

skip() {
    if [ "${DBWARDEN_REQUIRE_KERNEL_TESTS:-0}" = 1 ]; then
        echo "FAIL (DBWARDEN_REQUIRE_KERNEL_TESTS=1): $1"
        exit 1
    fi
    echo "SKIP: $1"
    exit 77
}
fail() {
    echo "FAIL: $1"
    exit 1
}

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR"; exit 2; }
build=$(cd "$1" && pwd) || exit 2
[ "$(id -u)" = 0 ] || skip "needs root: it installs the package (dpkg -i) and loads BPF"
for tool in cmake cpack dpkg dpkg-deb systemd-analyze setpriv strace python3 runuser; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
done
if [ -n "$(dpkg-query -W -f '${db:Status-Status}' dbwarden 2>/dev/null | grep -v not-installed)" ]
then
    skip "a dbwarden package is already on this system; not touching it"
fi

# Directories the package creates or keeps: remove at the end only what we made.
made_dirs=""
for d in /var/log/dbwarden /var/lib/dbwarden /etc/dbwarden; do
    [ -e "$d" ] || made_dirs="$made_dirs $d"
done
had_wants_link=no
[ -e "$wants_link" ] && had_wants_link=yes

work=$(mktemp -d /tmp/dbw-package-XXXXXX)
cleanup() {
    status=$?
    if [ -f "$work/agent.pid" ]; then
        pid=$(cat "$work/agent.pid")
        if kill -0 "$pid" 2>/dev/null; then
            echo "cleanup: agent $pid still running, SIGKILL"
            kill -KILL "$pid"
        fi
    fi
    if [ -n "$(dpkg-query -W -f '${db:Status-Status}' dbwarden 2>/dev/null |
               grep -v not-installed)" ]; then
        echo "cleanup: purging the dbwarden package"
        dpkg --purge dbwarden >/dev/null 2>&1 || echo "cleanup: dpkg --purge failed"
    fi
    for d in $made_dirs; do
        # The audit log directory is kept by purge; ours holds nothing (the agent
        # wrote to $work), so rmdir is enough and never deletes a real trail.
        [ -d "$d" ] && { rmdir "$d" 2>/dev/null || echo "cleanup: $d not empty, left"; }
    done
    if [ "$had_wants_link" = no ] && [ -L "$wants_link" ]; then rm -f "$wants_link"; fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- build and package ---------------------------------------------------------------
cmake --build "$build" --target dbwarden >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log"; fail "building dbwarden"; }
(cd "$build" && cpack -G DEB -B "$work/pkg") >"$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log"; fail "cpack -G DEB"; }
deb=$(ls "$work"/pkg/dbwarden_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { cat "$work/cpack.log"; fail "cpack made no dbwarden_*.deb"; }
echo "ok: built $(basename "$deb")"

dpkg-deb -c "$deb" >"$work/contents" || fail "dpkg-deb -c"
for f in ./usr/sbin/dbwarden ./etc/dbwarden/dbwarden.conf ./etc/dbwarden/policy.yaml \
         ./lib/systemd/system/$unit_name; do
    grep -q " $f\$" "$work/contents" || { cat "$work/contents"; fail "package lacks $f"; }
done
grep -q '^-rwxr-xr-x root/root .* ./usr/sbin/dbwarden$' "$work/contents" ||
    fail "/usr/sbin/dbwarden is not root-owned 0755"
echo "ok: contents: binary, config, default policy and unit"
[ "$(dpkg-deb -f "$deb" Package)" = dbwarden ] || fail "package name"
version=$(sed -n 's/^project(dbwarden VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] ||
    fail "package version $(dpkg-deb -f "$deb" Version), project version $version"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libbpf1 libssl3 libzstd1 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
           libboost-program-options1.74.0; do
    echo "$depends" | grep -q "\\b$lib\\b" || fail "Depends lacks $lib: $depends"
done
[ -n "$(dpkg-deb -f "$deb" Maintainer)" ] || fail "no Maintainer"
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles >"$work/conffiles" ||
    fail "no conffiles in the control archive"
grep -qx /etc/dbwarden/dbwarden.conf "$work/conffiles" || fail "config is not a conffile"
grep -qx /etc/dbwarden/policy.yaml "$work/conffiles" || fail "policy is not a conffile"
echo "ok: control: version $version, Depends: $depends"

# --- the unit, as shipped ------------------------------------------------------------------
if systemd-analyze security --help 2>&1 | grep -q -- --offline; then
    systemd-analyze security --offline=yes "$src/packaging/$unit_name" >"$work/security" 2>&1
    exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$work/security")
    [ -n "$exposure" ] || { cat "$work/security"; fail "systemd-analyze security gave no score"; }
    echo "ok: systemd-analyze security --offline=yes: exposure $exposure (limit $max_exposure)"
    awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
        { grep '✗' "$work/security"; fail "exposure $exposure is above $max_exposure"; }
else
    echo "note: this systemd-analyze has no 'security --offline': exposure not rated"
fi

# --- install -----------------------------------------------------------------------------
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log"; fail "dpkg -i"; }
echo "ok: dpkg -i"
[ -x /usr/sbin/dbwarden ] || fail "/usr/sbin/dbwarden not installed"
cmp -s /etc/dbwarden/dbwarden.conf "$src/packaging/dbwarden.conf" ||
    fail "installed config differs from packaging/dbwarden.conf"
cmp -s "$installed_unit" "$src/packaging/$unit_name" || fail "installed unit differs"
cmp -s /etc/dbwarden/policy.yaml "$src/packaging/policy.yaml" ||
    fail "installed policy differs from packaging/policy.yaml"
/usr/sbin/dbwarden policy check /etc/dbwarden/policy.yaml >"$work/policy-check" 2>&1 ||
    { cat "$work/policy-check"; fail "the installed binary rejects the installed policy"; }
echo "ok: $(cat "$work/policy-check")"
for d in /var/log/dbwarden /var/lib/dbwarden; do
    [ "$(stat -c %a "$d")" = 700 ] || fail "$d is not mode 0700"
done
if command -v systemctl >/dev/null 2>&1; then
    [ -L "$wants_link" ] || fail "postinst did not enable $unit_name ($wants_link)"
    echo "ok: unit enabled ($wants_link)"
fi
if [ -d /run/systemd/system ]; then
    echo "note: systemd is running: postinst started the service on port 5432 as configured"
else
    echo "note: systemd is not PID 1 here: postinst enabled the unit and started nothing"
fi

systemd-analyze verify "$installed_unit" >"$work/verify" 2>&1 ||
    { cat "$work/verify"; fail "systemd-analyze verify $installed_unit"; }
if grep -q "$unit_name" "$work/verify"; then
    cat "$work/verify"
    fail "systemd-analyze verify complains about $unit_name"
fi
echo "ok: systemd-analyze verify $installed_unit"

# --- run the installed agent the way the unit does ---------------------------------------
# Debian's interpreter, like the other integration tests: it has the python3-* packages of
# scripts/install-deps.sh (python3-zstandard reads the unit's default, framed trail).
DBW_INTEGRATION_DIR="$here" /usr/bin/python3 - "$installed_unit" "$work" <<'PY' ||
import json, os, re, shlex, subprocess, sys, time

sys.path.insert(0, os.environ["DBW_INTEGRATION_DIR"])
from pg_cluster import (PgCluster, Agent, AgentError, free_port, log,  # noqa: E402
                        read_audit_text)

unit_path, work = sys.argv[1], sys.argv[2]


def unit_settings(path):
    """[Service] key -> list of values, in order (a unit file may repeat a key)."""
    out, section = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                k, v = line.split("=", 1)
                out.setdefault(k.strip(), []).append(v.strip())
    return out


def expand_filter(names, seen=None):
    """systemd syscall-filter names (@groups expanded recursively) -> set of syscalls."""
    seen = set() if seen is None else seen
    calls = set()
    for name in names:
        if not name.startswith("@"):
            calls.add(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        text = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                              stdout=subprocess.PIPE, text=True).stdout
        members = [l.strip() for l in text.splitlines()[1:]
                   if l.strip() and not l.strip().startswith("#")]
        calls |= expand_filter(members, seen)
    return calls


s = unit_settings(unit_path)
exec_start = shlex.split(s["ExecStart"][-1])
caps = s["CapabilityBoundingSet"][-1].split()
assert s.get("NoNewPrivileges", ["no"])[-1] == "yes", "unit lacks NoNewPrivileges=yes"
allowed = expand_filter(" ".join(s["SystemCallFilter"]).split())
bounding = "-all," + ",".join("+" + c.lower().removeprefix("cap_") for c in caps)
strace_out = os.path.join(work, "strace.txt")
# In a sanitizer build the packaged binary carries ASan; LeakSanitizer cannot
# run under ptrace (strace), so leak checking is left to the other tests.
os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
# strace outside, setpriv inside: what is traced after setpriv's execve is the agent alone.
prefix = ["strace", "-f", "-qq", "-s", "0", "-o", strace_out,
          "setpriv", "--no-new-privs", "--inh-caps", "-all", "--bounding-set", bounding, "--"]
# The unit's default audit format (zst: the framed trail), read back through read_audit_text.
audit = os.path.join(work, "audit", "audit.jsonl.zst")
state = os.path.join(work, "state")
log(f"unit ExecStart: {exec_start}; bounding set {bounding}")


class UnitAgent(Agent):
    """The unit's command line; only ports and paths are pointed at the test's own."""

    def command(self):
        return prefix + exec_start + [
            "--postgres-port", str(self.pg_ports[0]), "--audit-file", self.audit_file,
            "--metrics-address", f"127.0.0.1:{self.metrics_port}", "--audit-state-dir", state]


tag = f"dbw-package-{os.getpid()}-{time.monotonic_ns()}"
with PgCluster() as cluster:
    # The unit's default pin directory, left pinned by the agent: the package's
    # prerm must detach it (checked after dpkg -r below), not the harness.
    agent = UnitAgent("/usr/sbin/dbwarden", audit, [cluster.port], keep_pins=True)
    agent.start()
    try:
        with open(os.path.join(work, "agent.pid"), "w") as f:
            f.write(str(agent.pid))
        # A client of another user over TCP: its executable is read from /proc/<pid>/exe,
        # which needs the unit's CAP_SYS_PTRACE. It stays for 3 s after the tagged
        # statement so that the traced (slower) agent still finds it.
        env = cluster.client_env(tcp=True)
        r = subprocess.run(["runuser", "-u", "nobody", "--", "psql", "-X", "-q", "-c",
                            f"SELECT '{tag}'", "-c", "SELECT pg_sleep(3)"], env=env, cwd="/", text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 0, f"psql as nobody failed: {r.stderr}"
        agent.wait_audit_settled(expected=1, timeout=30)
        time.sleep(1.5)  # the writer flushes on a timer
        # dpkg -r with the agent running: prerm must stop it (systemctl stop under
        # systemd, start-stop-daemon --exec otherwise), then the binary goes.
        r = subprocess.run(["dpkg", "-r", "dbwarden"], text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        assert r.returncode == 0, f"dpkg -r failed: {r.stdout}"
        log("dpkg -r done")
        try:
            agent.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"agent {agent.pid} still running after dpkg -r")
        code = agent.proc.returncode
        agent._terminate()
        assert code == 0, f"agent exited with {code} after dpkg -r:\n{agent.stderr}"
    except BaseException:
        log("agent stderr:\n" + agent.stderr)
        agent._terminate()
        raise

records = [json.loads(line) for line in read_audit_text(audit).splitlines()]
mine = [r for r in records if tag in json.dumps(r)]
assert mine, f"statement {tag} not in the audit log ({len(records)} records)"
exe = mine[0].get("client.process.executable.path", "")
assert exe.endswith("/psql"), f"client executable not resolved: {mine[0]}"
assert mine[0].get("client.user.name") == "nobody", f"client user: {mine[0]}"
log(f"audited: {tag} from {exe} as nobody")
assert os.stat(os.path.dirname(audit)).st_mode & 0o777 == 0o700, "audit dir mode"
assert os.path.isdir(state) and os.listdir(state), "no chain state in --audit-state-dir"

used, started = set(), False
call = re.compile(r"^\d+\s+([a-z0-9_]+)\(")
with open(strace_out) as f:
    for line in f:
        if not started:
            started = 'execve("/usr/sbin/dbwarden"' in line
            continue
        m = call.match(line)
        if m:
            used.add(m.group(1))
outside = sorted(used - allowed)
assert used, "strace saw no system calls"
assert not outside, f"the agent uses system calls the unit's SystemCallFilter denies: {outside}"
log(f"{len(used)} distinct system calls, all allowed by SystemCallFilter")
PY
    fail "installed agent run"
echo "ok: installed agent ran with the unit's command line, caps and syscall filter; audited"

# --- removal -------------------------------------------------------------------------------
[ -e /usr/sbin/dbwarden ] && fail "dpkg -r left /usr/sbin/dbwarden"
[ -e "$installed_unit" ] && fail "dpkg -r left $installed_unit"
[ -f /etc/dbwarden/dbwarden.conf ] || fail "dpkg -r removed the conffile (only purge may)"
[ -f /etc/dbwarden/policy.yaml ] || fail "dpkg -r removed the policy (only purge may)"
if [ "$had_wants_link" = no ] && [ -e "$wants_link" ]; then fail "prerm left $wants_link"; fi
left=$(for p in /proc/[0-9]*; do
           [ "$(readlink "$p/exe" 2>/dev/null)" = "/usr/sbin/dbwarden (deleted)" ] && echo "${p#/proc/}"
       done)
[ -z "$left" ] || fail "dbwarden process(es) still running after dpkg -r: $left"
[ -e /sys/fs/bpf/dbwarden ] && fail "dpkg -r left the pinned capture in /sys/fs/bpf/dbwarden"
echo "ok: dpkg -r: agent stopped, binary and unit gone, pins detached, conffile kept"
dpkg --purge dbwarden >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
[ -e /etc/dbwarden/dbwarden.conf ] && fail "purge left the conffile"
[ -e /etc/dbwarden/policy.yaml ] && fail "purge left the policy"
[ -e /var/lib/dbwarden ] && fail "purge left /var/lib/dbwarden"
[ -d /var/log/dbwarden ] || fail "purge removed /var/log/dbwarden (audit evidence must stay)"
echo "ok: dpkg --purge: config and state gone, audit log directory kept"
echo "PASS"
