# The Python example plugin (examples/python-event-logger). Build context: the repository root.
#   docker build -f docker/python-plugin.Dockerfile -t midge/python-plugin .
# The build stage installs requirements.txt into a venv and generates the gRPC stubs; the
# runtime stage gets the venv without the code generator. With PIP_OFFLINE=1 (set by
# docker-compose.offline.yml) pip installs only from target/docker-offline/wheels, which
# scripts/docker-offline-base.sh downloads on the host.

FROM python:3.11-slim-bookworm AS build
WORKDIR /app
# requirements.txt, and the wheels staged for the offline build when there are any: the glob
# matches nothing on a user's machine, which COPY accepts as long as another source exists.
COPY examples/python-event-logger/requirements.txt target/docker-offline/wheel[s] /wheels/
ARG PIP_OFFLINE=0
RUN set -e; \
    if [ "$PIP_OFFLINE" = 1 ]; then set -- --no-index --find-links /wheels; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check "$@" \
        -r /wheels/requirements.txt
COPY proto/midge/plugin/v1/ /proto/midge/plugin/v1/
COPY examples/python-event-logger/plugin.py .
RUN set -e; \
    wkt="$(/opt/venv/bin/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"; \
    mkdir gen; \
    /opt/venv/bin/python -m grpc_tools.protoc -I /proto -I "$wkt" \
        --python_out=gen --grpc_python_out=gen /proto/midge/plugin/v1/*.proto; \
    /opt/venv/bin/pip uninstall --yes --quiet grpcio-tools setuptools; \
    find /opt/venv /app -name __pycache__ -prune -exec rm -rf {} +

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin midge
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
USER midge
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 50066
ENTRYPOINT ["/opt/venv/bin/python", "/app/plugin.py"]
CMD ["--listen", "0.0.0.0:50066"]
