#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Installs every Debian 12 package dbwarden needs to build, run and test, and
# prepares the kernel interfaces it uses. Idempotent: installs only what is
# missing, so running it again costs a dpkg query.
set -eu

# Build: compilers, CMake, BPF toolchain (clang -target bpf, bpftool for
# vmlinux.h and skeletons, libbpf), and the libraries the agent links
# (libyaml-cpp-dev and libre2-dev: the enforcement policy file and its regexes;
# libhyperscan-dev: the masking detectors' multi-pattern engine; libcpp-httplib-dev: the
# approvals HTTP API and web inbox, HTTPS through the OpenSSL it is built with;
# libcurl4-openssl-dev: the approvals webhook's HTTP(S) client).
BUILD_PACKAGES="cmake make pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  libssl-dev prometheus-cpp-dev libboost-program-options-dev nlohmann-json3-dev libzstd-dev
  libpg-query-dev libcapstone-dev libyaml-cpp-dev libre2-dev libhyperscan-dev
  libcpp-httplib-dev libcurl4-openssl-dev"
# Tests: Catch2, libFuzzer, real PostgreSQL and MariaDB servers with their
# clients (psql/pgbench, mariadb), the Python drivers, the MariaDB C API for our own
# prepared-statement test client, and promtool (package
# prometheus) to lint the metrics; libpq-dev for the pipeline-mode test client;
# pgbouncer for the server-restart test (a transaction pool in front of PostgreSQL);
# python3-zstandard for the tests that read the framed audit trail (audit.jsonl.zst);
# chromium, chromium-driver and python3-selenium: the approvals web inbox driven in a real
# headless browser.
TEST_PACKAGES="catch2 libfuzzer-14-dev libclang-rt-14-dev postgresql postgresql-contrib
  postgresql-client python3 python3-psycopg2 mariadb-server mariadb-client python3-pymysql
  libmariadb-dev python3-zstandard
  prometheus rsyslog procps iproute2 util-linux libpq-dev pgbouncer
  chromium chromium-driver python3-selenium"
# Packaging test: CPack's DEB generator (dpkg-shlibdeps from dpkg-dev, file,
# strip from binutils), systemd-analyze, and strace to check the unit's
# system-call filter against what the agent really calls.
PACKAGE_PACKAGES="dpkg-dev file binutils systemd strace"
# Benchmarks: PgBouncer, the baseline the enforcement proxy is compared with
# (bench/proxy_pgbench.py, bench/proxy_memory.py); pgAudit, the audit a PostgreSQL
# user has today, which bench/compare_audit.py compares the agent with.
BENCH_PACKAGES="pgbouncer postgresql-15-pgaudit"

missing=""
for pkg in $BUILD_PACKAGES $TEST_PACKAGES $PACKAGE_PACKAGES $BENCH_PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $pkg"
  fi
done

if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing; run as root (sudo make ...)" >&2
    exit 1
  fi
  echo "install-deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "install-deps: all packages present"
fi

# Kernel interfaces: tracefs for tracepoints, bpffs for pinned maps.
if [ "$(id -u)" -eq 0 ]; then
  if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null ||
      { echo "install-deps: could not mount tracefs on /sys/kernel/tracing" >&2; exit 1; }
  fi
  if ! grep -q " /sys/fs/bpf bpf " /proc/mounts; then
    mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "install-deps: note: bpffs not mounted" >&2
  fi
fi
