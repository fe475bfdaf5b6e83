#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds and runs the uprobe scoping experiment of bench/README.md ("TLS: per-process uprobes").
# Needs root. Usage: sudo bench/uprobe_scope/run.sh [repetitions]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d /tmp/uprobe_scope.XXXXXX)
reps=${1:-7}
clang -O0 -fcf-protection=none -o "$out/target" "$here/target.c"
clang -O2 -g -target bpf -I/usr/include/"$(uname -m)"-linux-gnu -c "$here/count.bpf.c" \
  -o "$out/count.bpf.o"
clang -O2 -Wall -o "$out/uprobe_scope" "$here/uprobe_scope.c" -lbpf
# File offset of hit(): its address minus its LOAD segment's address plus that segment's offset.
addr=$(nm "$out/target" | awk '$3 == "hit" { print $1 }')
offset=$(readelf -lW "$out/target" | awk -v a=$((0x$addr)) '$1 == "LOAD" {
  o = strtonum($2); v = strtonum($3); s = strtonum($5)
  if (a >= v && a < v + s) printf "0x%x\n", a - v + o }')
export UPEXP_BPF_OBJ="$out/count.bpf.o"
run() { "$out/uprobe_scope" "$out/target" "$offset" "$@"; }

echo "== per-pid + inherit, path pointer valid only in the loader"
run scope
echo "== per-pid + inherit, path at the same address in loader and target"
UPEXP_FIXED=1 run scope
echo "== same, the forked child execs a shell that forks"
UPEXP_FIXED=1 UPEXP_EXEC=1 run scope 2>&1
echo "== same, with attr.remove_on_exec"
UPEXP_FIXED=1 UPEXP_EXEC=1 UPEXP_RMEXEC=1 run scope 2>&1
echo "== per-hit cost: min and median ns/call of $reps runs, 200000 calls each"
for m in "1 none" "1 system" "1 perpid" "10 perpid" "50 perpid" "200 perpid"; do
  set -- $m
  for i in $(seq "$reps"); do run cost "$1" 200000 "$2" | head -1 | awk '{print $(NF-1)}'; done |
    sort -n | awk -v m="$2 k=$1" '{ v[NR] = $1 } END { print m ": min " v[1] " median " v[int((NR + 1) / 2)] " ns/call" }'
done
rm -rf "$out"
