#!/usr/bin/env bash
# Runs the Python plugin (setting it up first if needed). Arguments go to plugin.py, e.g.
#   examples/python-event-logger/run.sh --listen 127.0.0.1:50066 --out events.jsonl
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/.venv/bin/python" ] || [ ! -d "$here/gen/midge" ]; then
    "$here/setup.sh"
fi
exec "$here/.venv/bin/python" "$here/plugin.py" "$@"
