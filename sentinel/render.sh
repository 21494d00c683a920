#!/bin/sh
# Render sentinel.conf (template) into a writable file, then exec Sentinel on it.
# Usage: render.sh TEMPLATE OUTPUT [exec]    -- with "exec", start redis-sentinel afterwards.
# Passwords come from files in SENTINEL_SECRETS_DIR (sentinel-admin, sentinel-peer,
# sentinel-app, sentinel-exporter, redis-sentinel), never from the environment.
set -eu
umask 077
template=$1 out=$2
: "${SENTINEL_SECRETS_DIR:?render.sh: SENTINEL_SECRETS_DIR is not set}"
secret() { tr -d '\r\n' < "$SENTINEL_SECRETS_DIR/$1"; }
hash() { printf '%s' "$(secret "$1")" | sha256sum | cut -d ' ' -f 1; }
SENTINEL_ADMIN_HASH=$(hash sentinel-admin)
SENTINEL_PEER_HASH=$(hash sentinel-peer)
SENTINEL_APP_HASH=$(hash sentinel-app)
SENTINEL_EXPORTER_HASH=$(hash sentinel-exporter)
SENTINEL_PEER_PASSWORD=$(secret sentinel-peer)
REDIS_SENTINEL_PASSWORD=$(secret redis-sentinel)
vars="SENTINEL_PORT SENTINEL_BIND SENTINEL_DIR SENTINEL_ANNOUNCE_IP REDIS_MASTER_NAME
REDIS_MASTER_HOST REDIS_MASTER_PORT SENTINEL_QUORUM SENTINEL_DOWN_AFTER_MS
SENTINEL_FAILOVER_TIMEOUT_MS SENTINEL_ADMIN_HASH SENTINEL_PEER_HASH SENTINEL_APP_HASH
SENTINEL_EXPORTER_HASH SENTINEL_PEER_PASSWORD REDIS_SENTINEL_PASSWORD"
script=""
for v in $vars; do
  eval "val=\${$v:?render.sh: $v is not set}"
  # Values may go into double-quoted Redis strings (passwords may hold spaces, quotes or
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
