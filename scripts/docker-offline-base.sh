#!/usr/bin/env bash
# Makes, without pulling anything, the two base images that docker/*.Dockerfile start from,
# under the tags those files use, for machines that reach Debian's mirrors but no container
# registry (this project's CI):
#   debian:bookworm-slim       debootstrap --variant=minbase bookworm, docs and apt lists removed
#   python:3.11-slim-bookworm  the same plus Debian's python3 and python3-venv (3.11)
# Cached: does nothing when both tags exist (`--force` rebuilds them). Takes about two minutes
# otherwise. Needs root (or sudo) for debootstrap, which it installs with apt-get if missing.
# The rootfs is made under target/docker-offline/rootfs and removed afterwards.
#   DEBIAN_MIRROR  the mirror to bootstrap from (default http://deb.debian.org/debian)
set -euo pipefail

cd "$(dirname "$0")/.."
debian_tag=debian:bookworm-slim
python_tag=python:3.11-slim-bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if [ "${1:-}" != --force ] && have_image "$debian_tag" && have_image "$python_tag"; then
    echo "docker-offline-base: $debian_tag and $python_tag already exist (--force rebuilds)"
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    echo "docker-offline-base: installing debootstrap"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi

rootfs="$PWD/target/docker-offline/rootfs"
cleanup() { as_root rm -rf "$rootfs"; }
trap cleanup EXIT
cleanup
mkdir -p "$(dirname "$rootfs")"

# Removes what a container never needs, as the official slim images do.
trim() {
    as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/* "$rootfs"/tmp/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
}

# Loads the rootfs as image $1.
import() {
    as_root tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase bookworm ($0)" - "$1" >/dev/null
    echo "docker-offline-base: $1 ($(docker image inspect -f '{{.Size}}' "$1" | numfmt --to=iec))"
}

echo "docker-offline-base: debootstrap bookworm from $mirror"
as_root debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
trim
import "$debian_tag"

echo "docker-offline-base: adding python3 and python3-venv"
as_root chroot "$rootfs" sh -c 'apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3 python3-venv >/dev/null'
trim
import "$python_tag"
