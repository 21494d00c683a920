#!/bin/sh
# Install pinned requirements into a virtualenv: from the wheelhouse without an index when
# it holds wheels (built on the host by docker/wheelhouse.py), else from the package index.
#   pip-install.sh VENV REQUIREMENTS WHEELHOUSE
set -eu
venv=$1 requirements=$2 wheels=$3
set -- --no-cache-dir --disable-pip-version-check --quiet -r "$requirements"
if ls "$wheels"/*.whl >/dev/null 2>&1; then
  set -- --no-index --find-links "$wheels" "$@"
fi
"$venv/bin/pip" install "$@"
