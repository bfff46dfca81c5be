# syntax=docker/dockerfile:1
# The lakeplane image: a release build in a Rust image, run from a slim Debian image as a
# non-root user. Not built on the development machine (it has no Docker engine); see the README.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka (built from source by rdkafka-sys) and aws-lc need a C toolchain and make, which
# the Rust image has; cmake is for crates that prefer it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p api --bin lakeplane \
    && install -D -m 0755 target/release/lakeplane /out/lakeplane

FROM debian:bookworm-slim AS runtime
# CA roots for S3, STS, IAM and OIDC issuers over TLS; nothing else is needed at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 lakeplane \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/lakeplane --shell /usr/sbin/nologin lakeplane \
    && install -d -o 65532 -g 65532 -m 0750 /var/lib/lakeplane
COPY --from=build /out/lakeplane /usr/local/bin/lakeplane
ENV LAKEPLANE__DATA_DIR=/var/lib/lakeplane \
    LAKEPLANE__SERVER__LISTEN=0.0.0.0:8080
USER 65532:65532
WORKDIR /var/lib/lakeplane
VOLUME ["/var/lib/lakeplane"]
EXPOSE 8080
ENTRYPOINT ["lakeplane"]
CMD ["serve"]
