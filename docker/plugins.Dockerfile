# The example Rust plugins, in one image (one dependency build for all of them): the compose
# services pick the binary with `command:`, e.g. `command: [topic-acl]`.
#   docker build -f docker/plugins.Dockerfile -t midge/plugins .
# Build context: the repository root. The offline build sets BUILDER and PREBUILT as for
# docker/broker.Dockerfile.

ARG BUILDER=rust:1-bookworm

FROM ${BUILDER} AS build
WORKDIR /src
COPY . .
ARG PREBUILT=
RUN set -e; \
    bins="auth-password-file topic-acl topic-taboo event-logger packet-logger"; \
    if [ -n "$PREBUILT" ]; then \
        for bin in $bins; do install -D -m 0755 "$PREBUILT/$bin" "/out/$bin"; done; \
    else \
        cargo build --release --locked -p midge-examples --bins; \
        for bin in $bins; do install -s -D -m 0755 "target/release/$bin" "/out/$bin"; done; \
    fi

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin midge
COPY --from=build /out/ /usr/local/bin/
USER midge
# auth-password-file, topic-acl, topic-taboo, event-logger, packet-logger.
EXPOSE 50061 50062 50063 50064 50065
