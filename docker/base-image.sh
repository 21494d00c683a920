#!/bin/sh
# Make the debian:bookworm-slim base image locally when it is missing and cannot be pulled
# (no registry is reachable here): debootstrap a minimal bookworm from this machine's Debian
# mirror, then `docker import` it. About 2 minutes, once per machine. Needs root and
# debootstrap. With a registry at hand, `docker pull debian:bookworm-slim` does the same.
#   docker/base-image.sh [IMAGE]      (default debian:bookworm-slim)
set -eu
image=${1:-debian:bookworm-slim}
docker=${DOCKER:-docker}
if $docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if $docker pull "$image" >/dev/null 2>&1; then
  exit 0
fi
# The mirror this machine's apt uses (deb822 sources first, then the classic list).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
rootfs=$(mktemp -d /tmp/ha-vote-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "base-image.sh: debootstrap bookworm from $mirror (about 2 minutes)" >&2
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# Like the upstream slim image: no apt lists or caches in the layer.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
tar -C "$rootfs" -c . | $docker import - "$image" >/dev/null
echo "base-image.sh: imported $image" >&2
