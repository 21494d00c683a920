#!/bin/sh
# Entry point of the service images (Redis, Sentinel, HAProxy, etcd, Patroni, monitoring):
# for every variable NAME_FILE, export NAME with that file's content, then exec the command.
# Secrets are files (/run/secrets/...), never values in a compose or stack file; the Python
# processes read NAME_FILE themselves, these programs need the value in their environment.
set -eu
for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)_FILE=.*/\1/p'); do
  eval "file=\${${name}_FILE}"
  if [ ! -r "$file" ]; then
    echo "entrypoint: ${name}_FILE: cannot read $file" >&2
    exit 1
  fi
  value=$(cat "$file")
  export "$name=$value"
  unset "${name}_FILE"
done
exec "$@"
