#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Lints the exporter's text exposition with Prometheus' own checker. Fails on
# any output from promtool (lint warnings included), not only on its exit code.
# Usage: metrics_promtool.sh <path to metrics_selfcheck>
set -eu
selfcheck=${1:?usage: $0 <metrics_selfcheck>}
promtool=${PROMTOOL:-/usr/bin/promtool}
if [ ! -x "$promtool" ]; then
  echo "promtool not found at $promtool (Debian package: prometheus)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$selfcheck" > "$tmp/metrics.txt"
if ! grep -q '^dbwarden_statements_total{' "$tmp/metrics.txt"; then
  echo "metrics_selfcheck printed no dbwarden_statements_total series" >&2
  exit 1
fi
rc=0
"$promtool" check metrics < "$tmp/metrics.txt" > "$tmp/promtool.txt" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$tmp/promtool.txt" ]; then
  echo "promtool check metrics failed (exit $rc):" >&2
  cat "$tmp/promtool.txt" >&2
  exit 1
fi
echo "promtool check metrics: clean ($(grep -vc '^#' "$tmp/metrics.txt") samples)"
