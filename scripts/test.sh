#!/usr/bin/env bash
# Runs every test: installs the external test clients (scripts/test-deps.sh), then
# `cargo test --workspace`. Extra arguments go to cargo test, e.g.
#   scripts/test.sh -p midge-tests --test pubsub
set -euo pipefail

cd "$(dirname "$0")/.."
scripts/test-deps.sh
exec cargo test --workspace "$@"
