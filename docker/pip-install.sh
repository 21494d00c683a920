#!/bin/sh
# Install a hashed lock file into a virtualenv (every file checked against its hashes): from
# the wheelhouse without an index when it holds files (docker/wheelhouse.py wheels, run on
# the host), else from the package index.
#   pip-install.sh VENV REQUIREMENTS WHEELHOUSE
set -eu
venv=$1 requirements=$2 wheels=$3
set -- --no-cache-dir --disable-pip-version-check --quiet --require-hashes -r "$requirements"
if ls "$wheels"/*.whl >/dev/null 2>&1; then
  # Packages only published as source are built with the locked setuptools from there too.
  set -- --no-index --find-links "$wheels" "$@"
fi
"$venv/bin/pip" install "$@"
