#!/usr/bin/env bash
# Stages what docker-compose.offline.yml builds the images from, in target/docker-offline/:
#   bin/     the release binaries, stripped (cargo build --release on this host, a Debian
#            bookworm: the same glibc as the debian:bookworm-slim runtime image): midge and the
#            example plugins
#   wheels/  the Python plugin's requirements as wheels for CPython 3.11 on this CPU (pip
#            download on the host; the docker build installs them with --no-index). Cached by
#            the hash of requirements.txt.
#   MIDGE_DOCKER_BINARIES=DIR  take the release binaries from DIR instead of running cargo
set -euo pipefail

cd "$(dirname "$0")/.."
stage=target/docker-offline
cargo_target="${CARGO_TARGET_DIR:-target}"
plugins=(auth-password-file topic-acl topic-taboo event-logger packet-logger)

release="${MIDGE_DOCKER_BINARIES:-}"
if [ -z "$release" ]; then
    echo "docker-offline-stage: cargo build --release (midge and the example plugins)"
    cargo build --release --locked --quiet -p midge --bin midge -p midge-examples --bins
    release="$cargo_target/release"
fi
mkdir -p "$stage/bin"
for bin in midge "${plugins[@]}"; do
    install -s -m 0755 "$release/$bin" "$stage/bin/$bin"
done

requirements=examples/python-event-logger/requirements.txt
wheels="$stage/wheels"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$wheels/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "docker-offline-stage: downloading wheels for $requirements"
    rm -rf "$wheels"
    arch="$(uname -m)"
    python3 -m pip download --quiet --disable-pip-version-check --dest "$wheels" \
        --only-binary=:all: --implementation cp --python-version 3.11 \
        --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" \
        -r "$requirements"
    echo "$want" >"$wheels/.requirements.sha256"
fi
echo "docker-offline-stage: ready ($(ls "$stage/bin" | wc -l) binaries, $(ls "$wheels"/*.whl | wc -l) wheels in $stage)"
