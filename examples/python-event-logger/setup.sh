#!/usr/bin/env bash
# Prepares the Python plugin: a virtualenv in .venv with requirements.txt installed (from PyPI),
# and the gRPC stubs generated from proto/midge/plugin/v1/*.proto into gen/ (not committed).
# Idempotent: the venv is reinstalled only when requirements.txt changed; stubs are regenerated
# every time (it takes a second). Needs python3 with the venv module (Debian: python3-venv).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
protos="$(cd "$here/../../proto" && pwd)"
python="${PYTHON:-python3}"
cd "$here"

stamp=.venv/.requirements.sha256
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "python-event-logger: installing requirements.txt into .venv" >&2
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" >"$stamp"
fi

rm -rf gen.tmp
mkdir -p gen.tmp
wkt="$(.venv/bin/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
.venv/bin/python -m grpc_tools.protoc -I "$protos" -I "$wkt" \
    --python_out=gen.tmp --grpc_python_out=gen.tmp "$protos"/midge/plugin/v1/*.proto
rm -rf gen
mv gen.tmp gen
echo "python-event-logger: ready (stubs in gen/)" >&2
