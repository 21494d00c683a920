#!/bin/sh
# Every secret of a deployment, one file each, in DIR (default /run/secrets): compose's
# one-shot `secrets` service runs this into the volume all other services mount read-only;
# for Swarm, ops/swarm/secrets.sh runs it into a private directory and creates a Docker
# secret from each file. Existing files are never changed.
#   secrets-init.sh [DIR] [--hostname NAME ...]
set -eu
dir=${1:-/run/secrets}
[ $# -gt 0 ] && shift
votectl secrets init --dir "$dir" "$@" >&2
# Connection strings that embed a password, derived from the password files.
# TODO(security): drop these once the apps take the database password as a file of its own.
derive() {  # NAME VALUE
  [ -e "$dir/$1" ] || (umask 077 && printf '%s' "$2" > "$dir/$1")
}
pw() { cat "$dir/$1"; }
derive database-url "postgresql+psycopg2://vote:$(pw pg-owner)@haproxy:5000/votes"
derive database-ro-url "postgresql+psycopg2://vote:$(pw pg-owner)@haproxy:5001/votes"
derive pg-superuser-url "postgresql+psycopg2://postgres:$(pw pg-superuser)@haproxy:5000/postgres"
derive backup-url "postgresql+psycopg2://postgres:$(pw pg-superuser)@haproxy:5000/votes"
derive haproxy-stats-auth "admin:$(pw haproxy-stats)"
# Readable by the services' group (gid 10001 in every ha-vote image), by no one else.
chmod 0750 "$dir"
chmod 0640 "$dir"/*
