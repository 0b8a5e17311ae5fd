# The Midge broker. Build context: the repository root.
#   docker build -f docker/broker.Dockerfile -t midge/broker .
# or through docker-compose.yml. The offline build (docker-compose.offline.yml) sets
# BUILDER=debian:bookworm-slim and PREBUILT=target/docker-offline/bin to copy a host-built
# release binary instead of compiling in the rust image.

ARG BUILDER=rust:1-bookworm

FROM ${BUILDER} AS build
WORKDIR /src
COPY . .
ARG PREBUILT=
RUN if [ -n "$PREBUILT" ]; then \
        install -D -m 0755 "$PREBUILT/midge" /out/midge; \
    else \
        cargo build --release --locked -p midge --bin midge \
        && install -s -D -m 0755 target/release/midge /out/midge; \
    fi

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin midge
COPY --from=build /out/midge /usr/local/bin/midge
USER midge
# MQTT, admin gRPC, Prometheus metrics (the config must bind the last two to 0.0.0.0).
EXPOSE 1883 50051 9090
HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=3 \
    CMD ["midge", "--health-check", "127.0.0.1:50051"]
# Without arguments the embedded default config runs (MQTT on 0.0.0.0:1883, anonymous clients
# allowed); docker-compose.yml passes `--config /etc/midge/midge.yaml` and mounts that file.
ENTRYPOINT ["midge"]
