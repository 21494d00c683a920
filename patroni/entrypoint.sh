#!/bin/sh
# Run Patroni on the given config file. Docker secrets become environment variables first:
# a file /run/secrets/NAME whose NAME is a variable name (e.g. PATRONI_SUPERUSER_PASSWORD)
# sets NAME to the file's content, so no password has to sit in the stack file.
set -eu
for file in /run/secrets/*; do
  name=${file##*/}
  case "$name" in *[!A-Z0-9_]*|[0-9]*) continue ;; esac
  if [ -f "$file" ]; then export "$name=$(cat "$file")"; fi
done
exec patroni "$@"
