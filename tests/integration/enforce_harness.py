# SPDX-License-Identifier: Apache-2.0
"""What the enforcement tests share: an enforcing agent (`dbwarden run --mode enforce`) with
its private steering and capture pin directories, its proxy sockets in the test's work
directory, and the teardown that leaves no steering behind.

Used by test_enforce.py, test_enforce_tls.py, test_enforce_unix_aliases.py and
test_enforce_transparency.py. Fail mode closed keeps steering (and the socket locks) after a
clean stop, by design: an agent with keep_pins=False removes both pin directories when it
stops (pg_cluster.Agent.detach); one with keep_pins=True is torn down by teardown().
"""

import os
import signal
import subprocess

from pg_cluster import Agent, log


def enforce_args(workdir, policy, fail_mode="closed", mysql_port=None, tls=None,
                 observer=None):
    """The enforce-mode arguments of `dbwarden run`: policy, fail mode, the proxy's sockets in
    `workdir`/proxy, MariaDB's port, the proxy's TLS (certificate, key) and
    --enforce-observer when given."""
    proxy_dir = os.path.join(workdir, "proxy")
    os.makedirs(proxy_dir, exist_ok=True)
    args = ["--mode", "enforce", "--policy", policy, "--fail-mode", fail_mode,
            "--proxy-socket-dir", proxy_dir]
    if mysql_port is not None:
        args += ["--mysql-port", str(mysql_port)]
    if tls:
        args += ["--proxy-tls-cert-file", tls[0], "--proxy-tls-key-file", tls[1]]
    if observer is not None:
        args += ["--enforce-observer", observer]
    return args


class EnforceAgent(Agent):
    """An enforcing agent on the cluster's ports. Its steering pins live in steer_dir (a
    private directory unless given: a restarted agent takes its predecessor's, with pin_dir,
    to resume)."""

    def __init__(self, exe, audit_file, pg_ports, workdir, policy, fail_mode="closed",
                 mysql_port=None, tls=None, observer=None, extra_args=None, **kw):
        super().__init__(exe, audit_file, pg_ports,
                         extra_args=enforce_args(workdir, policy, fail_mode, mysql_port, tls,
                                                 observer) + list(extra_args or []), **kw)

    def steering(self, command):
        """`dbwarden steering COMMAND` on this agent's steering pins."""
        return subprocess.run([self.exe, "steering", command, "--steer-pin-dir",
                               self.steer_dir], text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)

    def kill(self):
        """kill -9, as a crash: the pins stay (the fail mode applies)."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()

    def teardown(self):
        """Whatever happened: the process ends and both pin directories go, so that no
        steering or socket lock outlives the test."""
        if self.alive():
            self.kill()
        r = self.detach(check=False)
        if r.returncode != 0:
            log(f"detaching {self.pin_dir} and {self.steer_dir} failed: {r.stderr.strip()}")
