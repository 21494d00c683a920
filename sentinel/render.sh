#!/bin/sh
# Render sentinel.conf (template) into a writable file, then exec Sentinel on it.
# Usage: render.sh TEMPLATE OUTPUT [exec]    -- with "exec", start redis-sentinel afterwards.
set -eu
template=$1 out=$2
vars="SENTINEL_PORT SENTINEL_BIND SENTINEL_DIR SENTINEL_ANNOUNCE_IP SENTINEL_PASSWORD
REDIS_MASTER_NAME REDIS_MASTER_HOST REDIS_MASTER_PORT SENTINEL_QUORUM REDIS_PASSWORD
SENTINEL_DOWN_AFTER_MS SENTINEL_FAILOVER_TIMEOUT_MS"
script=""
for v in $vars; do
  eval "val=\${$v:?render.sh: $v is not set}"
  # Values go into double-quoted Redis strings (passwords may hold spaces, quotes or
  # backslashes): escape \ and " for Redis, then \, & and the delimiter | for sed.
  quoted=$(printf '%s' "$val" | sed -e 's/[\\"]/\\&/g')
  esc=$(printf '%s' "$quoted" | sed -e 's/[\\/&|]/\\&/g')
  script="$script s|\${$v}|$esc|g;"
done
# Keep a config Sentinel already rewrote (it holds the current master and epoch).
if [ ! -s "$out" ]; then
  sed -e "$script" "$template" > "$out"
fi
if [ "${3:-}" = "exec" ]; then
  exec redis-server "$out" --sentinel
fi
