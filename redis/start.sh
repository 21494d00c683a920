#!/bin/sh
# Start a Redis data node (docker-compose and the local stack use this same script).
# A node that restarts must never come back as a second, empty or stale master
# (an old master restarted as master claims that role for ~10 s, and with an empty or stale
# dataset its replicas would copy it): it asks the Sentinels who the master is and starts as its
# replica; only when no Sentinel answers does it fall back to REDIS_INITIAL_MASTER.
# Env: REDIS_CONF REDIS_PORT REDIS_DIR REDIS_BIND REDIS_ANNOUNCE_IP REDIS_PASSWORD
#      REDIS_SENTINELS (host:port,...) SENTINEL_PASSWORD REDIS_MASTER_NAME REDIS_INITIAL_MASTER
#      REDIS_SELF_WAIT_S (default 0)
set -eu
: "${REDIS_CONF:?}" "${REDIS_PORT:?}" "${REDIS_DIR:?}" "${REDIS_PASSWORD:?}"
: "${REDIS_INITIAL_MASTER:?}" "${REDIS_ANNOUNCE_IP:?}"
# A Sentinel that names this very node is stale (this node is down, so it cannot be the
# master they fail over to) unless no Sentinel names another one (a cold restart of all).
# REDIS_SELF_WAIT_S: how long to wait for the Sentinels to name another master while they
# still name this node (containers restart a killed master at once, before the Sentinels
# even noticed; starting as the master then would lose what its AOF had not yet written).
ask_sentinels() {
  master="" self=""
  for s in $(printf '%s' "${REDIS_SENTINELS:-}" | tr ',' ' '); do
    reply=$(REDISCLI_AUTH="${SENTINEL_PASSWORD:-}" timeout 2 redis-cli --no-auth-warning \
            -h "${s%:*}" -p "${s##*:}" --raw \
            sentinel get-master-addr-by-name "${REDIS_MASTER_NAME:-mymaster}" 2>/dev/null || true)
    set -- $reply
    [ $# -eq 2 ] || continue
    if [ "$1:$2" = "$REDIS_ANNOUNCE_IP:$REDIS_PORT" ]; then self="$1:$2"; continue; fi
    master="$1:$2"; break
  done
}
waited=0
ask_sentinels
while [ -z "$master" ] && [ -n "$self" ] && [ "$waited" -lt "${REDIS_SELF_WAIT_S:-0}" ]; do
  [ "$waited" -eq 0 ] && echo "start.sh: the Sentinels still name this node; waiting" >&2
  sleep 1
  waited=$((waited + 1))
  ask_sentinels
done
[ -n "$master" ] || master="${self:-$REDIS_INITIAL_MASTER}"
set -- --port "$REDIS_PORT" --dir "$REDIS_DIR" --bind "${REDIS_BIND:-0.0.0.0}" \
       --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" \
       --replica-announce-ip "$REDIS_ANNOUNCE_IP" --replica-announce-port "$REDIS_PORT"
if [ "$master" != "$REDIS_ANNOUNCE_IP:$REDIS_PORT" ]; then
  set -- "$@" --replicaof "${master%:*}" "${master##*:}"
  echo "start.sh: starting as a replica of $master" >&2
else
  echo "start.sh: starting as the master" >&2
fi
mkdir -p "$REDIS_DIR"
# A fresh writable copy on every start: Sentinel sends CONFIG REWRITE, which must neither
# touch the shared file nor leave a stale "replicaof" for the next start.
cp "$REDIS_CONF" "$REDIS_DIR/redis.conf"
exec redis-server "$REDIS_DIR/redis.conf" "$@"
