#!/usr/bin/env bash
# Installs what the end-to-end tests (tests/) need besides Rust:
#   - mosquitto_pub / mosquitto_sub (Debian package mosquitto-clients), and curl;
#   - a Python venv at .venv with the packages in tests/python/requirements.txt (paho-mqtt 2.x);
#   - grpcurl in that venv (scripts/grpcurl.sh), for the admin API tests.
# Idempotent and quick when everything is already there. Uses sudo only when not root.
set -euo pipefail

cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- Debian packages -------------------------------------------------------------------------
# Only the clients: the mosquitto broker package is not needed, and on machines with systemd it
# would start a daemon on port 1883, the port `cargo run -p midge` binds by default.
missing=()
command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
command -v curl >/dev/null || missing+=(curl)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "test-deps: please install ${missing[*]} (no apt-get here)" >&2
        exit 1
    fi
    echo "test-deps: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Python venv -----------------------------------------------------------------------------
requirements=tests/python/requirements.txt
stamp=.venv/.requirements.sha256
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
    || ! .venv/bin/python -c 'import paho.mqtt.client' >/dev/null 2>&1; then
    echo "test-deps: setting up .venv from $requirements"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
fi

# --- grpcurl -----------------------------------------------------------------------------------
grpcurl="$(scripts/grpcurl.sh)"

echo "test-deps: ok ($(mosquitto_sub --help 2>/dev/null | sed -n 2p | cut -d' ' -f1-3); paho-mqtt $(.venv/bin/python -c 'import paho.mqtt; print(paho.mqtt.__version__)'); $grpcurl)"
