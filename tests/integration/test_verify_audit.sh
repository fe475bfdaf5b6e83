#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# `dbwarden verify-audit` against logs written by the real JsonlWriter
# (audit_log_writer), tampered with by sed, dd and rm.
#   test_verify_audit.sh AUDIT_LOG_WRITER VERIFY-COMMAND...
# e.g. test_verify_audit.sh ./audit_log_writer ./dbwarden verify-audit
set -u
writer=$1
shift
work=$(mktemp -d /tmp/dbw-verify-audit-XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0

# expect CODE PATTERN ARGS...: runs the verifier, checks exit code and output.
expect() {
  code=$1
  pattern=$2
  shift 2
  "$@" >"$work/out" 2>&1
  got=$?
  if [ "$got" -ne "$code" ] || ! grep -q -- "$pattern" "$work/out"; then
    echo "FAIL: $* -> exit $got (want $code), output:"
    sed 's/^/    /' "$work/out"
    echo "    (wanted /$pattern/)"
    failures=$((failures + 1))
  else
    echo "ok: exit $got: $(grep -- "$pattern" "$work/out" | head -n 1)"
  fi
}

# fresh NAME [ROTATE_BYTES [KEY]]: a new log of 40 statements in $work/NAME (the
# writer adds a checkpoint at open and after every 10 records).
fresh() {
  rm -rf "${work:?}/$1"
  "$writer" "$work/$1/audit.jsonl" 40 ${2:-0} ${3:-} || { echo "writer failed"; exit 1; }
}

# Untouched: one file, then a rotated and compressed set plus a restart.
fresh plain
expect 0 "^valid: 45 records (40 statements" "$@" "$work/plain/audit.jsonl"
fresh rot 2500
"$writer" "$work/rot/audit.jsonl" 15 2500 || exit 1
[ "$(ls "$work/rot" | grep -c '\.zst$')" -ge 3 ] || { echo "FAIL: no rotated .zst files"; failures=$((failures + 1)); }
[ "$(stat -c %a "$work/rot")" = 700 ] || { echo "FAIL: directory mode"; failures=$((failures + 1)); }
[ "$(stat -c %a "$work/rot/audit.jsonl")" = 600 ] || { echo "FAIL: file mode"; failures=$((failures + 1)); }
expect 0 "^valid: .*(55 statements" "$@" "$work/rot"

# One byte edited in place.
fresh edit
sed -i 's/"SELECT 17"/"SELECT 71"/' "$work/edit/audit.jsonl"
expect 1 "audit.jsonl:20: edited" "$@" "$work/edit/audit.jsonl"

# A record deleted, two swapped, a forged one inserted.
fresh del
sed -i '10d' "$work/del/audit.jsonl"
expect 1 "audit.jsonl:10: deleted: record seq 9 is missing" "$@" "$work/del/audit.jsonl"
fresh swap
sed -i '12{h;d};13{G}' "$work/swap/audit.jsonl"
expect 1 "audit.jsonl:12: reordered" "$@" "$work/swap/audit.jsonl"
fresh ins
sed -i '20{p;s/SELECT 18/DROP TABLE x/}' "$work/ins/audit.jsonl"
expect 1 "audit.jsonl:21: inserted" "$@" "$work/ins/audit.jsonl"

# Truncated mid-record with dd.
fresh trunc
size=$(stat -c %s "$work/trunc/audit.jsonl")
dd if=/dev/null of="$work/trunc/audit.jsonl" bs=1 seek=$((size - 40)) 2>/dev/null
expect 1 "truncated" "$@" "$work/trunc/audit.jsonl"

# The newest records deleted: valid as a chain, caught by the state file.
fresh tail
head -n -3 "$work/tail/audit.jsonl" >"$work/tail/cut" && cat "$work/tail/cut" >"$work/tail/audit.jsonl"
rm "$work/tail/cut"
expect 0 "^valid" "$@" "$work/tail/audit.jsonl"
expect 1 "missing tail" "$@" --state "$work/tail/audit.jsonl.state" "$work/tail/audit.jsonl"
expect 1 "missing tail" "$@" "$work/tail"

# A whole rotated file removed; a compressed file corrupted.
fresh gone 2500
victim=$(ls "$work/gone" | grep '\.zst$' | sed -n 2p)
rm "$work/gone/$victim"
expect 1 "file missing: '${victim%.zst}'" "$@" "$work/gone"
fresh zcorrupt 2500
victim=$(ls "$work/zcorrupt" | grep '\.zst$' | sed -n 2p)
printf 'XXXX' | dd of="$work/zcorrupt/$victim" bs=1 seek=30 conv=notrunc 2>/dev/null
expect 1 "$victim" "$@" "$work/zcorrupt"

# HMAC: the key is needed, the wrong key fails.
printf '%s\n' "integration-test-key-0123456789" >"$work/key"
printf '%s\n' "another-key-9876543210-abcdef" >"$work/key2"
fresh keyed 0 "$work/key"
expect 0 "^valid" "$@" --hmac-key "$work/key" "$work/keyed"
expect 2 "give the HMAC key" "$@" "$work/keyed"
expect 1 "audit.jsonl:1: edited" "$@" --hmac-key "$work/key2" "$work/keyed/audit.jsonl"

# A SIGKILL while writing and rotating (issue 19): the next writer continues after the last
# complete record (cutting a torn one off), records the crash, and the trail verifies; the
# recovery is listed, not taken for tampering. Then the state file restored from before the
# kill's last records were removed: a log behind its state still fails.
rm -rf "${work:?}/kill"
"$writer" "$work/kill/audit.jsonl" 100000000 300000 &
pid=$!
sleep 1.5
kill -9 "$pid"
wait "$pid" 2>/dev/null
"$writer" "$work/kill/audit.jsonl" 10 300000 || { echo "writer failed after the kill"; exit 1; }
expect 0 "^recovery: .*: the agent restarted after a crash" "$@" "$work/kill"
expect 0 "^valid: .* 1 recovery record" "$@" "$work/kill"
sed -i '$d' "$work/kill/audit.jsonl"
expect 1 "missing tail" "$@" "$work/kill"

# The framed trail (--audit-format zst, issue 16): the same promises at frame granularity.
# (Edits, deletions, reordering and insertion of single frames: tests/unit/audit/frames_test.cc.)
zfresh() {
  rm -rf "${work:?}/$1"
  "$writer" --format zst "$work/$1/audit.jsonl.zst" 40 ${2:-0} ${3:-} || { echo "writer failed"; exit 1; }
}
zfresh zplain
expect 0 "^valid: 45 records (40 statements" "$@" "$work/zplain/audit.jsonl.zst"
[ "$(zstdcat "$work/zplain/audit.jsonl.zst" | grep -c '"db.query.text"')" = 40 ] ||
  { echo "FAIL: zstdcat does not read the framed file as 40 records"; failures=$((failures + 1)); }
zfresh zrot 700
"$writer" --format zst "$work/zrot/audit.jsonl.zst" 15 700 || exit 1
[ "$(ls "$work/zrot" | grep -c 'Z\.zst$')" -ge 2 ] || { echo "FAIL: no rotated framed files"; failures=$((failures + 1)); }
expect 0 "^valid: .*(55 statements" "$@" "$work/zrot"
[ "$(cd "$work/zrot" && zstdcat $(ls | grep 'Z\.zst$' | sort) audit.jsonl.zst | grep -c '"db.query.text"')" = 55 ] ||
  { echo "FAIL: zstdcat does not read the rotated framed trail"; failures=$((failures + 1)); }
zfresh zedit
printf 'XXXX' | dd of="$work/zedit/audit.jsonl.zst" bs=1 seek=30 conv=notrunc 2>/dev/null
expect 1 "audit.jsonl.zst: frame 1 (at byte 0)" "$@" "$work/zedit/audit.jsonl.zst"
zfresh ztrunc
size=$(stat -c %s "$work/ztrunc/audit.jsonl.zst")
dd if=/dev/null of="$work/ztrunc/audit.jsonl.zst" bs=1 seek=$((size - 40)) 2>/dev/null
expect 1 "frame 1 (at byte 0): truncated" "$@" "$work/ztrunc/audit.jsonl.zst"
zfresh ztail
cp "$work/ztail/audit.jsonl.zst" "$work/ztail-copy"
"$writer" --format zst "$work/ztail/audit.jsonl.zst" 5 || exit 1
cp "$work/ztail-copy" "$work/ztail/audit.jsonl.zst"
expect 0 "^valid" "$@" "$work/ztail/audit.jsonl.zst"
expect 1 "missing tail" "$@" "$work/ztail"
zfresh zgone 700
victim=$(ls "$work/zgone" | grep 'Z\.zst$' | sed -n 2p)
rm "$work/zgone/$victim"
expect 1 "file missing: '${victim%.zst}'" "$@" "$work/zgone"
zfresh zkeyed 0 "$work/key"
expect 0 "^valid" "$@" --hmac-key "$work/key" "$work/zkeyed"
expect 2 "give the HMAC key" "$@" "$work/zkeyed"
rm -rf "${work:?}/zkill"
"$writer" --format zst "$work/zkill/audit.jsonl.zst" 100000000 3000000 &
pid=$!
sleep 1.5
kill -9 "$pid"
wait "$pid" 2>/dev/null
"$writer" --format zst "$work/zkill/audit.jsonl.zst" 10 3000000 || { echo "writer failed after the kill"; exit 1; }
expect 0 "^recovery: .*: frame [0-9]*: seq [0-9]* .*the agent restarted after a crash" "$@" "$work/zkill"
expect 0 "^valid: .* 1 recovery record" "$@" "$work/zkill"
zstdcat "$work/zkill/audit.jsonl.zst" >/dev/null ||
  { echo "FAIL: zstdcat does not read the recovered file whole"; failures=$((failures + 1)); }

# Usage errors.
expect 2 "Usage" "$@"
expect 2 "unknown option" "$@" --bogus "$work/plain/audit.jsonl"
expect 2 "cannot access" "$@" "$work/no-such-file"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all verify-audit checks passed"
