#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Static analysis of the project's C++: cppcheck always, clang-tidy (bugprone and
# performance checks) when a compile_commands.json is given. Exit non-zero on
# any finding. Usage: scripts/lint.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
sources="$(ls agent/*.cc userspace/*/*.cc userspace/protocol/*/*.cc)"

# cppcheck: "Cyclic reverse analysis" is cppcheck giving up on prometheus-cpp's
# builder chain in exporter.cc, not a finding.
cppcheck --std=c++20 --enable=warning,performance,portability --quiet --inline-suppr \
  -I userspace -I bpf -I . --suppress=missingIncludeSystem \
  --suppress=cppcheckError:userspace/metrics/exporter.cc --error-exitcode=1 agent userspace
echo "lint: cppcheck clean"

# Catch2 test names: ctest's test discovery splits a name at ';', so such a test would be
# registered under a fragment that matches no test case and "pass" without running.
bad="$(grep -rn -E 'TEST_CASE\("[^"]*;' tests/unit || true)"
if [ -n "$bad" ]; then
  echo "$bad"
  echo "lint: a TEST_CASE name holds ';' (ctest would run nothing for it)"
  exit 1
fi

# clang-tidy: bugprone and performance checks, less those that flag the
# project's deliberate idioms: parallel branches in protocol state machines
# (branch-clone), int constants multiplied into size_t (implicit-widening),
# memchr over length-delimited buffers (not-null-terminated-result), and
# string building in error paths (inefficient-string-concatenation).
checks='-*,bugprone-*,performance-*,-bugprone-easily-swappable-parameters'
checks="$checks,-bugprone-narrowing-conversions,-bugprone-branch-clone"
checks="$checks,-bugprone-implicit-widening-of-multiplication-result"
checks="$checks,-bugprone-not-null-terminated-result,-performance-inefficient-string-concatenation"
if [ $# -ge 1 ] && [ -f "$1/compile_commands.json" ]; then
  out="$(clang-tidy -p "$1" --quiet --checks="$checks" \
    $sources 2>/dev/null | grep -E '^/.*: (warning|error):' || true)"
  if [ -n "$out" ]; then
    echo "$out"
    echo "lint: clang-tidy findings above"
    exit 1
  fi
  echo "lint: clang-tidy clean"
fi
