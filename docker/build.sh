#!/bin/sh
# Build every image of ha-vote on this machine, as compose and Swarm run them:
#   docker/build.sh [TAG]     (default dev; images ha-vote:TAG, ha-vote-redis:TAG, ...)
# 1. the debian:bookworm-slim base (pulled, or made with debootstrap where nothing can be
#    pulled: docker/base-image.sh), 2. the wheelhouse of pinned Python packages, built on the
# host (docker/wheelhouse.py), 3. the images. Every step is cached: a second run takes seconds.
set -eu
cd "$(dirname "$0")/.."
tag=${1:-dev}
docker=${DOCKER:-docker}
python=${PYTHON:-python3}
sh docker/base-image.sh debian:bookworm-slim
"$python" docker/wheelhouse.py wheels
build() {  # IMAGE DOCKERFILE [TARGET]
  echo "build.sh: $1:$tag" >&2
  $docker build --quiet --tag "$1:$tag" --file "$2" ${3:+--target "$3"} . >/dev/null
}
build ha-vote Dockerfile runtime
build ha-vote-backup Dockerfile backup
build ha-vote-redis redis/Dockerfile
build ha-vote-etcd etcd/Dockerfile
build ha-vote-haproxy haproxy/Dockerfile
build ha-vote-patroni patroni/Dockerfile
build ha-vote-monitoring monitoring/Dockerfile
