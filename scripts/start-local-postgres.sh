#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# `make run` watches the host's PostgreSQL. If Debian's cluster exists but is
# down (no systemd, or just installed), start it so there is something to see.
set -eu
command -v pg_lsclusters >/dev/null 2>&1 || { echo "start-local-postgres: no PostgreSQL installed"; exit 0; }
if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
  echo "start-local-postgres: creating cluster 15/main"
  pg_createcluster 15 main >/dev/null
fi
pg_lsclusters -h | while read -r ver name port status _; do
  case "$status" in
    online*) echo "start-local-postgres: cluster $ver/$name is running on port $port" ;;
    *) echo "start-local-postgres: starting cluster $ver/$name on port $port"
       pg_ctlcluster "$ver" "$name" start ;;
  esac
done
