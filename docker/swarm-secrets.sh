#!/bin/sh
# Create the Docker secrets docker-stack.yml mounts: `votectl secrets init` (in the app image)
# into a private temporary directory, then one `docker secret create ha_vote_<name>` per file.
# Secrets that exist are kept (a secret cannot change; rotate by creating a new name).
#   docker/swarm-secrets.sh [--hostname NAME ...]    (the names HAProxy's certificate is for)
# With CA_OUT=FILE it also leaves the CA of a self-signed certificate there, for clients.
set -eu
image=${HA_VOTE_IMAGE:-ha-vote:dev}
docker=${DOCKER:-docker}
dir=$(mktemp -d /tmp/ha-vote-secrets.XXXXXX)
trap 'rm -rf "$dir"' EXIT
chmod 0700 "$dir"
# As the invoking user, so only they can read the files until they are removed.
$docker run --rm --user "$(id -u):$(id -g)" -v "$dir:/secrets" "$image" \
  secrets-init.sh /secrets "$@" >/dev/null
if [ -n "${CA_OUT:-}" ] && [ -e "$dir/tls-ca.crt" ]; then
  cp "$dir/tls-ca.crt" "$CA_OUT"
fi
for file in "$dir"/*; do
  name="ha_vote_$(basename "$file")"
  if ! $docker secret inspect "$name" >/dev/null 2>&1; then
    $docker secret create "$name" "$file" >/dev/null
    echo "created secret $name" >&2
  fi
done
