#!/bin/sh
# Start a Redis data node (docker-compose, Swarm and the local stack use this same script).
# A node that restarts must never come back as a second, empty or stale master (an old
# master restarted as master claims that role for ~10 s, and with an empty or stale dataset
# its replicas would copy it): it asks the Sentinels who the master is and starts as its
# replica; only when no Sentinel answers does it fall back to REDIS_INITIAL_MASTER.
# Passwords are read from files in REDIS_SECRETS_DIR (Docker secrets, or the local stack's
# secrets dir), never taken from the environment or put on the command line.
# Env: REDIS_CONF REDIS_PORT REDIS_DIR REDIS_BIND REDIS_ANNOUNCE_IP REDIS_SECRETS_DIR
#      REDIS_SENTINELS (host:port,...) REDIS_MASTER_NAME REDIS_INITIAL_MASTER
#      [REDIS_ACL (the users.acl template; default: next to REDIS_CONF)]
#      [REDIS_SELF_WAIT_S (default 0)]
set -eu
umask 077
: "${REDIS_CONF:?}" "${REDIS_PORT:?}" "${REDIS_DIR:?}" "${REDIS_SECRETS_DIR:?}"
: "${REDIS_INITIAL_MASTER:?}" "${REDIS_ANNOUNCE_IP:?}"
acl_template=${REDIS_ACL:-$(dirname "$REDIS_CONF")/users.acl}
secret() { tr -d '\r\n' < "$REDIS_SECRETS_DIR/$1"; }

# A Sentinel that names this very node is stale (this node is down, so it cannot be the
# master they fail over to) unless no Sentinel names another one (a cold restart of all).
# REDIS_SELF_WAIT_S: how long to wait for the Sentinels to name another master while they
# still name this node, if it has data (containers restart a killed master at once, before
# the Sentinels even noticed; starting as the master then would lose what its AOF had not
# yet written). A node without data is a first start: the Sentinels name it from their
# config, nobody else can be the master.
sentinel_auth=$(secret sentinel-app)
ask_sentinels() {
  master="" self=""
  for s in $(printf '%s' "${REDIS_SENTINELS:-}" | tr ',' ' '); do
    reply=$(REDISCLI_AUTH="$sentinel_auth" timeout 2 redis-cli --no-auth-warning --user app \
            -h "${s%:*}" -p "${s##*:}" --raw \
            sentinel get-master-addr-by-name "${REDIS_MASTER_NAME:-mymaster}" 2>/dev/null || true)
    set -- $reply
    [ $# -eq 2 ] || continue
    if [ "$1:$2" = "$REDIS_ANNOUNCE_IP:$REDIS_PORT" ]; then self="$1:$2"; continue; fi
    master="$1:$2"; break
  done
}
waited=0
if [ ! -e "$REDIS_DIR/appendonlydir" ] && [ ! -e "$REDIS_DIR/dump.rdb" ]; then
  REDIS_SELF_WAIT_S=0
fi
ask_sentinels
while [ -z "$master" ] && [ -n "$self" ] && [ "$waited" -lt "${REDIS_SELF_WAIT_S:-0}" ]; do
  [ "$waited" -eq 0 ] && echo "start.sh: the Sentinels still name this node; waiting" >&2
  sleep 1
  waited=$((waited + 1))
  ask_sentinels
done
[ -n "$master" ] || master="${self:-$REDIS_INITIAL_MASTER}"
set -- --port "$REDIS_PORT" --dir "$REDIS_DIR" --bind "${REDIS_BIND:-0.0.0.0}" \
       --replica-announce-ip "$REDIS_ANNOUNCE_IP" --replica-announce-port "$REDIS_PORT"
if [ "$master" != "$REDIS_ANNOUNCE_IP:$REDIS_PORT" ]; then
  set -- "$@" --replicaof "${master%:*}" "${master##*:}"
  echo "start.sh: starting as a replica of $master" >&2
else
  echo "start.sh: starting as the master" >&2
fi
mkdir -p "$REDIS_DIR"

# The ACL users, with each %NAME% replaced by the SHA-256 of the secret file NAME (an ACL
# file allows no comments: they are dropped).
script=""
for name in $(grep -o '%[a-z0-9-]*%' "$acl_template" | tr -d % | sort -u); do
  hash=$(printf '%s' "$(secret "$name")" | sha256sum | cut -d ' ' -f 1)
  script="$script s|%$name%|$hash|g;"
done
sed -e "$script" -e '/^#/d' -e '/^ *$/d' "$acl_template" > "$REDIS_DIR/users.acl"

# A fresh writable copy on every start: Sentinel sends CONFIG REWRITE, which must neither
# touch the shared file nor leave a stale "replicaof" for the next start.
# (cat, not cp: in Swarm the config is a read-only file, and its mode must not be copied.)
rm -f "$REDIS_DIR/redis.conf"
cat "$REDIS_CONF" > "$REDIS_DIR/redis.conf"
replication=$(secret redis-replication | sed -e 's/[\\"]/\\&/g')
cat >> "$REDIS_DIR/redis.conf" <<CONF
aclfile $REDIS_DIR/users.acl
# Replicas log in to the master as the replication user.
masteruser replica
masterauth "$replication"
CONF
exec redis-server "$REDIS_DIR/redis.conf" "$@"
