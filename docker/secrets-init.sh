#!/bin/sh
# Every secret of a deployment, one file each, in DIR (default /run/secrets): compose's
# one-shot `secrets` service runs this into the volume all other services mount read-only;
# for Swarm, docker/swarm-secrets.sh runs it into a private directory and creates a Docker
# secret from each file. Existing files are never changed.
#   secrets-init.sh [DIR] [--hostname NAME ...]   (the names HAProxy's certificate is for)
set -eu
dir=${1:-/run/secrets}
[ $# -gt 0 ] && shift
votectl secrets init --dir "$dir" "$@" >&2
umask 077
derive() {  # NAME VALUE: a file made from others, once
  [ -e "$dir/$1" ] || printf '%s' "$2" > "$dir/$1"
}
pw() { cat "$dir/$1"; }
# Settings that are whole URLs or user:password pairs, for the programs that take no
# separate password: provisioning (the superuser), backups (pg_dump as vote_backup),
# votectl status (the stats page).
derive pg-superuser-url "postgresql+psycopg2://postgres:$(pw pg-superuser)@haproxy:5000/postgres"
derive backup-url "postgresql+psycopg2://vote_backup:$(pw pg-backup)@haproxy:5000/votes"
derive haproxy-stats-auth "admin:$(pw haproxy-stats)"
# The exporters' passwords, one per target they may scrape (and none for any other).
targets() {  # PREFIX PORT SECRET
  printf '{"redis://%s1:%s": "%s", "redis://%s2:%s": "%s", "redis://%s3:%s": "%s"}' \
    "$1" "$2" "$(pw "$3")" "$1" "$2" "$(pw "$3")" "$1" "$2" "$(pw "$3")"
}
derive redis-exporter-passwords.json "$(targets redis 6379 redis-exporter)"
derive sentinel-exporter-passwords.json "$(targets sentinel 26379 sentinel-exporter)"
# Readable by the services' group (gid 10001 in every ha-vote image), by no one else.
chmod 0750 "$dir"
chmod 0640 "$dir"/*
